"""certfleet.store.Store on a real state directory: versions, links, modes, pruning, locks."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certfleet.errors import StoreError
from certfleet.state import CertState, PendingOrder
from certfleet.store import PEM_FILES, Snapshot, Store, VersionMeta, ca_id

NAME = "www.example.com"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def meta(version: int, name: str = NAME) -> VersionMeta:
    return VersionMeta(
        version=version, names=(name, "example.com"), key_type="ec256", serial=0xABC0 + version,
        not_before="2025-01-01T00:00:00+00:00", not_after="2025-04-01T00:00:00+00:00",
        issuer="CN=Test CA", aki="00ff", issued_at="2025-01-01T00:00:05+00:00",
        directory="https://ca/dir", order_url=f"https://ca/order/{version}",
    )


def files(version: int) -> dict[str, bytes]:
    return {pem: f"{pem} v{version}\n".encode() for pem in PEM_FILES}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state")


def activate(store: Store, version: int, name: str = NAME) -> None:
    store.activate(name, files(version), meta(version, name))


# -- layout ---------------------------------------------------------------------------------

def test_new_store_layout(tmp_path: Path) -> None:
    Store(tmp_path / "state")
    for sub in ("accounts", "certs", "challenges"):
        assert mode_of(tmp_path / "state" / sub) == 0o700


def test_store_refuses_group_writable_root(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir()
    root.chmod(0o775)
    with pytest.raises(StoreError, match="writable by group or others"):
        Store(root)


def test_wildcard_storage_dir(store: Store) -> None:
    assert store.cert_dir("*.example.com") == store.root / "certs" / "_wildcard.example.com"


# -- activation -----------------------------------------------------------------------------

def test_activate_first_version(store: Store) -> None:
    stored = store.activate(NAME, files(1), meta(1))
    base = store.root / "certs" / NAME
    assert stored.path == base
    assert os.readlink(base / "current") == "versions/1"
    for pem in PEM_FILES:
        assert os.readlink(base / pem) == f"current/{pem}"
        assert (base / pem).read_bytes() == f"{pem} v1\n".encode()
        assert (base / "versions" / "1" / pem).read_bytes() == f"{pem} v1\n".encode()
    assert mode_of(base / "versions" / "1" / "privkey.pem") == 0o600
    for pem in ("cert.pem", "chain.pem", "fullchain.pem", "meta.json"):
        assert mode_of(base / "versions" / "1" / pem) == 0o644
    assert mode_of(base / "versions" / "1") == 0o700


def test_current_reads_meta_back(store: Store) -> None:
    assert store.current(NAME) is None
    activate(store, 1)
    current = store.current(NAME)
    assert current is not None
    assert current.meta == meta(1)
    assert store.read_file(current, "cert.pem") == b"cert.pem v1\n"
    assert store.all_names() == [NAME]


def test_second_activation_keeps_first(store: Store) -> None:
    activate(store, 1)
    assert store.next_version(NAME) == 2
    activate(store, 2)
    base = store.root / "certs" / NAME
    assert os.readlink(base / "current") == "versions/2"
    assert (base / "fullchain.pem").read_bytes() == b"fullchain.pem v2\n"
    assert store.versions(NAME) == [1, 2]
    assert (base / "versions" / "1" / "cert.pem").read_bytes() == b"cert.pem v1\n"
    current = store.current(NAME)
    assert current is not None
    assert current.meta.version == 2


def test_activation_leaves_no_temporaries(store: Store) -> None:
    activate(store, 1)
    activate(store, 2)
    base = store.root / "certs" / NAME
    leftovers = [p for p in base.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_activate_incomplete_files_changes_nothing(store: Store) -> None:
    activate(store, 1)
    partial = files(2)
    del partial["chain.pem"]
    with pytest.raises((KeyError, ValueError, StoreError)):
        store.activate(NAME, partial, meta(2))
    base = store.root / "certs" / NAME
    assert os.readlink(base / "current") == "versions/1"
    assert store.versions(NAME) == [1]


def test_prune_keeps_last_five(store: Store) -> None:
    for version in range(1, 8):
        activate(store, version)
    assert store.versions(NAME) == [3, 4, 5, 6, 7]


def test_prune_never_removes_current(store: Store) -> None:
    activate(store, 1)
    versions = store.cert_dir(NAME) / "versions"
    for version in range(2, 9):
        (versions / str(version)).mkdir()
    store.prune(NAME)
    assert store.versions(NAME) == [1, 4, 5, 6, 7, 8]
    assert (versions / "1" / "privkey.pem").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_crash_leftovers_are_swept(store: Store) -> None:
    versions = store.cert_dir(NAME) / "versions"
    leftover = versions / f".1.tmp-{_dead_pid()}-0123456789ab"
    leftover.mkdir()
    (leftover / "privkey.pem").write_bytes(b"half")
    live = versions / f".2.tmp-{os.getpid()}-0123456789ab"  # a write in progress: kept
    live.mkdir()
    activate(store, 1)
    assert sorted(os.listdir(versions)) == [live.name, "1"]


def test_a_killed_run_is_swept_by_the_next(store: Store) -> None:
    activate(store, 1)
    dead = _dead_pid()
    base = store.root / "certs" / NAME
    leftovers = [store.root / f".index.json.tmp-{dead}-0123456789aa",
                 base / f".state.json.tmp-{dead}-0123456789bb",
                 store.root / "accounts" / f".account.key.tmp-{dead}-0123456789cc"]
    for path in leftovers:
        path.write_bytes(b"x")
    (store.root / "runs").mkdir(exist_ok=True)
    (store.root / "runs" / str(dead)).write_bytes(b"")  # the killed run's marker
    with store.running():
        assert (store.root / "runs" / str(os.getpid())).exists()
    assert not any(path.exists() for path in leftovers)
    assert os.listdir(store.root / "runs") == []


def test_a_certificate_whose_name_looks_temporary_is_never_swept(store: Store) -> None:
    """``www.tmp-<pid>-a.example.com`` is a valid name; a killed run's sweep and the pruning
    of versions remove temporary files only, never that certificate."""
    dead = _dead_pid()
    name = f"www.tmp-{dead}-a.example.com"
    for version in range(1, 8):
        activate(store, version, name)
    (store.root / "runs").mkdir(exist_ok=True)
    (store.root / "runs" / str(dead)).write_bytes(b"")  # a killed run's marker
    with store.running() as killed:
        assert killed
    current = store.current(name)
    assert current is not None
    assert current.meta.version == 7
    assert store.versions(name) == [3, 4, 5, 6, 7]
    assert store.read_file(current, "privkey.pem") == b"privkey.pem v7\n"


def test_activate_clears_pending_key(store: Store) -> None:
    store.save_pending_key(NAME, b"pending key")
    activate(store, 1)
    assert store.load_pending_key(NAME) is None


# -- pending key and state --------------------------------------------------------------------

def test_pending_key_save_load_clear(store: Store) -> None:
    assert store.load_pending_key(NAME) is None
    store.save_pending_key(NAME, b"-----BEGIN PRIVATE KEY-----\n")
    path = store.root / "certs" / NAME / "pending" / "privkey.pem"
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert store.load_pending_key(NAME) == b"-----BEGIN PRIVATE KEY-----\n"
    store.clear_pending(NAME)
    assert store.load_pending_key(NAME) is None
    assert not path.parent.exists()


def update(store: Store, name: str, change: Callable[[CertState], CertState]) -> CertState:
    """A state change the way the runner makes one: under the certificate's lock."""
    assert store.try_lock(name)
    try:
        return store.update_state(name, change)
    finally:
        store.unlock(name)


def test_state_round_trips_under_the_lock(store: Store) -> None:
    assert store.load_state(NAME) == CertState()
    state = update(store, NAME, lambda s: s.with_order("https://ca/order/1", [NAME])
                   .deployed("web1:/x", NOW, 0xABC, 1))
    assert store.load_state(NAME) == state
    assert state.order == PendingOrder("https://ca/order/1", (NAME,))
    assert state.deployed_serial("web1:/x") == "abc"
    assert mode_of(store.root / "certs" / NAME / "state.json") == 0o600
    assert update(store, NAME, CertState.without_order).order is None


def test_state_changes_only_under_the_lock(store: Store) -> None:
    with pytest.raises(StoreError, match="without holding its lock"):
        store.update_state(NAME, CertState.without_order)
    assert not (store.root / "certs" / NAME / "state.json").exists()


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"last": {"at": "x"}}',
                                     b'{"deploy": {"a": {"at": 5}}}'])
def test_damaged_state_is_an_error(store: Store, content: bytes) -> None:
    (store.cert_dir(NAME) / "state.json").write_bytes(content)
    with pytest.raises(StoreError, match="damaged"):
        store.load_state(NAME)


def test_account_record(store: Store) -> None:
    url = "https://acme.example/directory"
    assert store.load_account(url) is None
    store.save_account(url, {"url": "https://acme.example/acct/1"})
    assert store.load_account(url) == {"url": "https://acme.example/acct/1"}
    assert store.account_key_path(url).parent == store.root / "accounts" / ca_id(url)


def test_ca_id() -> None:
    assert ca_id("https://acme-v02.api.letsencrypt.org/directory").startswith(
        "acme-v02.api.letsencrypt.org-")
    assert ca_id("https://localhost:14000/dir").startswith("localhost_14000-")
    assert ca_id("https://ca/a") != ca_id("https://ca/b")


def test_version_meta_round_trip() -> None:
    data = meta(3).to_json()
    assert data["serial"] == "abc3"
    assert data["names"] == [NAME, "example.com"]
    assert VersionMeta.from_json(data, "x") == meta(3)


def test_version_meta_damaged() -> None:
    data = meta(3).to_json()
    del data["not_after"]
    with pytest.raises(StoreError, match="damaged metadata"):
        VersionMeta.from_json(data, "meta.json")


# -- locks ----------------------------------------------------------------------------------

HOLDER = """
import asyncio, sys
from pathlib import Path
from certfleet.store import Store
store = Store(Path(sys.argv[1]))
async def main():
    async with store.locked(sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.read()
asyncio.run(main())
"""


def hold_lock(root: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), NAME],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


async def take(store: Store, name: str, wait: float) -> None:
    async with store.locked(name, wait=wait):
        pass


def test_lock_excludes_another_process_then_is_released(store: Store) -> None:
    proc = hold_lock(store.root)
    try:
        with pytest.raises(StoreError, match="still locked"):
            asyncio.run(take(store, NAME, 0.3))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    asyncio.run(take(store, NAME, 5))


def test_lock_dropped_when_holder_dies(store: Store) -> None:
    proc = hold_lock(store.root)
    proc.kill()
    proc.wait(timeout=30)
    asyncio.run(take(store, NAME, 5))


def test_lock_is_per_certificate(store: Store) -> None:
    proc = hold_lock(store.root)
    try:
        asyncio.run(take(store, "other.example.com", 0.3))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def test_lock_released_after_block(store: Store) -> None:
    asyncio.run(take(store, NAME, 1))
    asyncio.run(take(store, NAME, 0.3))


def test_two_tasks_of_one_process_exclude_each_other(store: Store) -> None:
    async def both() -> list[str]:
        seen: list[str] = []

        async def one(tag: str) -> None:
            async with store.locked(NAME):
                seen.append(f"{tag} in")
                await asyncio.sleep(0.05)
                seen.append(f"{tag} out")

        await asyncio.gather(one("a"), one("b"))
        return seen

    assert asyncio.run(both()) == ["a in", "a out", "b in", "b out"]


def _age(store: Store, name: str = NAME, seconds: int = 60) -> None:
    """Make a certificate directory look last changed ``seconds`` ago."""
    folder = store.root / "certs" / name
    info = folder.stat()
    os.utime(folder, ns=(info.st_atime_ns, info.st_mtime_ns - seconds * 10**9))


def test_snapshot_matches_the_files(store: Store) -> None:
    activate(store, 1)
    state = update(store, NAME, lambda s: s.revoked(1, NOW))
    (snap,) = store.snapshot([NAME]).values()
    assert snap.meta == store.current(NAME).meta  # type: ignore[union-attr]
    assert snap.state == state
    assert store.snapshot(["never.example"]) == {"never.example": Snapshot(None, CertState())}


def test_one_damaged_certificate_is_reported_not_raised(store: Store) -> None:
    activate(store, 1)
    activate(store, 1, "other.example.com")
    (store.cert_dir(NAME) / "state.json").write_text("{not json")
    os.unlink(store.cert_dir("other.example.com") / "versions" / "1" / "meta.json")
    snaps = store.snapshot([NAME, "other.example.com", "fine.example.com"])
    assert "damaged JSON" in (snaps[NAME].damage or "")
    assert "missing" in (snaps["other.example.com"].damage or "")
    assert snaps["fine.example.com"] == Snapshot(None, CertState())


def test_snapshot_uses_the_index_only_while_the_directory_is_unchanged(store: Store) -> None:
    activate(store, 1)
    _age(store)
    assert store.snapshot([NAME])[NAME].meta.version == 1  # type: ignore[union-attr]
    index = store.root / "index.json"
    assert '"version": 1' in index.read_text()
    # A cached entry is trusted: prove it by planting a marker in the index.
    index.write_text(index.read_text().replace('"issuer": "CN=Test CA"', '"issuer": "CN=cached"'))
    assert store.snapshot([NAME])[NAME].meta.issuer == "CN=cached"  # type: ignore[union-attr]
    activate(store, 2)  # renames inside the directory: its mtime moves, the entry is stale
    assert store.snapshot([NAME])[NAME].meta.version == 2  # type: ignore[union-attr]
    _age(store)
    store.snapshot([NAME])
    state = update(store, NAME, lambda s: s.deployed("x", NOW, 2, 2))
    assert store.snapshot([NAME])[NAME].state == state


def test_snapshot_does_not_trust_a_fresh_entry(store: Store) -> None:
    activate(store, 1)
    store.snapshot([NAME])  # the directory changed just now: not cached as valid
    index = store.root / "index.json"
    index.write_text(index.read_text().replace('"issuer": "CN=Test CA"', '"issuer": "CN=cached"'))
    assert store.snapshot([NAME])[NAME].meta.issuer == "CN=Test CA"  # type: ignore[union-attr]


def test_damaged_index_is_ignored(store: Store) -> None:
    activate(store, 1)
    (store.root / "index.json").write_text("{not json")
    assert store.snapshot([NAME])[NAME].meta.version == 1  # type: ignore[union-attr]


def test_sweep_drops_a_pending_key_that_is_already_active(store: Store) -> None:
    activate(store, 1)
    store.save_pending_key(NAME, files(1)["privkey.pem"])  # a killed activation's leftover
    store.sweep()
    assert store.load_pending_key(NAME) is None
    store.save_pending_key(NAME, b"a different, real pending key")
    store.sweep()
    assert store.load_pending_key(NAME) == b"a different, real pending key"


# -- what `current` may point at ----------------------------------------------------------------

def _planted_version(folder: Path, version: int = 9) -> Path:
    """A complete version directory outside ``versions/``, as a local attacker (or a
    damaged link) would offer it: certfleet's own ownership and modes, valid metadata."""
    folder.mkdir(mode=0o700, parents=True)
    for pem in PEM_FILES:
        (folder / pem).write_bytes(b"planted " + pem.encode())
    (folder / "meta.json").write_text(json.dumps(meta(version).to_json()))
    return folder


@pytest.mark.parametrize("target", [
    "ABSOLUTE",                      # anywhere on the disk
    "../other.example.com/versions/1",  # another certificate's version
    "1",                             # beside versions/ (certs/NAME/1)
    "versions/1/../../../planted",   # out through a version
    "./versions/1", "versions//1", "versions/1/", "versions/01x", "versions/",
])
def test_current_pointing_outside_versions_is_refused(store: Store, tmp_path: Path,
                                                      target: str) -> None:
    activate(store, 1)
    activate(store, 1, "other.example.com")
    base = store.root / "certs" / NAME
    _planted_version(base / "1")
    _planted_version(store.root / "certs" / "planted")
    outside = _planted_version(tmp_path / "elsewhere" / "versions" / "9")
    target = str(outside) if target == "ABSOLUTE" else target
    (base / "current").unlink()
    (base / "current").symlink_to(target)
    with pytest.raises(StoreError, match=r"current: points outside versions/: "):
        store.current(NAME)
    assert "points outside versions/" in (store.snapshot([NAME])[NAME].damage or "")


def test_current_that_is_not_a_link_is_an_error(store: Store) -> None:
    activate(store, 1)
    base = store.root / "certs" / NAME
    (base / "current").unlink()
    (base / "current").mkdir()
    with pytest.raises(StoreError, match=r"current: unreadable: Invalid argument"):
        store.current(NAME)


# -- a state directory of another user --------------------------------------------------------

@pytest.fixture
def nobody() -> int:
    """The uid of ``nobody``; chown needs root (CI runs as root: there it must not skip)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("a directory owned by another user needs root to make [CI is set]")
        pytest.skip("a directory owned by another user needs root to make")
    return pwd.getpwnam("nobody").pw_uid


@pytest.mark.parametrize("create", [True, False])
def test_a_state_directory_another_user_owns_is_refused(tmp_path: Path, nobody: int,
                                                        create: bool) -> None:
    root = tmp_path / "state"
    Store(root)
    os.chown(root, nobody, -1)
    with pytest.raises(StoreError, match=f"{root}: owned by uid {nobody}, not by this user"):
        Store(root, create=create)


def test_a_certificate_directory_another_user_owns_is_refused(store: Store, nobody: int) -> None:
    activate(store, 1)
    os.chown(store.root / "certs" / NAME, nobody, -1)
    with pytest.raises(StoreError, match=f"owned by uid {nobody}"):
        activate(store, 2)
    os.chown(store.root / "certs" / NAME, os.geteuid(), -1)
    os.chown(store.root / "certs" / NAME / "versions" / "1", nobody, -1)
    with pytest.raises(StoreError, match=f"versions/1: owned by uid {nobody}, not by this user"):
        store.current(NAME)
