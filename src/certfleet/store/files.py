"""The default store: versioned certificates, state records and locks in a directory.

Touches the state directory only. Layout (every file written temp → fsync → rename)::

    STATE/accounts/<ca-id>/account.key, account.json
    STATE/accounts/<ca-id>/orders.json, orders.lock   new orders placed lately (ledger.py)
    STATE/certs/<name>/versions/<n>/{privkey,cert,chain,fullchain}.pem, meta.json
    STATE/certs/<name>/current -> versions/<n>        one atomic symlink swap activates
    STATE/certs/<name>/{cert,chain,fullchain,privkey}.pem -> current/...   stable paths
    STATE/certs/<name>/pending/privkey.pem            key of an order not yet finished
    STATE/certs/<name>/state.json                     the CertState record
    STATE/certs/<name>/lock                           flock while ordering or recording
    STATE/challenges/                                 http-01 tokens (responder mode)

A version directory is complete before it is renamed into place, and ``current`` moves only
after that, so a crash at any moment leaves the previous version active and whole (the
steps are ``versions.py``'s; when they run is decided here). Opened
read-only (``create=False``) the store creates and writes nothing, and a missing state
directory is an error naming it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fsutil
from ..errors import FleetBusy, StoreError
from ..gcpause import paused
from ..names import storage_name
from ..ratelimits import Ledger
from ..state import CertState, StateDamaged
from . import ledger
from . import versions as lifecycle  # `versions` is also a method here
from .index import Snapshot, snapshot
from .locks import LOCK_WAIT, Locks
from .meta import StoredCert, VersionMeta, ca_id
from .versions import KEEP_VERSIONS

if TYPE_CHECKING:
    from ..account_key import AccountKey
    from .pg_tokens import DbTokens

log = logging.getLogger(__name__)
STATE_LIMIT = 1 << 20


def account_dir(root: Path, directory_url: str) -> Path:
    """Where a state directory keeps the account at ``directory_url`` (made or not)."""
    return root / "accounts" / ca_id(directory_url)


class Store:
    """A state directory on the Work host's disk."""

    shared = False                    # PgStore: several Work hosts share the store
    tokens: DbTokens | None = None    # PgStore: http-01 tokens every host's `serve` reads

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.writable = create
        self._cert_dirs: set[str] = set()
        self.locks = Locks()
        if create:
            self.root = fsutil.secure_dir(root)
            for sub in ("accounts", "certs", "challenges"):
                fsutil.secure_dir(root / sub)
        else:
            if not root.is_dir():
                raise StoreError(f"state directory {root} does not exist (nothing issued "
                                 "there yet, or a mistyped --state-dir / state_dir?)")
            self.root = fsutil.check_dir(root)

    # -- accounts ---------------------------------------------------------------------------

    def account_dir(self, directory_url: str) -> Path:
        path = account_dir(self.root, directory_url)
        return fsutil.secure_dir(path) if self.writable else path

    def account_key_path(self, directory_url: str) -> Path:
        return self.account_dir(directory_url) / "account.key"

    def account_key(self, directory_url: str) -> AccountKey | None:
        """The account key as this store keeps it, or None; reads only (``account show``)."""
        from ..account_key import AccountKey  # noqa: PLC0415 - cryptography

        return AccountKey.load(self.account_key_path(directory_url))

    def load_account(self, directory_url: str) -> dict[str, Any] | None:
        return self._read_json(self.account_dir(directory_url) / "account.json")

    def save_account(self, directory_url: str, record: dict[str, Any]) -> None:
        path = self.account_dir(directory_url) / "account.json"
        fsutil.write_atomic(path, _dump(record), mode=0o600)

    def order_ledger(self, directory_url: str) -> Ledger:
        """The new orders placed at ``directory_url`` lately (``ledger``)."""
        return ledger.read(self.root / "accounts" / ca_id(directory_url))

    def change_order_ledger(self, directory_url: str,
                            how: Callable[[Ledger], Ledger]) -> Ledger:
        return ledger.change(self.account_dir(directory_url), how)

    # -- runs -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[bool]:
        """Mark a run in ``STATE/runs/<pid>``; a marker whose process is gone means a run was
        killed, and then the whole state tree is swept of its temporary files first. Yields
        whether that happened."""
        runs = fsutil.secure_dir(self.root / "runs")
        dead = self.killed_runs()
        marker = runs / str(os.getpid())
        try:
            if dead:
                self.sweep()
                for stale in dead:
                    with contextlib.suppress(FileNotFoundError):
                        stale.unlink()
            marker.touch(mode=0o600)
        except OSError as exc:
            raise StoreError(f"{runs}: cannot record this run: {exc.strerror or exc}") from exc
        try:
            yield bool(dead)
        finally:
            try:
                marker.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:  # the next run takes it for a killed one and sweeps
                log.warning("%s: cannot remove this run's marker: %s", marker,
                            exc.strerror or exc)

    def killed_runs(self) -> list[Path]:
        """The markers of runs whose process is gone (``running``); reads only."""
        try:
            with os.scandir(self.root / "runs") as entries:
                return [Path(e.path) for e in entries
                        if e.name.isdigit() and fsutil.process_gone(int(e.name))]
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def whole_fleet(self) -> Iterator[None]:
        """Hold ``STATE/fleet.lock`` for a run over the whole fleet, or raise ``FleetBusy``
        naming the process that holds it."""
        path = self.root / "fleet.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot lock: {exc.strerror or exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                raise FleetBusy(f"another certfleet run (pid {holder or '?'}) is working on "
                                "the whole fleet; this one stops and changes nothing") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def sweep(self) -> None:
        """Remove temporary files and directories of processes that no longer exist, and a
        pending key that a killed activation left although it is the active key now."""
        for folder, dirs, files in os.walk(self.root):
            for entry in [*dirs, *files]:
                if fsutil.TMP_MARK in entry and fsutil.is_leftover(entry):
                    fsutil.remove_leftover(Path(folder) / entry)
        for pending in (self.root / "certs").glob("*/pending/privkey.pem"):
            with contextlib.suppress(OSError, StoreError):
                name = pending.parent.parent.name
                current = self.current(name)
                if current is not None and current.meta.key_type != "csr" and \
                        self.read_file(current, "privkey.pem") == pending.read_bytes():
                    fsutil.remove_tree(pending.parent)

    def close(self) -> None:
        """Nothing to close here (the shared store closes its connections)."""

    def challenge_dir(self) -> Path:
        """Where http-01 tokens wait for ``certfleet serve``."""
        path = self.root / "challenges"
        return fsutil.secure_dir(path) if self.writable else path

    # -- locks ------------------------------------------------------------------------------

    def cert_dir(self, name: str) -> Path:
        path = self.root / "certs" / storage_name(name)
        # Made and checked once per process: only this user can change what is inside
        # STATE (0700, checked when the store was opened).
        if name not in self._cert_dirs:
            fsutil.secure_dir(path)
            fsutil.secure_dir(path / "versions")
            self._cert_dirs.add(name)
        return path

    def try_lock(self, name: str) -> bool:
        """Take the certificate's lock if no task of any process holds it."""
        return self.locks.try_lock(name, self.cert_dir(name) / "lock")

    def unlock(self, name: str) -> None:
        self.locks.unlock(name)

    @contextlib.asynccontextmanager
    async def locked(self, name: str, wait: float = LOCK_WAIT, *,
                     skip_if_claimed: bool = False) -> AsyncIterator[None]:
        """``async with store.locked(name):`` hold the certificate's lock (this host's
        processes wait their turn; ``skip_if_claimed`` is for the shared store, where
        another host's claim is not waited for)."""
        async with self.locks.held(name, self.cert_dir(name) / "lock", wait):
            yield

    # -- versions ---------------------------------------------------------------------------

    def current(self, name: str) -> StoredCert | None:
        """The active version, or None if the certificate was never issued."""
        # `status` calls this for every certificate: one Path made, the rest plain strings.
        path = self.root.joinpath("certs", storage_name(name))
        link = f"{path}/current"
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{link}: unreadable: {exc.strerror}") from exc
        version = target.removeprefix("versions/")
        if not version.isdigit() or target != f"versions/{version}":
            raise StoreError(f"{link}: points outside versions/: {target!r}")
        version_dir = f"{path}/versions/{version}"
        meta = self._version_meta(version_dir)
        if meta is None:
            raise StoreError(f"{version_dir}/meta.json: missing (the active version is gone)")
        return StoredCert(name, path, meta)

    def _version_meta(self, version_dir: str) -> VersionMeta | None:
        """The record of a version directory (checked to be certfleet's own); None if it
        has none."""
        lifecycle.check_dir(version_dir)
        meta_path = f"{version_dir}/meta.json"
        data = self._read_json(meta_path)
        return None if data is None else VersionMeta.from_json(data, meta_path)

    def snapshot(self, names: Sequence[str]) -> dict[str, Snapshot]:
        """Each certificate's active version and state record, from the index if fresh;
        a certificate whose files cannot be read is reported damaged, never raised."""
        with paused():  # no reference cycle made here (gcpause.py)
            return snapshot(self.root, names, self._snapshot_one, self.writable)

    def _snapshot_one(self, name: str) -> Snapshot:
        try:
            stored = self.current(name)
            return Snapshot(stored.meta if stored else None, self.load_state(name))
        except StoreError as exc:
            return Snapshot(None, CertState(), str(exc))

    def has_cert(self, name: str) -> bool:
        """Whether the store holds anything of this certificate (creates nothing)."""
        return os.path.lexists(self.root / "certs" / storage_name(name))

    def all_names(self) -> list[str]:
        """The names of every certificate with a directory in the store, sorted."""
        certs = self.root / "certs"
        if not certs.is_dir():
            return []
        with os.scandir(certs) as entries:  # no Path and no stat per entry
            return sorted(entry.name for entry in entries if entry.is_dir())

    def read_file(self, stored: StoredCert, pem: str) -> bytes:
        """One file of the active version; a domain key others could read is made 0600
        again, with a warning."""
        path = stored.file(pem)
        try:
            if pem != "privkey.pem":
                return fsutil.read_small(path)
            data, was = fsutil.read_private(path)
        except FileNotFoundError:
            raise StoreError(f"{path}: missing from the active version") from None
        if was is not None:
            log.warning("%s: private key was mode %o; made it 0600", path, was)
        return data

    def preflight(self, name: str) -> None:
        lifecycle.preflight(self.cert_dir(name))

    def activate(self, name: str, files: dict[str, bytes], meta: VersionMeta) -> StoredCert:
        """Write a complete new version, then switch ``current`` to it in one rename."""
        base = self.cert_dir(name)
        lifecycle.write(base, meta.version, files, _dump(meta.to_json()))
        # The pending key lives in the new version now. It goes before the switch, so no
        # moment has it both pending and active; a crash between the two leaves a version
        # newer than ``current``, which ``finish_activation`` switches to.
        self.clear_pending(name)
        self._switch(base, meta.version, "privkey.pem" in files)
        self.prune(name)
        return StoredCert(name, base, meta)

    def finish_activation(self, name: str, order_url: str) -> StoredCert | None:
        """Switch to the version written for ``order_url`` if a crash cut its activation
        short (it is newer than ``current``); None if there is no such version."""
        current = self.current(name)
        base = self.cert_dir(name)
        newer = [v for v in self.versions(name) if current is None or v > current.meta.version]
        for number in sorted(newer, reverse=True):
            try:
                meta = self._version_meta(f"{base}/versions/{number}")
            except StoreError:
                continue
            if meta is not None and meta.version == number and meta.order_url == order_url:
                self.clear_pending(name)
                self._switch(base, number, meta.key_type != "csr")
                return StoredCert(name, base, meta)
        return None

    def _switch(self, base: Path, version: int, has_key: bool) -> None:
        lifecycle.switch(base, version, has_key)  # a method: tests cut a run short here

    def next_version(self, name: str) -> int:
        return max(self.versions(name), default=0) + 1

    def versions(self, name: str) -> list[int]:
        return lifecycle.numbers(self.cert_dir(name))

    def prune(self, name: str, keep: int = KEEP_VERSIONS) -> None:
        current = self.current(name)
        active = None if current is None else current.meta.version
        lifecycle.prune(self.cert_dir(name), active, keep)

    # -- the pending key of an order in flight ------------------------------------------------

    def save_pending_key(self, name: str, key_pem: bytes) -> None:
        pending = fsutil.secure_dir(self.cert_dir(name) / "pending")
        fsutil.write_atomic(pending / "privkey.pem", key_pem, mode=0o600)

    def load_pending_key(self, name: str) -> bytes | None:
        path = self.root / "certs" / storage_name(name) / "pending" / "privkey.pem"
        try:
            return fsutil.read_small(path)
        except FileNotFoundError:
            return None

    def clear_pending(self, name: str) -> None:
        fsutil.remove_tree(self.cert_dir(name) / "pending")

    # -- state records ------------------------------------------------------------------------

    def load_state(self, name: str) -> CertState:
        """The certificate's state record (empty if it has none); ``StoreError`` if damaged."""
        path = f"{self.root}/certs/{storage_name(name)}/state.json"
        data = self._read_json(path, STATE_LIMIT)
        try:
            return CertState.from_json(data or {})
        except StateDamaged as exc:
            raise StoreError(f"{path}: damaged: {exc}; move it aside to start the record "
                             "afresh (the certificate itself is kept)") from None

    def update_state(self, name: str, change: Callable[[CertState], CertState]) -> CertState:
        """Apply one transition to the record and write it; only under the lock, so two
        runs never lose each other's updates."""
        if not self.locks.holds(name):
            raise StoreError(f"{name}: state changed without holding its lock")
        state = change(self.load_state(name))
        data = json.dumps(state.to_json(), indent=2, sort_keys=True).encode() + b"\n"
        if len(data) > STATE_LIMIT:  # never write what could not be read back
            raise StoreError(f"{name}: state record would exceed {STATE_LIMIT} bytes")
        fsutil.write_atomic(self.cert_dir(name) / "state.json", data, mode=0o600)
        return state

    def read_clock(self) -> dict[str, Any]:
        """When the local clock was last compared with a CA's (``clock.json``)."""
        try:
            return self._read_json(self.root / "clock.json") or {}
        except StoreError:
            return {}

    def write_clock(self, record: dict[str, Any]) -> None:
        fsutil.write_atomic(self.root / "clock.json", _dump(record), mode=0o600)

    def _read_json(self, path: Path | str, limit: int = 1 << 20) -> dict[str, Any] | None:
        try:
            data = json.loads(fsutil.read_small(path, limit))
        except FileNotFoundError:
            return None
        except (ValueError, RecursionError) as exc:
            raise StoreError(f"{path}: damaged JSON: {exc}") from None
        if not isinstance(data, dict):
            raise StoreError(f"{path}: damaged: not a JSON object")
        return data


def _dump(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
