"""A full or read-only disk under the state directory, against a real Pebble.

The state directory lives on a small tmpfs mounted for the test (we run as root; without
the right to mount, the tests skip saying so, and fail under CI). A good certificate is
issued first; then the disk is filled, or remounted read-only, and the certificate renewed:
the failure is one clear line naming the state path, the previous version stays active and
complete, nothing half-written or temporary is left behind, and when the fault comes before
ordering, no order reaches the CA.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certfleet.cli import main
from certfleet.store import MIN_FREE_BYTES, Store
from tests.conftest import missing

from .fleet_helpers import orders_seen, write_config

pytestmark = pytest.mark.integration

NAME = "disk.example.com"
SIZE = 4 << 20  # room for certfleet's 1 MiB free-space floor plus a few versions


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def tmpfs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh tmpfs of ``SIZE`` bytes (or the test's indirect parameter), unmounted at
    teardown."""
    size = getattr(request, "param", SIZE)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    why = ""
    if shutil.which("mount") is None:
        why = "no mount command"
    elif os.geteuid() != 0:
        why = "mounting a tmpfs needs root"
    else:
        done = _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mnt))
        why = "" if done.returncode == 0 else f"mount -t tmpfs refused: {done.stderr.strip()}"
    if why:
        missing(why)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


@pytest.fixture
def lab(pebble_lab_factory: Any) -> Any:
    return pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})


class Runner:
    def __init__(self, lab: Any, state: Path) -> None:
        self.lab, self.state = lab, state

    def issue(self, *extra: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = main(["issue", NAME, *extra, "--state-dir", str(self.state),
                       "--directory", self.lab.directory_url,
                       "--ca-bundle", str(self.lab.ca_bundle),
                       "--http-listen", f"127.0.0.1:{self.lab.http_port}"])
        print(f"$ certfleet issue {NAME} {' '.join(extra)}\n{out.getvalue()}[exit {rc}]")
        return rc, out.getvalue()

    @property
    def cert_dir(self) -> Path:
        return self.state / "certs" / NAME

    def snapshot(self) -> dict[str, str]:
        """Every path under the state directory and its content's digest (links: target)."""
        found = {}
        for folder, dirs, files in os.walk(self.state):
            for entry in [*dirs, *files]:
                path = Path(folder) / entry
                rel = str(path.relative_to(self.state))
                if path.is_symlink():
                    found[rel] = "-> " + os.readlink(path)
                elif path.is_file():
                    found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    found[rel] = "dir"
        return found

    def assert_version_complete(self, version: int) -> None:
        assert os.readlink(self.cert_dir / "current") == f"versions/{version}"
        base = self.cert_dir
        key = serialization.load_pem_private_key((base / "privkey.pem").read_bytes(), None)
        chain = x509.load_pem_x509_certificates((base / "fullchain.pem").read_bytes())
        assert chain[0].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert (base / "cert.pem").read_bytes() + (base / "chain.pem").read_bytes() == (
            base / "fullchain.pem").read_bytes()
        assert Store(self.state).current(NAME).meta.version == version  # type: ignore[union-attr]

    def leftovers(self) -> list[str]:
        """Temporary names and probes: none may survive a failed run."""
        return [p for p in self.snapshot() if ".tmp-" in p or "probe" in p]


def _free(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def fill(mnt: Path, leave: int) -> Path:
    """Fill the file system at ``mnt`` until ``leave`` bytes (or less) are free."""
    filler = mnt / f"filler-{len(list(mnt.glob('filler-*')))}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while (free := _free(mnt)) > leave:
            try:
                os.write(fd, b"\0" * min(65536, free - leave))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(fd)
    assert _free(mnt) <= leave
    return filler


@pytest.mark.parametrize("tmpfs", [256 << 10], indirect=True, ids=["256k"])
def test_a_tiny_disk_is_refused_before_ordering(lab: Any, tmpfs: Path) -> None:
    """256 KiB can never hold certfleet's 1 MiB free-space floor: refused before any order."""
    cf = Runner(lab, tmpfs / "state")
    rc, out = cf.issue()
    assert rc == 1
    free = re.fullmatch(rf"{NAME}: failed: {cf.cert_dir}: only (\d+) bytes free; need "
                        rf"{MIN_FREE_BYTES}\n", out)
    assert free is not None, out
    assert int(free[1]) < MIN_FREE_BYTES
    assert orders_seen(lab) == 0
    assert not (cf.cert_dir / "pending").exists()
    assert list((cf.cert_dir / "versions").iterdir()) == []
    assert cf.leftovers() == []


def test_disk_full_before_ordering(lab: Any, tmpfs: Path) -> None:
    cf = Runner(lab, tmpfs / "state")
    assert cf.issue()[0] == 0
    cf.assert_version_complete(1)
    before = cf.snapshot()
    orders = orders_seen(lab)
    fill(tmpfs, 64 << 10)
    rc, out = cf.issue("--force")
    assert rc == 1
    free = _free(tmpfs)
    assert out == (f"{NAME}: failed: {cf.cert_dir}: only {free} bytes free; need "
                   f"{MIN_FREE_BYTES}\n")
    assert orders_seen(lab) == orders   # the CA was never asked for an order
    # Not a byte of the certificate changed, nothing left behind; only the record of the
    # failure (if there was room for it) and the caches are new.
    records = ("state.json", "clock.json", "index.json")
    assert {k: v for k, v in cf.snapshot().items() if not k.endswith(records)} == \
        {k: v for k, v in before.items() if not k.endswith(records)}
    assert cf.leftovers() == []
    cf.assert_version_complete(1)


def test_disk_full_while_writing_the_new_version(lab: Any, tmpfs: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up (another process) between the order and the write of the new
    version: the certificate is lost to this run, not the one already active. Once there is
    room again, the next run resumes the same order instead of placing another."""
    cf = Runner(lab, tmpfs / "state")
    assert cf.issue()[0] == 0
    version_1 = {p: d for p, d in cf.snapshot().items() if "versions/1" in p}
    original = Store.activate
    fillers: list[Path] = []

    def activate(self: Store, *args: Any, **kw: Any) -> Any:
        fillers.append(fill(tmpfs, 8 << 10))  # two pages: two of the five files fit
        return original(self, *args, **kw)

    monkeypatch.setattr(Store, "activate", activate)
    orders = orders_seen(lab)
    rc, out = cf.issue("--force")
    assert rc == 1
    assert out == (f"{NAME}: failed: {cf.cert_dir / 'versions' / '2'}: cannot write new "
                   "version: disk full\n")
    assert orders_seen(lab) == orders + 1
    cf.assert_version_complete(1)
    assert {p: d for p, d in cf.snapshot().items() if "versions/1" in p} == version_1
    assert sorted(os.listdir(cf.cert_dir / "versions")) == ["1"]
    assert cf.leftovers() == []

    monkeypatch.setattr(Store, "activate", original)
    fillers[0].unlink()
    rc, out = cf.issue("--force")
    assert rc == 0, out
    cf.assert_version_complete(2)
    assert orders_seen(lab) == orders + 1   # the recorded order was finished, not redone
    assert cf.leftovers() == []


@pytest.mark.parametrize("command", ["issue", "run", "revoke", "status"])
def test_read_only_state_directory(lab: Any, tmpfs: Path, tmp_path: Path,
                                   command: str) -> None:
    cf = Runner(lab, tmpfs / "state")
    assert cf.issue()[0] == 0
    domains = tmp_path / "domains.txt"
    domains.write_text(f"{NAME}\n")
    config = write_config(tmp_path / "certfleet.toml", lab, cf.state, domains)
    before = cf.snapshot()
    orders = orders_seen(lab)
    serial = Store(cf.state).current(NAME).meta.serial  # type: ignore[union-attr]
    done = _mount("-o", "remount,ro", str(tmpfs))
    assert done.returncode == 0, done.stderr
    try:
        runs: dict[str, Callable[[], tuple[int, str]]] = {
            "issue": lambda: cf.issue("--force"),
            "revoke": lambda: _cli("revoke", NAME, "--state-dir", str(cf.state),
                                   "--directory", lab.directory_url,
                                   "--ca-bundle", str(lab.ca_bundle)),
            "status": lambda: _cli("status", "--state-dir", str(cf.state)),
            "run": lambda: _cli("run", "--config", str(config), "--force"),
        }
        rc, out = runs[command]()
    finally:
        assert _mount("-o", "remount,rw", str(tmpfs)).returncode == 0
    if command == "status":  # reading needs no writing
        assert rc == 0, out
        assert out.startswith(f"{NAME}: {NAME}; expires ")
    else:
        assert rc == 1
        lines = out.splitlines()
        if command == "run" and lines[-1].startswith("1 certificate: "):
            lines = lines[:-1]  # a failed certificate's line, then the summary
        assert len(lines) == 1, out
        # the certificate failed, or (run) the whole run refused to start
        who = f"{NAME}: failed" if command == "revoke" else "certfleet"
        assert lines[0].startswith((f"{NAME}: failed: {cf.state}/", f"{who}: {cf.state}/"))
        assert "Read-only file system" in lines[0]
        assert orders_seen(lab) == orders
        assert lab.cert_status(serial)["Status"] == "Valid"
    assert cf.snapshot() == before
    cf.assert_version_complete(1)


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(list(argv))
    print(f"$ certfleet {' '.join(argv)}\n{out.getvalue()}[exit {rc}]")
    return rc, out.getvalue()
