"""Versioned certificate storage, state records and per-certificate locks in the state directory.

Touches the state directory only. Layout (every file written temp → fsync → rename)::

    STATE/accounts/<ca-id>/account.key, account.json
    STATE/certs/<name>/versions/<n>/{privkey,cert,chain,fullchain}.pem, meta.json
    STATE/certs/<name>/current -> versions/<n>        one atomic symlink swap activates
    STATE/certs/<name>/{cert,chain,fullchain,privkey}.pem -> current/...   stable paths
    STATE/certs/<name>/pending/privkey.pem            key of an order not yet finished
    STATE/certs/<name>/state.json                     attempts, failures, schedule
    STATE/challenges/                                 http-01 tokens (responder mode)

A version directory is complete before it is renamed into place, and ``current`` moves only
after that, so a crash at any moment leaves the previous version active and whole.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import fsutil
from .errors import StoreError
from .names import storage_name

PEM_FILES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
KEEP_VERSIONS = 5
MIN_FREE_BYTES = 1 << 20
INDEX_LIMIT = 1 << 30  # ~500 bytes a certificate: room for two million


@dataclass(frozen=True)
class VersionMeta:
    """What ``meta.json`` records about one issued version."""

    version: int
    names: tuple[str, ...]
    key_type: str
    serial: int
    not_before: str
    not_after: str
    issuer: str
    aki: str
    issued_at: str
    directory: str
    order_url: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["names"] = list(self.names)
        data["serial"] = f"{self.serial:x}"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> VersionMeta:
        try:
            return cls(
                version=int(data["version"]), names=tuple(str(n) for n in data["names"]),
                key_type=str(data["key_type"]), serial=int(str(data["serial"]), 16),
                not_before=str(data["not_before"]), not_after=str(data["not_after"]),
                issuer=str(data["issuer"]), aki=str(data.get("aki", "")),
                issued_at=str(data["issued_at"]), directory=str(data["directory"]),
                order_url=str(data.get("order_url", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{where}: damaged metadata: {exc}") from None

    @property
    def not_after_dt(self) -> datetime:
        return datetime.fromisoformat(self.not_after)

    @property
    def not_before_dt(self) -> datetime:
        return datetime.fromisoformat(self.not_before)


@dataclass(frozen=True)
class StoredCert:
    """The active version of one certificate."""

    name: str
    path: Path
    meta: VersionMeta

    def file(self, pem: str) -> Path:
        return self.path / "versions" / str(self.meta.version) / pem


def ca_id(directory_url: str) -> str:
    """A directory name for one CA: host, port and a short hash of the full URL."""
    parts = urlsplit(directory_url)
    host = (parts.hostname or "ca").replace(":", "_")
    port = f"_{parts.port}" if parts.port else ""
    digest = hashlib.sha256(directory_url.encode()).hexdigest()[:8]
    return f"{host}{port}-{digest}"


class Store:
    """The default store: a directory on the Work host's disk."""

    def __init__(self, root: Path) -> None:
        self.root = fsutil.secure_dir(root)
        for sub in ("accounts", "certs", "challenges"):
            fsutil.secure_dir(root / sub)

    # -- accounts ---------------------------------------------------------------------------

    def account_dir(self, directory_url: str) -> Path:
        return fsutil.secure_dir(self.root / "accounts" / ca_id(directory_url))

    def account_key_path(self, directory_url: str) -> Path:
        return self.account_dir(directory_url) / "account.key"

    def load_account(self, directory_url: str) -> dict[str, Any] | None:
        return self._read_json(self.account_dir(directory_url) / "account.json")

    def save_account(self, directory_url: str, record: dict[str, Any]) -> None:
        path = self.account_dir(directory_url) / "account.json"
        fsutil.write_atomic(path, _dump(record), mode=0o600)

    @contextlib.contextmanager
    def running(self) -> Iterator[bool]:
        """Mark a run in ``STATE/runs/<pid>``; a marker whose process is gone means a run was
        killed, and then the whole state tree is swept of its temporary files first. Yields
        whether that happened."""
        runs = fsutil.secure_dir(self.root / "runs")
        dead = [m for m in runs.iterdir() if m.name.isdigit() and fsutil.process_gone(int(m.name))]
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
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()

    def sweep(self) -> None:
        """Remove temporary files and directories of processes that no longer exist, and a
        pending key that a killed activation left although it is the active key now."""
        for folder, dirs, files in os.walk(self.root):
            for entry in [*dirs, *files]:
                if fsutil.TMP_MARK in entry and fsutil.is_leftover(entry):
                    _remove(Path(folder) / entry)
        for pending in (self.root / "certs").glob("*/pending/privkey.pem"):
            with contextlib.suppress(OSError, StoreError):
                name = pending.parent.parent.name
                current = self.current(name)
                if current is not None and current.meta.key_type != "csr" and \
                        self.read_file(current, "privkey.pem") == pending.read_bytes():
                    shutil.rmtree(pending.parent, ignore_errors=True)

    def challenge_dir(self) -> Path:
        """Where http-01 tokens wait for ``certfleet serve``."""
        return fsutil.secure_dir(self.root / "challenges")

    # -- certificates -------------------------------------------------------------------------

    def cert_dir(self, name: str) -> Path:
        path = self.root / "certs" / storage_name(name)
        fsutil.secure_dir(path)
        fsutil.secure_dir(path / "versions")
        return path

    def try_lock(self, name: str) -> int | None:
        """Take the certificate's lock if free: a descriptor to ``unlock``, else None.

        A lock is an flock on ``certs/<name>/lock``: the kernel drops it when its holder
        dies, so a killed run never leaves a stale lock behind.
        """
        path = self.cert_dir(name) / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot lock: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        os.close(fd)

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 600.0) -> Iterator[None]:
        """Hold the certificate's lock, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while (fd := self.try_lock(name)) is None:
            if time.monotonic() > deadline:
                raise StoreError(f"{name}: still locked by another run after {timeout:.0f}s")
            time.sleep(0.1)
        try:
            yield
        finally:
            self.unlock(fd)

    def current(self, name: str) -> StoredCert | None:
        """The active version, or None if the certificate was never issued."""
        path = self.root / "certs" / storage_name(name)
        try:
            target = os.readlink(path / "current")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{path / 'current'}: unreadable: {exc.strerror}") from exc
        version = target.removeprefix("versions/")
        if not version.isdigit():
            raise StoreError(f"{path / 'current'}: points outside versions/: {target!r}")
        meta_path = path / "versions" / version / "meta.json"
        data = self._read_json(meta_path)
        if data is None:
            raise StoreError(f"{meta_path}: missing")
        return StoredCert(name, path, VersionMeta.from_json(data, str(meta_path)))

    def snapshot(
        self, names: Sequence[str]
    ) -> dict[str, tuple[VersionMeta | None, dict[str, Any]]]:
        """The active version's metadata and the state record of each certificate, fast.

        Planning over thousands of certificates would otherwise read two files each. The
        answers are cached in ``STATE/index.json`` keyed by the certificate directory's
        mtime: activating a version or writing state renames a file in that directory, which
        changes it. An entry younger than two seconds is not trusted (a change within the
        same timestamp tick would go unseen), the way git treats "racy" index entries. The
        index is only a cache: deleting it, or a stale one, costs time, never correctness.
        """
        index_path = self.root / "index.json"
        try:
            index = self._read_json(index_path, limit=INDEX_LIMIT) or {}
        except StoreError:
            index = {}
        result: dict[str, tuple[VersionMeta | None, dict[str, Any]]] = {}
        racy = time.time_ns() - 2_000_000_000
        changed = False
        for name in names:
            folder = os.path.join(self.root, "certs", storage_name(name))
            try:
                mtime = os.stat(folder).st_mtime_ns
            except FileNotFoundError:
                result[name] = (None, {})
                continue
            entry = index.get(name)
            if isinstance(entry, dict) and entry.get("mtime") == mtime and mtime < racy:
                raw = entry.get("meta")
                meta = VersionMeta.from_json(raw, str(index_path)) if raw else None
                result[name] = (meta, entry.get("state") or {})
                continue
            stored, state = self.current(name), self.read_state(name)
            meta = stored.meta if stored else None
            result[name] = (meta, state)
            index[name] = {"mtime": mtime if mtime < racy else 0,
                           "meta": meta.to_json() if meta else None, "state": state}
            changed = True
        if changed:
            with contextlib.suppress(StoreError):  # a cache that cannot be written is no fault
                fsutil.write_atomic(index_path, json.dumps(index).encode(), mode=0o600)
        return result

    def all_current(self) -> list[StoredCert]:
        """Every certificate that has an active version, sorted by name."""
        found = []
        for entry in sorted((self.root / "certs").iterdir()):
            stored = self.current(entry.name) if entry.is_dir() else None
            if stored is not None:
                found.append(stored)
        return found

    def read_file(self, stored: StoredCert, pem: str) -> bytes:
        try:
            return fsutil.read_small(stored.file(pem))
        except FileNotFoundError:
            raise StoreError(f"{stored.file(pem)}: missing from the active version") from None

    def preflight(self, name: str) -> None:
        """Fail before ordering if a new version could not be written (full or read-only)."""
        path = self.cert_dir(name)
        try:
            free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
        except OSError as exc:
            raise StoreError(f"{path}: cannot inspect: {exc.strerror}") from exc
        if free < MIN_FREE_BYTES:
            raise StoreError(f"{path}: only {free} bytes free; need {MIN_FREE_BYTES}")
        probe = fsutil.temp_name(path / "probe")
        try:
            fsutil.write_new(probe, b"\0" * 16384, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: not writable: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)

    # -- the pending key of an order in flight ------------------------------------------------

    def save_pending_key(self, name: str, key_pem: bytes) -> None:
        pending = fsutil.secure_dir(self.cert_dir(name) / "pending")
        fsutil.write_atomic(pending / "privkey.pem", key_pem, mode=0o600)

    def load_pending_key(self, name: str) -> bytes | None:
        path = self.cert_dir(name) / "pending" / "privkey.pem"
        return fsutil.read_small(path) if path.exists() else None

    def clear_pending(self, name: str) -> None:
        shutil.rmtree(self.cert_dir(name) / "pending", ignore_errors=True)

    # -- activation ----------------------------------------------------------------------------

    def activate(self, name: str, files: dict[str, bytes], meta: VersionMeta) -> StoredCert:
        """Write a complete new version, then switch ``current`` to it in one rename."""
        base = self.cert_dir(name)
        versions = base / "versions"
        final = versions / str(meta.version)
        tmp = fsutil.temp_name(final)
        try:
            tmp.mkdir(mode=0o700)
            for pem in PEM_FILES:
                if pem == "privkey.pem" and pem not in files:
                    continue  # a certificate from the operator's own CSR: no key here
                mode = 0o600 if pem == "privkey.pem" else 0o644
                fsutil.write_new(tmp / pem, files[pem], mode)
            fsutil.write_new(tmp / "meta.json", _dump(meta.to_json()), 0o644)
            fsutil.fsync_dir(tmp)
            os.rename(tmp, final)
            fsutil.fsync_dir(versions)
        except (OSError, KeyError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, KeyError):
                raise StoreError(f"{final}: incomplete version: no {exc}") from None
            reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise StoreError(f"{final}: cannot write new version: {reason}") from exc
        fsutil.replace_symlink(base / "current", f"versions/{meta.version}")
        for pem in PEM_FILES:
            link = base / pem
            existing = os.readlink(link) if link.is_symlink() else None
            if pem not in files:
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()  # would dangle
            elif existing != f"current/{pem}":
                fsutil.replace_symlink(link, f"current/{pem}")
        self.clear_pending(name)
        self.prune(name)
        return StoredCert(name, base, meta)

    def next_version(self, name: str) -> int:
        numbers = [int(p.name) for p in (self.cert_dir(name) / "versions").iterdir()
                   if p.name.isdigit()]
        return max(numbers, default=0) + 1

    def versions(self, name: str) -> list[int]:
        return sorted(int(p.name) for p in (self.cert_dir(name) / "versions").iterdir()
                      if p.name.isdigit())

    def prune(self, name: str, keep: int = KEEP_VERSIONS) -> None:
        """Keep the last ``keep`` versions (the seed's ``-b`` backups); sweep crash leftovers."""
        versions = self.cert_dir(name) / "versions"
        current = self.current(name)
        for entry in [*versions.iterdir(), *versions.parent.iterdir()]:
            if fsutil.TMP_MARK in entry.name and fsutil.is_leftover(entry.name):
                _remove(entry)
        numbers = self.versions(name)
        for number in numbers[:-keep] if keep > 0 else []:
            if current is None or number != current.meta.version:
                shutil.rmtree(versions / str(number), ignore_errors=True)

    # -- state records ----------------------------------------------------------------------------

    def read_clock(self) -> dict[str, Any]:
        """When the local clock was last compared with a CA's (``clock.json``)."""
        try:
            return self._read_json(self.root / "clock.json") or {}
        except StoreError:
            return {}

    def write_clock(self, record: dict[str, Any]) -> None:
        fsutil.write_atomic(self.root / "clock.json", _dump(record), mode=0o600)

    def read_state(self, name: str) -> dict[str, Any]:
        # Reading needs no directory created or checked: the root was checked at start.
        return self._read_json(self.root / "certs" / storage_name(name) / "state.json") or {}

    def write_state(self, name: str, state: dict[str, Any]) -> None:
        fsutil.write_atomic(self.cert_dir(name) / "state.json", _dump(state), mode=0o600)

    def _read_json(self, path: Path, limit: int = 1 << 20) -> dict[str, Any] | None:
        try:
            data = json.loads(fsutil.read_small(path, limit))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StoreError(f"{path}: damaged JSON: {exc}") from None
        if not isinstance(data, dict):
            raise StoreError(f"{path}: damaged: not a JSON object")
        return data


def _remove(path: Path) -> None:
    """Remove a crash leftover, file or directory, never following a link."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _dump(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
