"""Another local user on the Work host: files they own or can write are never trusted, a
FIFO or device they plant never hangs a command, and what they plant in the state
directory is refused (or, for a key's mode, repaired with a warning)."""

from __future__ import annotations

import os
import pwd
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certfleet.solvers.token_dir import read_token
from certfleet.store import Store, VersionMeta
from tests.cli import run_main
from tests.conftest import need_root
from tests.unit.pki import version_files

NOW = datetime.now(UTC)


@pytest.fixture
def nobody() -> int:
    need_root("files owned by another user")
    return pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A configuration directory as an operator would have it: only its owner writes."""
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    (folder / "domains.txt").write_text("www.example.com\n")
    (folder / "certfleet.toml").write_text(
        f'domains = "domains.txt"\nstate_dir = "{tmp_path / "state"}"\n'
        '[challenge]\nwebroot = "/var/www/acme"\n'
        '[hosts.default]\nreload = ["/usr/sbin/nginx", "-s", "reload"]\n')
    for name in ("domains.txt", "certfleet.toml"):
        (folder / name).chmod(0o644)
    return folder


def _dry_run(site: Path) -> tuple[int, str, str]:
    return run_main(["run", "--dry-run", "--config", str(site / "certfleet.toml")])


def test_the_untouched_site_is_accepted(site: Path) -> None:
    rc, _out, err = _dry_run(site)
    assert rc == 0, err


@pytest.mark.parametrize("which", ["certfleet.toml", "domains.txt"])
def test_a_file_another_user_owns_is_refused_whatever_its_mode(
        site: Path, nobody: int, which: str) -> None:
    """A 0600 certfleet.toml owned by another user would run its reload commands as us."""
    victim = site / which
    os.chown(victim, nobody, -1)
    victim.chmod(0o600)
    rc, out, err = _dry_run(site)
    assert (rc, out) == (1, "")
    assert str(victim) in err
    assert f"owned by uid {nobody}, not by this user or root" in err


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_directory_others_can_write_is_refused(site: Path, mode: int) -> None:
    site.chmod(mode)
    rc, _, err = _dry_run(site)
    assert rc == 1
    assert f"its directory {site} is writable by group or others" in err


def test_a_sticky_shared_directory_still_holds_our_own_file(site: Path) -> None:
    site.chmod(0o1777)  # like /tmp: others may add files but not replace ours
    rc, _, err = _dry_run(site)
    assert rc == 0, err


def test_a_directory_another_user_owns_is_refused(site: Path, nobody: int) -> None:
    os.chown(site, nobody, -1)
    rc, _, err = _dry_run(site)
    assert rc == 1
    assert f"its directory {site} is owned by uid {nobody}" in err


def test_a_fifo_for_the_domains_file_is_refused_without_hanging(site: Path) -> None:
    (site / "domains.txt").unlink()
    os.mkfifo(site / "domains.txt", 0o644)
    done: list[tuple[int, str, str]] = []
    worker = threading.Thread(target=lambda: done.append(_dry_run(site)), daemon=True)
    worker.start()
    worker.join(30)
    assert done, "certfleet hung on a FIFO planted as the domains file"
    rc, _, err = done[0]
    assert rc == 1
    assert f"{site / 'domains.txt'}: not a regular file" in err


@pytest.mark.parametrize(("mode", "owner"), [(0o644, False), (0o640, False), (0o600, True)])
def test_a_secret_others_can_read_or_own_is_refused(site: Path, mode: int, owner: bool,
                                                     request: pytest.FixtureRequest) -> None:
    secret = site / "tsig.secret"
    secret.write_text("c2VjcmV0IHNlY3JldCBzZWNyZXQ=\n")
    secret.chmod(mode)
    if owner:
        os.chown(secret, request.getfixturevalue("nobody"), -1)
    with (site / "certfleet.toml").open("a") as config:
        config.write('[dns]\nserver = "127.0.0.1:53"\ntsig_key_name = "k"\n'
                     'tsig_secret_file = "tsig.secret"\n')
    rc, _, err = _dry_run(site)
    assert rc == 1
    assert str(secret) in err
    assert "c2VjcmV0" not in err  # never shown


def test_a_fifo_planted_as_a_challenge_token_is_no_hang(tmp_path: Path) -> None:
    token = "t" * 43
    os.mkfifo(tmp_path / token)
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(read_token(tmp_path, token)),
                              daemon=True)
    worker.start()
    worker.join(10)
    assert done == [None]


# -- the state directory ------------------------------------------------------------------------

def _stored(root: Path, name: str) -> Store:
    store = Store(root)
    meta = VersionMeta(
        version=1, names=(name,), key_type="ec256", serial=0xABC, issuer="CN=Test",
        not_before=(NOW - timedelta(days=10)).isoformat(),
        not_after=(NOW + timedelta(days=80)).isoformat(), aki="",
        issued_at=NOW.isoformat(), directory="https://ca.invalid/dir", order_url="")
    store.activate(name, version_files(name, serial=0xABC), meta)
    return store


def test_a_version_directory_swapped_for_a_link_is_refused(tmp_path: Path) -> None:
    store = _stored(tmp_path / "state", "www.example.com")
    version = store.root / "certs" / "www.example.com" / "versions" / "1"
    elsewhere = tmp_path / "elsewhere"
    version.rename(elsewhere)
    version.symlink_to(elsewhere)
    rc, out, _ = run_main(["status", "--state-dir", str(store.root)])
    assert rc == 1
    assert out.startswith(f"www.example.com: DAMAGED: {version}: not a directory")


@pytest.mark.parametrize("mode", [0o777, 0o720])
def test_a_version_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    store = _stored(tmp_path / "state", "www.example.com")
    version = store.root / "certs" / "www.example.com" / "versions" / "1"
    version.chmod(mode)
    rc, out, _ = run_main(["status", "--state-dir", str(store.root)])
    assert rc == 1
    assert f"{version}: writable by group or others" in out


def test_a_version_directory_another_user_owns_is_refused(tmp_path: Path,
                                                          nobody: int) -> None:
    store = _stored(tmp_path / "state", "www.example.com")
    version = store.root / "certs" / "www.example.com" / "versions" / "1"
    os.chown(version, nobody, -1)
    rc, out, _ = run_main(["status", "--state-dir", str(store.root)])
    assert rc == 1
    assert f"{version}: owned by uid {nobody}" in out


def test_a_domain_key_others_can_read_is_made_private_again(tmp_path: Path) -> None:
    store = _stored(tmp_path / "state", "www.example.com")
    key = store.root / "certs" / "www.example.com" / "versions" / "1" / "privkey.pem"
    key.chmod(0o644)
    target = tmp_path / "www.example.com"
    target.mkdir()
    domains = tmp_path / "domains.txt"
    domains.write_text(f"www.example.com|{target}\n")
    rc, out, err = run_main(["deploy", "--domains", str(domains), "--state-dir",
                             str(store.root)])
    assert rc == 0, out + err
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"{key}: private key was mode 644; made it 0600" in err
    assert stat.S_IMODE((target / "privkey.pem").stat().st_mode) == 0o600


@pytest.fixture
def no_umask() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


def test_directories_are_0700_under_any_umask(tmp_path: Path, no_umask: None) -> None:
    store = _stored(tmp_path / "state", "www.example.com")
    for folder, dirs, _ in os.walk(store.root):
        for name in dirs:
            path = Path(folder) / name
            if not path.is_symlink():
                assert stat.S_IMODE(path.lstat().st_mode) == 0o700, path
    assert stat.S_IMODE(store.root.lstat().st_mode) == 0o700
