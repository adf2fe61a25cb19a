"""certfleet.store.Store on a real state directory: versions, links, modes, pruning, locks."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certfleet import fsutil
from certfleet.errors import StoreError
from certfleet.ratelimits import Ledger
from certfleet.standing import of as standing_of
from certfleet.state import CertState, PendingOrder
from certfleet.store import (
    MIN_FREE_BYTES,
    PEM_FILES,
    Snapshot,
    Store,
    StoredCert,
    VersionMeta,
    ca_id,
)
from tests.conftest import need_root

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


def test_prune_before_any_version_is_active_keeps_the_last(store: Store) -> None:
    """Versions written but none switched to yet (a first issuance cut short)."""
    versions = store.cert_dir(NAME) / "versions"
    for version in range(1, 8):
        (versions / str(version)).mkdir()
    assert store.current(NAME) is None
    store.prune(NAME)
    assert store.versions(NAME) == [3, 4, 5, 6, 7]


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


def test_each_ca_has_its_order_ledger_beside_its_account(store: Store) -> None:
    url, other = "https://acme.example/directory", "https://other.example/directory"
    placed = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)
    assert store.order_ledger(url) == Ledger()
    changed = store.change_order_ledger(url, lambda ledger: Ledger((*ledger.placed, placed)))
    assert changed == Ledger((placed,))
    assert store.order_ledger(url) == Ledger((placed,))
    assert store.order_ledger(other) == Ledger()
    assert (store.root / "accounts" / ca_id(url) / "orders.json").is_file()
    reader = Store(store.root, create=False)
    assert reader.order_ledger(url) == Ledger((placed,))
    assert reader.order_ledger(other) == Ledger()
    assert not (store.root / "accounts" / ca_id(other)).exists()   # reading creates nothing


def test_has_cert_creates_nothing(store: Store) -> None:
    assert not store.has_cert(NAME)
    assert not (store.root / "certs" / NAME).exists()
    activate(store, 1)
    assert store.has_cert(NAME)
    assert not store.has_cert("other.example")
    (store.root / "certs" / "gone.example").symlink_to("nowhere")   # even a dangling link
    assert store.has_cert("gone.example")


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
    assert store.snapshot([NAME])[NAME].standing.serial == 0xABC1
    index = store.root / "index.json"
    assert '"abc1"' in index.read_text()
    # A cached entry is trusted: prove it by planting a marker in the index.
    index.write_text(index.read_text().replace('"ec256"', '"cached"'))
    snap = store.snapshot([NAME])[NAME]
    assert snap.standing.key_type == "cached"
    assert snap.meta is not None
    assert snap.meta.key_type == "ec256"  # the records themselves are read when asked for
    activate(store, 2)  # renames inside the directory: its mtime moves, the entry is stale
    assert store.snapshot([NAME])[NAME].standing.serial == 0xABC2
    _age(store)
    store.snapshot([NAME])
    state = update(store, NAME, lambda s: s.deployed("x", NOW, 0xABC2, 2))
    snap = store.snapshot([NAME])[NAME]
    assert snap.state == state
    assert snap.standing.deployed == {"x"}


def test_snapshot_does_not_trust_a_fresh_entry(store: Store) -> None:
    activate(store, 1)
    store.snapshot([NAME])  # the directory changed just now: not cached as valid
    index = store.root / "index.json"
    index.write_text(index.read_text().replace('"ec256"', '"cached"'))
    assert store.snapshot([NAME])[NAME].standing.key_type == "ec256"


@pytest.mark.parametrize("text", ["{not json", '{"format": 1, "certs": {}}', "[]",
                                  '{"format": 2, "certs": {"www.example.com": [1, 2, 3]}}'])
def test_damaged_index_is_ignored(store: Store, text: str) -> None:
    activate(store, 1)
    _age(store)
    (store.root / "index.json").write_text(text)
    assert store.snapshot([NAME])[NAME].standing.serial == 0xABC1


def test_a_bad_entry_is_read_again_from_the_records(store: Store) -> None:
    activate(store, 1)
    _age(store)
    store.snapshot([NAME])
    index = store.root / "index.json"
    for bad in ('"abc1"', "1735689600.0", "true", "[]"):
        text = index.read_text()
        planted = text.replace(bad, '"?"' if bad != '"abc1"' else '"not hex!"', 1)
        assert planted != text
        index.write_text(planted)
        assert store.snapshot([NAME])[NAME].standing.serial == 0xABC1
        _age(store)  # the rewritten entry would be racy otherwise
        store.snapshot([NAME])


def test_records_that_changed_behind_the_index_are_damage_not_a_crash(store: Store) -> None:
    activate(store, 1)
    _age(store)
    store.snapshot([NAME])
    meta_file = store.root / "certs" / NAME / "versions" / "1" / "meta.json"
    meta_file.write_text("{damaged")  # inside the version: the entry still looks fresh
    snap = store.snapshot([NAME])[NAME]
    assert snap.standing.serial == 0xABC1
    assert snap.meta is None
    assert "damaged JSON" in (snap.damage or "")


def test_sweep_drops_a_pending_key_that_is_already_active(store: Store) -> None:
    activate(store, 1)
    store.save_pending_key(NAME, files(1)["privkey.pem"])  # a killed activation's leftover
    store.sweep()
    assert store.load_pending_key(NAME) is None
    store.save_pending_key(NAME, b"a different, real pending key")
    store.sweep()
    assert store.load_pending_key(NAME) == b"a different, real pending key"


# -- an activation cut short between writing the version and switching to it -----------------

class _Killed(BaseException):
    """Stands for SIGKILL at one moment: nothing after it runs."""


def test_no_moment_of_an_activation_has_the_pending_key_active(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    activate(store, 1)
    store.save_pending_key(NAME, files(2)["privkey.pem"])
    seen: list[tuple[bytes | None, str]] = []
    real = Store._switch

    def watched(self: Store, base: Path, version: int, has_key: bool) -> None:
        seen.append((store.load_pending_key(NAME), os.readlink(base / "current")))
        real(self, base, version, has_key)

    monkeypatch.setattr(Store, "_switch", watched)
    activate(store, 2)
    assert seen == [(None, "versions/1")]  # the pending key went before the switch


def test_a_version_written_but_never_switched_to_is_activated_next_time(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    activate(store, 1)
    store.save_pending_key(NAME, files(2)["privkey.pem"])

    def killed(self: Store, base: Path, version: int, has_key: bool) -> None:
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(Store, "_switch", killed)
        with pytest.raises(_Killed):
            activate(store, 2)
    current = store.current(NAME)
    assert current is not None
    assert current.meta.version == 1
    assert store.versions(NAME) == [1, 2]
    assert store.finish_activation(NAME, "https://ca/order/9") is None  # another order's
    done = store.finish_activation(NAME, meta(2).order_url)
    assert done == store.current(NAME)
    assert done is not None
    assert done.meta == meta(2)
    assert os.readlink(store.root / "certs" / NAME / "current") == "versions/2"
    assert (store.root / "certs" / NAME / "privkey.pem").read_bytes() == files(2)["privkey.pem"]
    assert store.finish_activation(NAME, meta(2).order_url) is None  # nothing left to finish


def test_what_reaches_the_disk_before_current_moves(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The order of the syncs and renames is the promise for a power cut: every file of a
    version and the version itself are on disk before ``current`` moves to it; the stable
    links made on a first issuance too, with one sync of their directory for all of them;
    and a certificate from the operator's CSR gets no key link."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename
    real_symlink = os.symlink
    root = str(store.root)

    def seen(what: str, path: str) -> None:
        calls.append((what, re.sub(r"\.tmp-[0-9]+-[0-9a-f]+", ".tmp", path.replace(root, ""))))

    def fsync(fd: int) -> None:
        seen("fsync", os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def renamed_over(src: Any, dst: Any) -> None:
        seen("replace", str(dst))
        real_replace(src, dst)

    def renamed(src: Any, dst: Any) -> None:
        seen("rename", str(dst))
        real_rename(src, dst)

    def linked(target: Any, dst: Any) -> None:
        real_symlink(target, dst)
        seen("symlink", str(dst))  # made (a link that is there already refuses one)

    monkeypatch.setattr(os, "symlink", linked)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", renamed_over)
    monkeypatch.setattr(os, "rename", renamed)

    def version(cert: str, number: int, pems: tuple[str, ...]) -> list[tuple[str, str]]:
        where = f"/certs/{cert}/versions"
        return [*(("fsync", f"{where}/.{number}.tmp/{pem}") for pem in (*pems, "meta.json")),
                ("fsync", f"{where}/.{number}.tmp"), ("rename", f"{where}/{number}"),
                ("fsync", where)]

    base = f"/certs/{NAME}"
    activate(store, 1)
    assert calls == [*version(NAME, 1, PEM_FILES),
                     *(("symlink", f"{base}/{pem}") for pem in PEM_FILES), ("fsync", base),
                     ("symlink", f"{base}/current"), ("fsync", base)]
    calls.clear()
    activate(store, 2)
    assert calls == [*version(NAME, 2, PEM_FILES), ("symlink", f"{base}/.current.tmp"),
                     ("replace", f"{base}/current"), ("fsync", base)]
    calls.clear()
    csr, no_key = "csr.example", PEM_FILES[:3]
    store.activate(csr, {pem: files(1)[pem] for pem in no_key},
                   replace(meta(1, csr), key_type="csr"))
    assert calls == [*version(csr, 1, no_key),
                     *(("symlink", f"/certs/{csr}/{pem}") for pem in no_key),
                     ("fsync", f"/certs/{csr}"), ("symlink", f"/certs/{csr}/current"),
                     ("fsync", f"/certs/{csr}")]


def test_finishing_skips_a_damaged_newer_version(store: Store) -> None:
    activate(store, 1)
    newer = store.root / "certs" / NAME / "versions" / "2"
    newer.mkdir(mode=0o700)
    (newer / "meta.json").write_text("{damaged")
    assert store.finish_activation(NAME, meta(2).order_url) is None
    assert os.readlink(store.root / "certs" / NAME / "current") == "versions/1"


def _never_switched(store: Store, monkeypatch: pytest.MonkeyPatch, version: VersionMeta,
                    without: tuple[str, ...] = ()) -> None:
    """``version`` written (but its files ``without``), then the process killed before
    ``current`` moved."""
    def killed(self: Store, base: Path, number: int, has_key: bool) -> None:
        raise _Killed

    written = {pem: data for pem, data in files(version.version).items() if pem not in without}
    with monkeypatch.context() as patch:
        patch.setattr(Store, "_switch", killed)
        with pytest.raises(_Killed):
            store.activate(NAME, written, version)


def test_finishing_looks_past_damaged_and_empty_newer_versions(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    activate(store, 1)
    _never_switched(store, monkeypatch, meta(2))
    versions = store.root / "certs" / NAME / "versions"
    (versions / "3").mkdir(mode=0o700)
    (versions / "3" / "meta.json").write_text("{damaged")
    (versions / "4").mkdir(mode=0o700)   # no meta.json at all
    done = store.finish_activation(NAME, meta(2).order_url)
    assert done is not None
    assert done.meta == meta(2)
    assert os.readlink(store.root / "certs" / NAME / "current") == "versions/2"


def test_finishing_a_certificate_from_a_csr_makes_no_key_link(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    csr = replace(meta(1), key_type="csr")
    _never_switched(store, monkeypatch, csr, without=("privkey.pem",))
    assert store.finish_activation(NAME, csr.order_url) == store.current(NAME)
    assert sorted(p.name for p in (store.root / "certs" / NAME).iterdir() if p.is_symlink()) \
        == ["cert.pem", "chain.pem", "current", "fullchain.pem"]


def test_finishing_takes_the_newest_version_written_for_the_order(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # Killed twice before the switch, the same order's certificate written each time.
    activate(store, 1)
    _never_switched(store, monkeypatch, meta(2))
    _never_switched(store, monkeypatch, replace(meta(3), order_url=meta(2).order_url))
    done = store.finish_activation(NAME, meta(2).order_url)
    assert done is not None
    assert done.meta.version == 3
    assert os.readlink(store.root / "certs" / NAME / "current") == "versions/3"


def test_the_stable_links_exist_before_the_first_current(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed right after ``current`` first appears: the paths nginx reads are there."""
    real = os.symlink
    base = store.root / "certs" / NAME

    def symlink(target: str, dst: str | Path) -> None:
        real(target, dst)
        if Path(dst) == base / "current":  # a first one is made in place, not renamed
            assert all(os.readlink(base / pem) == f"current/{pem}" for pem in PEM_FILES)
            raise _Killed

    monkeypatch.setattr(os, "symlink", symlink)
    with pytest.raises(_Killed):
        activate(store, 1)
    assert all((base / pem).read_bytes() == files(1)[pem] for pem in PEM_FILES)


def test_a_run_marker_that_cannot_be_removed_is_a_warning_not_a_traceback(
        store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path.parent.name == "runs":  # the state directory changed under the run
            raise PermissionError(13, "Permission denied")
        real(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    with store.running():
        pass
    assert "cannot remove this run's marker: Permission denied" in caplog.text


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


# -- a switch the filesystem refuses ------------------------------------------------------------

@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """``chattr +i``: not even root may create, remove or rename an entry of ``folder`` (a
    real EPERM from the filesystem); its subdirectories stay writable."""
    chattr = shutil.which("chattr")
    done = subprocess.run([chattr, "+i", str(folder)], capture_output=True, text=True,
                          check=False) if chattr else None
    if done is None or done.returncode != 0:
        reason = "chattr +i does not work here: " + (done.stderr.strip() if done else "none")
        if os.environ.get("CI"):
            pytest.fail(f"{reason} [CI is set: not skipping]", pytrace=False)
        pytest.skip(reason)
    try:
        yield
    finally:
        subprocess.run([chattr or "chattr", "-i", str(folder)], check=True)


def test_a_switch_the_filesystem_refuses_keeps_the_old_version_until_finished(
        store: Store) -> None:
    """The new version is written (versions/ is writable), then the certificate's directory
    refuses the new ``current``: the old version stays active, whole, behind the stable
    links; nothing temporary is left; the written version is switched to later."""
    activate(store, 1)
    base = store.root / "certs" / NAME
    store.save_pending_key(NAME, files(2)["privkey.pem"])
    entries = sorted(os.listdir(base))
    with immutable(base):
        with pytest.raises(StoreError) as caught:
            activate(store, 2)
        assert str(caught.value) == (f"{base / 'current'}: cannot switch link: Operation not "
                                     "permitted")
        assert os.readlink(base / "current") == "versions/1"
        assert all((base / pem).read_bytes() == files(1)[pem] for pem in PEM_FILES)
        assert sorted(os.listdir(base)) == entries
        assert store.load_pending_key(NAME) is None   # its key is in version 2 now
    assert store.versions(NAME) == [1, 2]
    assert (base / "versions" / "2" / "privkey.pem").read_bytes() == files(2)["privkey.pem"]
    done = store.finish_activation(NAME, meta(2).order_url)
    assert done is not None
    assert done.meta == meta(2)
    assert all((base / pem).read_bytes() == files(2)[pem] for pem in PEM_FILES)


def test_a_switch_onto_a_directory_fails_and_leaves_no_temporary_link(store: Store) -> None:
    """``current`` replaced by a directory: the temporary link is made, the rename over
    ``current`` fails (EISDIR, a real one), and the temporary link is removed again."""
    activate(store, 1)
    base = store.root / "certs" / NAME
    (base / "current").unlink()
    (base / "current").mkdir()
    with pytest.raises(StoreError) as caught:
        activate(store, 2)
    assert str(caught.value) == f"{base / 'current'}: cannot switch link: Is a directory"
    assert not [n for n in os.listdir(base) if fsutil.TMP_MARK in n]
    assert (base / "current").is_dir()
    assert not (base / "current").is_symlink()
    assert store.versions(NAME) == [1, 2]


# -- a state directory of another user --------------------------------------------------------

@pytest.fixture
def nobody() -> int:
    """The uid of ``nobody``; chown needs root (CI runs as root: there it must not skip)."""
    need_root("a directory owned by another user")
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
    # Checked once per process (only this user can change what is inside STATE): a new
    # process, as a new Store, sees it.
    with pytest.raises(StoreError, match=f"owned by uid {nobody}"):
        activate(Store(store.root), 2)
    os.chown(store.root / "certs" / NAME, os.geteuid(), -1)
    os.chown(store.root / "certs" / NAME / "versions" / "1", nobody, -1)
    with pytest.raises(StoreError, match=f"versions/1: owned by uid {nobody}, not by this user"):
        store.current(NAME)


# -- the files on disk, as an operator reads them -------------------------------------------------

def test_records_are_sorted_indented_json_with_a_final_newline(store: Store) -> None:
    url = "https://acme.example/directory"
    store.save_account(url, {"url": "https://acme.example/acct/1", "contact": ["a"]})
    account = store.account_dir(url) / "account.json"
    assert account.read_text() == ('{\n  "contact": [\n    "a"\n  ],\n'
                                   '  "url": "https://acme.example/acct/1"\n}\n')
    assert mode_of(account) == 0o600
    update(store, NAME, lambda s: s.revoking(0xAB, NOW))
    state = store.root / "certs" / NAME / "state.json"
    assert state.read_text() == (
        '{\n  "revocation": {\n    "at": "2026-11-29T12:00:00+00:00",\n'
        '    "confirmed": false,\n    "serial": "ab"\n  }\n}\n')
    activate(store, 1)
    meta_json = (store.root / "certs" / NAME / "versions" / "1" / "meta.json").read_text()
    assert meta_json.startswith('{\n  "aki": "00ff",\n  "directory": "https://ca/dir",\n')
    assert meta_json.endswith('  "version": 1\n}\n')


def test_clock_record(store: Store) -> None:
    assert store.read_clock() == {}
    store.write_clock({"checked_at": NOW.isoformat(), "skew_seconds": 1.5})
    path = store.root / "clock.json"
    assert path.read_text() == ('{\n  "checked_at": "2026-11-29T12:00:00+00:00",\n'
                                '  "skew_seconds": 1.5\n}\n')
    assert mode_of(path) == 0o600
    assert store.read_clock() == {"checked_at": NOW.isoformat(), "skew_seconds": 1.5}
    path.write_text("[1]")
    assert store.read_clock() == {}   # damaged: compared again, never a failure
    path.write_text("{}")
    assert store.read_clock() == {}


def test_a_damaged_json_record_names_its_file(store: Store) -> None:
    url = "https://acme.example/directory"
    path = store.account_dir(url) / "account.json"
    path.write_text("[1, 2]")
    with pytest.raises(StoreError, match=rf"^{path}: damaged: not a JSON object$"):
        store.load_account(url)
    path.write_text("{not json")
    with pytest.raises(StoreError, match=rf"^{path}: damaged JSON: Expecting property name"):
        store.load_account(url)
    path.write_text("[" * 100_000)
    with pytest.raises(StoreError, match=rf"^{path}: damaged JSON: "):
        store.load_account(url)


def test_a_damaged_state_record_says_what_to_do(store: Store) -> None:
    path = store.cert_dir(NAME) / "state.json"
    path.write_text('{"last": {"at": "x"}}')
    with pytest.raises(StoreError) as caught:
        store.load_state(NAME)
    assert str(caught.value) == (f"{path}: damaged: last.result is not a string; move it "
                                 "aside to start the record afresh (the certificate itself is "
                                 "kept)")


def test_a_state_record_of_exactly_the_limit_is_written_and_read_back(store: Store) -> None:
    from certfleet.store.files import STATE_LIMIT

    def sized(extra: int) -> Callable[[CertState], CertState]:
        def change(state: CertState) -> CertState:
            for i in range(960):
                state = state.deploy_failed(f"t{i:04}", NOW, "e" * 1000)
            return state.with_order("https://ca/order/1", [NAME, "p" * extra])
        return change

    base = len(json.dumps(sized(0)(CertState()).to_json(), indent=2, sort_keys=True)) + 1
    assert base < STATE_LIMIT
    fits = sized(STATE_LIMIT - base)
    state = update(store, NAME, fits)
    path = store.root / "certs" / NAME / "state.json"
    assert path.stat().st_size == STATE_LIMIT
    assert store.load_state(NAME) == state
    with pytest.raises(StoreError, match=f"^{NAME}: state record would exceed {STATE_LIMIT} "
                                         "bytes$"):
        update(store, NAME, sized(STATE_LIMIT - base + 1))
    assert store.load_state(NAME) == state


# -- opening a store -----------------------------------------------------------------------------

def test_a_read_only_store_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "state"
    with pytest.raises(StoreError) as caught:
        Store(root, create=False)
    assert str(caught.value) == (f"state directory {root} does not exist (nothing issued "
                                 "there yet, or a mistyped --state-dir / state_dir?)")
    assert not root.exists()
    root.mkdir(mode=0o700)
    reader = Store(root, create=False)
    assert reader.root == root
    assert not reader.writable
    url = "https://acme.example/directory"
    assert reader.account_dir(url) == root / "accounts" / ca_id(url)
    assert reader.challenge_dir() == root / "challenges"
    assert reader.load_account(url) is None
    assert reader.snapshot([NAME]) == {NAME: Snapshot(None, CertState())}
    assert os.listdir(root) == []


def test_a_writable_store_makes_its_directories(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    assert store.writable
    assert sorted(os.listdir(store.root)) == ["accounts", "certs", "challenges"]
    assert store.challenge_dir() == store.root / "challenges"
    url = "https://acme.example/directory"
    assert store.account_dir(url).is_dir()
    assert mode_of(store.account_dir(url)) == 0o700
    assert mode_of(store.root) == 0o700


def test_a_read_only_store_refuses_a_state_directory_others_can_write(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir(mode=0o700)
    root.chmod(0o757)
    with pytest.raises(StoreError, match=f"^{root}: writable by group or others"):
        Store(root, create=False)


def test_stores_of_one_directory_share_it(tmp_path: Path) -> None:
    writer = Store(tmp_path / "state")
    activate(writer, 1)
    reader = Store(tmp_path / "state", create=False)
    current = reader.current(NAME)
    assert current is not None
    assert current == StoredCert(NAME, writer.root / "certs" / NAME, meta(1))
    assert reader.all_names() == [NAME]


# -- versions ---------------------------------------------------------------------------------

def test_versions_and_next_version(store: Store) -> None:
    assert store.versions(NAME) == []
    assert store.next_version(NAME) == 1
    activate(store, 1)
    (store.cert_dir(NAME) / "versions" / "notes").mkdir()
    (store.cert_dir(NAME) / "versions" / f".3{fsutil.TMP_MARK}{os.getpid()}-0123456789ab").mkdir()
    assert store.versions(NAME) == [1]
    assert store.next_version(NAME) == 2


def test_activate_returns_the_active_version(store: Store) -> None:
    stored = store.activate(NAME, files(4), meta(4))
    assert stored == StoredCert(NAME, store.root / "certs" / NAME, meta(4))
    assert stored.file("cert.pem") == store.root / "certs" / NAME / "versions" / "4" / "cert.pem"
    assert store.current(NAME) == stored


def test_a_certificate_from_the_operators_csr_has_no_key(store: Store) -> None:
    activate(store, 1)
    keyless = {pem: data for pem, data in files(2).items() if pem != "privkey.pem"}
    stored = store.activate(NAME, keyless, replace(meta(2), key_type="csr"))
    base = store.root / "certs" / NAME
    assert sorted(os.listdir(base / "versions" / "2")) == ["cert.pem", "chain.pem",
                                                           "fullchain.pem", "meta.json"]
    assert not os.path.lexists(base / "privkey.pem")  # the stable link would dangle
    for pem in ("cert.pem", "chain.pem", "fullchain.pem"):
        assert (base / pem).read_bytes() == f"{pem} v2\n".encode()
    with pytest.raises(StoreError, match=r"versions/2/privkey.pem: missing from the active "
                                         "version$"):
        store.read_file(stored, "privkey.pem")
    activate(store, 3)   # a key again: its link comes back
    assert os.readlink(base / "privkey.pem") == "current/privkey.pem"
    assert (base / "privkey.pem").read_bytes() == b"privkey.pem v3\n"


def test_a_version_without_a_certificate_is_refused_whole(store: Store) -> None:
    partial = files(1)
    del partial["cert.pem"]
    with pytest.raises(StoreError) as caught:
        store.activate(NAME, partial, meta(1))
    final = store.root / "certs" / NAME / "versions" / "1"
    assert str(caught.value) == f"{final}: incomplete version: no 'cert.pem'"
    assert os.listdir(final.parent) == []
    assert not os.path.lexists(store.root / "certs" / NAME / "current")


@pytest.mark.parametrize(("error", "reason"), [(errno.ENOSPC, "disk full"),
                                               (errno.EROFS, "Read-only file system")])
def test_a_version_that_cannot_be_written_leaves_the_old_one(
        store: Store, monkeypatch: pytest.MonkeyPatch, error: int, reason: str) -> None:
    activate(store, 1)
    real = fsutil.write_new

    def failing(path: Path, data: bytes, mode: int) -> None:
        if path.name == "fullchain.pem":
            raise OSError(error, os.strerror(error))
        real(path, data, mode)

    monkeypatch.setattr(fsutil, "write_new", failing)
    with pytest.raises(StoreError) as caught:
        activate(store, 2)
    versions = store.root / "certs" / NAME / "versions"
    assert str(caught.value) == f"{versions / '2'}: cannot write new version: {reason}"
    assert os.listdir(versions) == ["1"]
    assert os.readlink(store.root / "certs" / NAME / "current") == "versions/1"


def test_a_version_write_error_without_a_text(store: Store,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(path: Path, data: bytes, mode: int) -> None:
        raise OSError("no strerror here")

    monkeypatch.setattr(fsutil, "write_new", failing)
    with pytest.raises(StoreError, match=r"versions/1: cannot write new version: no strerror "
                                         "here$"):
        activate(store, 1)


def test_stable_links_are_made_once_and_mended(store: Store,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    activate(store, 1)
    base = store.root / "certs" / NAME
    (base / "chain.pem").unlink()
    (base / "cert.pem").unlink()
    (base / "cert.pem").symlink_to("versions/1/cert.pem")   # pinned by hand: mended
    switched: list[str] = []
    real = fsutil.replace_symlink

    def spy(link: Path, target: str, **options: Any) -> None:
        switched.append(link.name)
        real(link, target, **options)

    monkeypatch.setattr(fsutil, "replace_symlink", spy)
    activate(store, 2)
    assert sorted(switched) == ["cert.pem", "chain.pem", "current"]
    for pem in PEM_FILES:
        assert os.readlink(base / pem) == f"current/{pem}"
        assert (base / pem).read_bytes() == f"{pem} v2\n".encode()


def test_a_failed_activation_leaves_no_temporary_directory(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(StoreError, match=r"cannot write new version: Input/output error$"):
        activate(store, 1)
    assert os.listdir(store.root / "certs" / NAME / "versions") == []


def test_prune(store: Store) -> None:
    for version in range(1, 4):
        activate(store, version)
    store.prune(NAME, keep=2)
    assert store.versions(NAME) == [2, 3]
    store.prune(NAME, keep=1)
    assert store.versions(NAME) == [3]
    versions = store.cert_dir(NAME) / "versions"
    for number in (1, 2):
        (versions / str(number)).mkdir()
    store.prune(NAME, keep=0)   # keep=0 keeps all: never the way to delete versions
    assert store.versions(NAME) == [1, 2, 3]


def test_prune_never_fails_on_a_version_it_cannot_remove(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for version in range(1, 7):
        activate(store, version)
    (store.cert_dir(NAME) / "versions" / "0").mkdir()
    (store.cert_dir(NAME) / "versions" / "0" / "stuck").write_bytes(b"")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "unlink", refuse)
    monkeypatch.setattr(os, "rmdir", refuse)
    store.prune(NAME)
    monkeypatch.undo()
    assert store.versions(NAME) == [0, 2, 3, 4, 5, 6]


# -- reading the active version -------------------------------------------------------------------

def test_read_file_repairs_a_readable_key_and_says_so(store: Store,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    activate(store, 1)
    current = store.current(NAME)
    assert current is not None
    key = current.file("privkey.pem")
    key.chmod(0o640)
    cert = current.file("cert.pem")
    cert.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="certfleet.store.files"):
        assert store.read_file(current, "cert.pem") == b"cert.pem v1\n"
        assert mode_of(cert) == 0o666            # certificates are public
        assert caplog.messages == []
        assert store.read_file(current, "privkey.pem") == b"privkey.pem v1\n"
    assert mode_of(key) == 0o600
    assert caplog.messages == [f"{key}: private key was mode 640; made it 0600"]
    assert store.read_file(current, "privkey.pem") == b"privkey.pem v1\n"
    assert len(caplog.messages) == 1


def test_read_file_of_a_missing_file(store: Store) -> None:
    activate(store, 1)
    current = store.current(NAME)
    assert current is not None
    for pem in ("cert.pem", "privkey.pem"):
        current.file(pem).unlink()
        with pytest.raises(StoreError) as caught:
            store.read_file(current, pem)
        assert str(caught.value) == f"{current.file(pem)}: missing from the active version"


def test_current_names_what_is_wrong(store: Store) -> None:
    activate(store, 1)
    base = store.root / "certs" / NAME
    version = base / "versions" / "1"
    (base / "current").unlink()
    (base / "current").symlink_to("versions/7")
    with pytest.raises(StoreError) as caught:
        store.current(NAME)
    assert str(caught.value) == f"{base / 'versions' / '7'}: missing (the active version is gone)"
    (base / "current").unlink()
    (base / "current").symlink_to("versions/1")
    (version / "meta.json").unlink()
    with pytest.raises(StoreError) as caught:
        store.current(NAME)
    assert str(caught.value) == f"{version / 'meta.json'}: missing (the active version is gone)"
    (version / "meta.json").write_text('{"version": 1}')
    with pytest.raises(StoreError, match=rf"^{version / 'meta.json'}: damaged metadata: "):
        store.current(NAME)
    (base / "current").unlink()
    (base / "current").symlink_to("versions/99999999999999999999")
    with pytest.raises(StoreError, match="missing"):
        store.current(NAME)


@pytest.mark.parametrize("mode", [0o720, 0o702, 0o770])
def test_a_version_directory_others_can_write_is_refused(store: Store, mode: int) -> None:
    activate(store, 1)
    version = store.root / "certs" / NAME / "versions" / "1"
    version.chmod(mode)
    with pytest.raises(StoreError) as caught:
        store.current(NAME)
    assert str(caught.value) == f"{version}: writable by group or others (mode {mode:o})"
    version.chmod(0o701)   # only writability matters
    assert store.current(NAME) is not None


def test_a_version_that_is_a_link_or_a_file_is_refused(store: Store, tmp_path: Path) -> None:
    activate(store, 1)
    version = store.root / "certs" / NAME / "versions" / "1"
    elsewhere = _planted_version(tmp_path / "elsewhere", 1)
    shutil.rmtree(version)
    version.symlink_to(elsewhere)
    with pytest.raises(StoreError) as caught:
        store.current(NAME)
    assert str(caught.value) == f"{version}: not a directory (a link or a file was put there)"
    version.unlink()
    version.write_bytes(b"")
    with pytest.raises(StoreError, match="not a directory"):
        store.current(NAME)


def test_a_version_that_cannot_be_inspected(store: Store, tmp_path: Path) -> None:
    activate(store, 1)
    base = store.root / "certs" / NAME
    (base / "versions").rename(base / "moved")
    (base / "versions").write_bytes(b"")  # versions/1 now lies under a file
    with pytest.raises(StoreError) as caught:
        store.current(NAME)
    assert str(caught.value) == f"{base / 'versions' / '1'}: cannot inspect: Not a directory"


def test_all_names_lists_certificate_directories_only(store: Store) -> None:
    assert store.all_names() == []
    activate(store, 1, "b.example")
    activate(store, 1, "a.example")
    (store.root / "certs" / "stray-file").write_bytes(b"")
    assert store.all_names() == ["a.example", "b.example"]
    shutil.rmtree(store.root / "certs")
    assert store.all_names() == []


# -- the pending key, the sweep -------------------------------------------------------------------

def test_sweep_keeps_what_it_cannot_judge(store: Store) -> None:
    activate(store, 1)
    activate(store, 1, "other.example")
    live = store.root / f".index.json{fsutil.TMP_MARK}{os.getpid()}-0123456789ab"
    live.write_bytes(b"a write in progress")
    store.save_pending_key(NAME, files(1)["privkey.pem"])
    (store.root / "certs" / NAME / "versions" / "1" / "meta.json").write_text("{")  # damaged
    pending = store.root / "certs" / "other.example" / "pending"
    (pending / "privkey.pem").mkdir(parents=True)   # not a file: unreadable
    store.sweep()
    assert live.read_bytes() == b"a write in progress"
    assert store.load_pending_key(NAME) == files(1)["privkey.pem"]
    assert (pending / "privkey.pem").is_dir()


def test_load_pending_key_reads_its_own_file_only(store: Store, tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(b"not mine")
    pending = store.cert_dir(NAME) / "pending"
    pending.mkdir(mode=0o700)
    (pending / "privkey.pem").symlink_to(tmp_path / "key")
    with pytest.raises(StoreError, match="cannot read"):
        store.load_pending_key(NAME)
    assert Store(store.root, create=False).load_pending_key("never.example") is None


# -- preflight ------------------------------------------------------------------------------------

def test_preflight_writes_a_probe_and_leaves_nothing(store: Store,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[tuple[Path, int, int]] = []
    real = fsutil.write_new

    def spy(path: Path, data: bytes, mode: int, **options: Any) -> None:
        probes.append((path, len(data), mode))
        real(path, data, mode, **options)

    monkeypatch.setattr(fsutil, "write_new", spy)
    store.preflight(NAME)
    base = store.root / "certs" / NAME
    ((path, size, mode),) = probes
    assert path.parent == base
    assert path.name.startswith(f".probe{fsutil.TMP_MARK}{os.getpid()}-")
    assert (size, mode) == (16384, 0o600)
    assert sorted(os.listdir(base)) == ["versions"]


def test_preflight_refuses_a_nearly_full_disk(store: Store,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.statvfs

    def nearly_full(path: object, blocks: int) -> object:
        info = real(path)  # type: ignore[arg-type]
        return type("Vfs", (), {"f_bavail": blocks, "f_frsize": info.f_frsize})

    frsize = real(store.root).f_frsize
    exact = MIN_FREE_BYTES // frsize
    monkeypatch.setattr(os, "statvfs", lambda p: nearly_full(p, exact))
    store.preflight(NAME)   # exactly enough
    monkeypatch.setattr(os, "statvfs", lambda p: nearly_full(p, exact - 1))
    with pytest.raises(StoreError) as caught:
        store.preflight(NAME)
    free = (exact - 1) * frsize
    assert str(caught.value) == (f"{store.root / 'certs' / NAME}: only {free} bytes free; "
                                 f"need {MIN_FREE_BYTES}")


def test_preflight_names_what_fails(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    base = store.cert_dir(NAME)

    def broken(_path: object) -> object:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "statvfs", broken)
    with pytest.raises(StoreError) as caught:
        store.preflight(NAME)
    assert str(caught.value) == f"{base}: cannot inspect: Input/output error"
    monkeypatch.undo()

    def read_only(path: Path, data: bytes, mode: int, **_options: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fsutil, "write_new", read_only)
    with pytest.raises(StoreError) as caught:
        store.preflight(NAME)
    assert str(caught.value) == f"{base}: not writable: Read-only file system"


def test_preflight_on_a_full_disk_removes_its_partial_probe(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write

    def full(fd: int, data: bytes) -> int:
        real(fd, data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StoreError, match=r"not writable: No space left on device$"):
        store.preflight(NAME)
    monkeypatch.undo()
    assert sorted(os.listdir(store.root / "certs" / NAME)) == ["versions"]


# -- locks ----------------------------------------------------------------------------------------

def test_try_lock_and_unlock(store: Store) -> None:
    assert not store.locks.holds(NAME)
    assert store.try_lock(NAME)
    assert store.locks.holds(NAME)
    assert (store.root / "certs" / NAME / "lock").is_file()
    assert mode_of(store.root / "certs" / NAME / "lock") == 0o600
    assert not store.try_lock(NAME)          # held by this process: not taken twice
    other = Store(store.root)
    assert not other.try_lock(NAME)          # another holder (an flock per open file)
    store.unlock(NAME)
    assert not store.locks.holds(NAME)
    assert other.try_lock(NAME)
    other.unlock(NAME)
    store.unlock(NAME)                       # not held: nothing happens
    assert store.try_lock(NAME)
    store.unlock(NAME)


def test_a_lock_file_that_is_a_link_is_refused(store: Store, tmp_path: Path) -> None:
    (tmp_path / "victim").write_bytes(b"keep")
    lock = store.cert_dir(NAME) / "lock"
    lock.symlink_to(tmp_path / "victim")
    with pytest.raises(StoreError) as caught:
        store.try_lock(NAME)
    assert str(caught.value) == f"{lock}: cannot lock: Too many levels of symbolic links"
    assert (tmp_path / "victim").read_bytes() == b"keep"


def test_unlock_closes_the_lock_file(store: Store) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        assert store.try_lock(NAME)
        store.unlock(NAME)
    assert len(os.listdir("/proc/self/fd")) == before
    other = Store(store.root)
    assert other.try_lock(NAME)
    assert len(os.listdir("/proc/self/fd")) == before + 1
    assert not store.try_lock(NAME)          # refused: its file is closed again
    assert len(os.listdir("/proc/self/fd")) == before + 1
    other.unlock(NAME)


def test_ca_id_is_readable_and_exact() -> None:
    url = "https://localhost:14000/dir"
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    assert ca_id(url) == f"localhost_14000-{digest}"
    v6 = "https://[2001:db8::1]:14000/dir"
    assert ca_id(v6) == f"2001_db8__1_14000-{hashlib.sha256(v6.encode()).hexdigest()[:8]}"
    assert ca_id("no host") == f"ca-{hashlib.sha256(b'no host').hexdigest()[:8]}"


def test_version_meta_written_before_aki_and_order_url_were_kept() -> None:
    data = meta(3).to_json()
    del data["aki"], data["order_url"]
    read = VersionMeta.from_json(data, "meta.json")
    assert (read.aki, read.order_url) == ("", "")
    assert read == replace(meta(3), aki="", order_url="")


# -- the planning index ---------------------------------------------------------------------------

def _index(store: Store) -> dict[str, Any]:
    data = json.loads((store.root / "index.json").read_text())
    assert isinstance(data, dict)
    return data


def _entry(store: Store, name: str = NAME) -> list[Any]:
    """A certificate's cached entry: [directory mtime (0: not trusted), standing]."""
    entry = _index(store)["certs"][name]
    assert isinstance(entry, list)
    return entry


def _plant(store: Store, name: str, standing: Any) -> None:
    """Change a cached standing: what snapshot then returns shows whether the cache was used."""
    index = _index(store)
    index["certs"][name][1] = standing
    (store.root / "index.json").write_text(json.dumps(index))


def _cached(store: Store, name: str = NAME) -> None:
    """Age the certificate's directory, then let a snapshot cache it."""
    _age(store, name)
    store.snapshot([name])
    assert _entry(store, name)[0] != 0


def test_the_index_keeps_the_standing_and_is_private(store: Store) -> None:
    activate(store, 1)
    state = update(store, NAME, lambda s: s.revoked(0xABC1, NOW))
    _cached(store)
    assert _entry(store) == [(store.root / "certs" / NAME).stat().st_mtime_ns,
                             standing_of(meta(1), state).to_json()]
    assert mode_of(store.root / "index.json") == 0o600
    planted = standing_of(meta(1), CertState())._replace(key_type="cached")
    _plant(store, NAME, planted.to_json())
    snap = store.snapshot([NAME])[NAME]
    assert snap.standing == planted
    assert (snap.meta, snap.state) == (meta(1), state)   # the records, read when asked for


def test_a_certificate_never_issued_is_indexed_with_its_standing(store: Store) -> None:
    state = update(store, NAME, lambda s: s.after_attempt(NOW, "failed", "no", asked_ca=True))
    assert store.snapshot([NAME])[NAME] == Snapshot(None, state)
    _cached(store)
    assert _entry(store)[1] == standing_of(None, state).to_json()
    assert _entry(store)[1][0] == []
    planted = standing_of(None, CertState())
    _plant(store, NAME, planted.to_json())
    assert store.snapshot([NAME])[NAME].standing == planted


def test_a_fresh_entry_is_stored_as_untrusted(store: Store) -> None:
    activate(store, 1)
    store.snapshot([NAME])
    assert _entry(store)[0] == 0


def test_an_entry_exactly_two_seconds_old_is_still_racy(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from certfleet.store import index as index_module

    activate(store, 1)
    mtime = (store.root / "certs" / NAME).stat().st_mtime_ns
    monkeypatch.setattr(index_module.time, "time_ns", lambda: mtime + index_module.RACY_NS)
    store.snapshot([NAME])
    assert _entry(store)[0] == 0
    monkeypatch.setattr(index_module.time, "time_ns", lambda: mtime + index_module.RACY_NS + 1)
    store.snapshot([NAME])
    assert _entry(store)[0] == mtime
    cached = standing_of(meta(1), CertState())._replace(key_type="cached")
    _plant(store, NAME, cached.to_json())
    assert store.snapshot([NAME])[NAME].standing.key_type == "cached"
    monkeypatch.setattr(index_module.time, "time_ns", lambda: mtime + index_module.RACY_NS)
    assert store.snapshot([NAME])[NAME].standing.key_type == "ec256"   # not trusted at the edge


def test_every_name_is_answered_in_order(store: Store) -> None:
    for name in ("a.example", "c.example"):
        activate(store, 1, name)
        _cached(store, name)
    (store.root / "certs" / "loop.example").symlink_to("loop.example")
    names = ["a.example", "missing.example", "loop.example", "c.example", "b.example"]
    snaps = store.snapshot(names)
    assert list(snaps) == names
    assert snaps["a.example"].meta == meta(1, "a.example")
    assert snaps["c.example"].meta == meta(1, "c.example")
    assert snaps["missing.example"] == Snapshot(None, CertState())
    assert snaps["b.example"] == Snapshot(None, CertState())
    folder = store.root / "certs" / "loop.example"
    assert snaps["loop.example"] == Snapshot(None, CertState(),
                                             f"{folder}: Too many levels of symbolic links")


def test_a_damaged_certificate_is_not_indexed(store: Store) -> None:
    activate(store, 1)
    (store.cert_dir(NAME) / "state.json").write_text("{")
    _age(store)
    snap = store.snapshot([NAME])[NAME]
    assert snap.meta is None
    assert snap.state == CertState()
    assert "damaged JSON" in (snap.damage or "")
    assert not (store.root / "index.json").exists()


@pytest.mark.parametrize("standing", [None, "x", [1, 2, 3], {"serial": "abc1"}])
def test_a_damaged_entry_is_read_again_from_the_files(store: Store, standing: Any) -> None:
    activate(store, 1)
    state = update(store, NAME, lambda s: s.revoked(0xABC1, NOW))
    _cached(store)
    _plant(store, NAME, standing)
    snap = store.snapshot([NAME])[NAME]
    assert snap == Snapshot(meta(1), state)
    assert snap.standing == standing_of(meta(1), state)


@pytest.mark.parametrize("content", ["[1, 2]", "null", "{", "\"x\""])
def test_an_index_that_is_not_an_object_is_ignored(store: Store, content: str) -> None:
    activate(store, 1)
    (store.root / "index.json").write_text(content)
    assert store.snapshot([NAME])[NAME].meta == meta(1)
    assert NAME in _index(store)["certs"]


def test_a_large_index_is_still_used(store: Store) -> None:
    activate(store, 1)
    _cached(store)
    index = _index(store)
    index["padding"] = "x" * (2 << 20)          # thousands of certificates' worth
    index["certs"][NAME][1][1] = "cached"        # the key type
    (store.root / "index.json").write_text(json.dumps(index))
    assert store.snapshot([NAME])[NAME].standing.key_type == "cached"


def test_the_index_is_rewritten_only_when_something_changed(store: Store) -> None:
    activate(store, 1)
    _cached(store)
    before = (store.root / "index.json").stat().st_ino
    store.snapshot([NAME])
    store.snapshot([NAME, "missing.example"])
    assert (store.root / "index.json").stat().st_ino == before


def test_a_read_only_store_never_writes_the_index(store: Store) -> None:
    activate(store, 1)
    _age(store)
    reader = Store(store.root, create=False)
    assert reader.snapshot([NAME])[NAME].meta == meta(1)
    assert not (store.root / "index.json").exists()


def test_an_index_that_cannot_be_written_is_no_fault(store: Store) -> None:
    activate(store, 1)
    (store.root / "index.json").mkdir()
    assert store.snapshot([NAME])[NAME].meta == meta(1)


def test_a_version_directory_is_private_from_creation(store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int]] = []
    real = os.chmod

    def spy(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        seen.append((Path(path).name, stat.S_IMODE(os.lstat(path).st_mode)))
        real(path, mode, *args, **kwargs)

    store.cert_dir(NAME)
    monkeypatch.setattr(os, "chmod", spy)
    old = os.umask(0)
    try:
        activate(store, 1)
    finally:
        os.umask(old)
    assert [mode for name, mode in seen if fsutil.TMP_MARK in name] == [0o700]


def test_a_failed_version_is_cleaned_up_even_when_cleaning_fails(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(path: Path, data: bytes, mode: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(fsutil, "write_new", failing)
    monkeypatch.setattr(os, "rmdir", refuse)
    with pytest.raises(StoreError, match=r"versions/1: cannot write new version: disk full$"):
        activate(store, 1)


def test_the_first_version_from_an_operators_csr(store: Store) -> None:
    keyless = {pem: data for pem, data in files(1).items() if pem != "privkey.pem"}
    store.activate(NAME, keyless, replace(meta(1), key_type="csr"))
    base = store.root / "certs" / NAME
    assert sorted(p for p in os.listdir(base) if p.endswith(".pem")) == [
        "cert.pem", "chain.pem", "fullchain.pem"]


@pytest.mark.parametrize("mode", [0o777, 0o730])
def test_a_challenge_directory_others_can_write_is_refused(store: Store, mode: int) -> None:
    (store.root / "challenges").chmod(mode)
    with pytest.raises(StoreError, match="challenges: writable by group or others"):
        store.challenge_dir()
    shutil.rmtree(store.root / "challenges")
    assert store.challenge_dir().is_dir()     # made again when missing


def test_prune_with_nothing_to_keep_keeps_everything(store: Store) -> None:
    for version in range(1, 4):
        activate(store, version)
    store.prune(NAME, keep=-1)
    assert store.versions(NAME) == [1, 2, 3]


def test_the_account_key_is_read_from_where_the_store_keeps_it(tmp_path: Path) -> None:
    from certfleet.account_key import AccountKey
    from certfleet.keytypes import KeyType

    store = Store(tmp_path / "state")
    url = "https://ca.example/dir"
    assert store.account_key(url) is None
    made = AccountKey.generate(KeyType.EC256)
    made.save_new(store.account_key_path(url))
    found = store.account_key(url)
    assert found is not None
    assert found.jwk == made.jwk


def test_open_store_opens_the_store_the_job_names(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from certfleet.keytypes import KeyType
    from certfleet.spec import JobConfig, StoreSettings
    from certfleet.store import open_store, postgres

    job = JobConfig(directory="https://ca.example/dir", state_dir=tmp_path / "state",
                    certs=())
    with pytest.raises(StoreError, match="does not exist"):
        open_store(job, create=False)
    opened = open_store(job)
    assert isinstance(opened, Store)
    assert (opened.root, opened.writable) == (tmp_path / "state", True)
    assert isinstance(open_store(job, create=False), Store)
    assert not open_store(job, create=False).writable
    made: list[tuple[Any, ...]] = []
    monkeypatch.setattr(postgres, "PgStore", lambda *a, **kw: made.append((a, kw)) or "pg")
    settings = StoreSettings(backend="postgresql", dsn="postgresql://cf@db/cf", key=b"k" * 32)
    shared = replace(job, store=settings, account_key_type=KeyType.RSA2048)
    assert open_store(shared, create=False) == "pg"
    assert made == [((tmp_path / "state", settings),
                     {"create": False, "account_key_type": KeyType.RSA2048})]


def test_killed_runs_are_the_markers_of_processes_gone(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    assert store.killed_runs() == []                      # no runs/ yet
    runs = fsutil.secure_dir(store.root / "runs")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for name in (str(os.getpid()), gone, "notes.txt", ".12345.tmp"):
        (runs / name).touch()
    assert store.killed_runs() == [runs / gone]           # a live run and stray files: not
