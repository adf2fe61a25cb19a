"""A certificate's versions in the state directory: the check before ordering, a new
version written whole, the one rename that makes it active, the pruning of old ones.

Touches one certificate directory (``STATE/certs/<name>``), given by ``files.Store``, which
decides when each step runs (``activate``, ``finish_activation``). A version directory is
complete and synced before it is renamed into place, and ``current`` moves only after
that, so a crash at any moment leaves the previous version active and whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from .. import fsutil
from ..errors import StoreError
from .meta import PEM_FILES

KEEP_VERSIONS = 5
MIN_FREE_BYTES = 1 << 20


def preflight(path: Path) -> None:
    """Fail before ordering if a new version could not be written (full or read-only)."""
    try:
        disk = os.statvfs(path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot inspect: {exc.strerror}") from exc
    free = disk.f_bavail * disk.f_frsize
    if free < MIN_FREE_BYTES:
        raise StoreError(f"{path}: only {free} bytes free; need {MIN_FREE_BYTES}")
    probe = fsutil.temp_name(path / "probe")
    try:  # not synced: a full or read-only disk refuses the write itself
        fsutil.write_new(probe, b"\0" * 16384, 0o600, sync=False)
    except OSError as exc:
        raise StoreError(f"{path}: not writable: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def write(base: Path, number: int, files: dict[str, bytes], meta_json: bytes) -> None:
    """``versions/<number>`` with ``files`` and its ``meta.json``, written whole and synced
    under a temporary name, then renamed into place (not yet active)."""
    versions = base / "versions"
    final = versions / str(number)
    tmp = fsutil.temp_name(final)
    try:
        tmp.mkdir(mode=0o700)
        os.chmod(tmp, 0o700)  # whatever the umask
        for pem in PEM_FILES:
            if pem == "privkey.pem" and pem not in files:
                continue  # a certificate from the operator's own CSR: no key here
            mode = 0o600 if pem == "privkey.pem" else 0o644
            fsutil.write_new(tmp / pem, files[pem], mode)
        fsutil.write_new(tmp / "meta.json", meta_json, 0o644)
        fsutil.fsync_dir(tmp)
        os.rename(tmp, final)
        fsutil.fsync_dir(versions)
    except (OSError, KeyError) as exc:
        fsutil.remove_tree(tmp)
        if isinstance(exc, KeyError):
            raise StoreError(f"{final}: incomplete version: no {exc}") from None
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise StoreError(f"{final}: cannot write new version: {reason}") from exc


def switch(base: Path, version: int, has_key: bool) -> None:
    """``current`` to ``versions/<version>`` in one rename. The stable links point through
    ``current`` and are made before it moves (on a first issuance they dangle until then),
    so no moment has a current version without them."""
    made = False
    for pem in PEM_FILES:
        link = base / pem
        if (pem != "privkey.pem" or has_key) and \
                (os.readlink(link) if link.is_symlink() else None) != f"current/{pem}":
            fsutil.replace_symlink(link, f"current/{pem}", sync=False)
            made = True
    if made:
        fsutil.fsync_dir(base)  # the links, durable before current moves
    fsutil.replace_symlink(base / "current", f"versions/{version}")
    if not has_key:  # the operator's own CSR: no key, and a key link would dangle
        with contextlib.suppress(FileNotFoundError):
            (base / "privkey.pem").unlink()


def numbers(base: Path) -> list[int]:
    """The versions written, oldest first."""
    return sorted(int(p.name) for p in (base / "versions").iterdir() if p.name.isdigit())


def prune(base: Path, active: int | None, keep: int) -> None:
    """Keep the last ``keep`` versions and the ``active`` one (the seed's ``-b``
    backups); sweep crash leftovers."""
    versions = base / "versions"
    for entry in [*versions.iterdir(), *base.iterdir()]:
        if fsutil.TMP_MARK in entry.name and fsutil.is_leftover(entry.name):
            fsutil.remove_leftover(entry)
    for number in numbers(base)[:-keep] if keep > 0 else []:
        if number != active:
            fsutil.remove_tree(versions / str(number))


def check_dir(path: Path | str) -> None:
    """A version directory must be certfleet's own: a real directory (not a link planted
    by someone), owned by this user, that no one else can write to."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise StoreError(f"{path}: missing (the active version is gone)") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot inspect: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path}: not a directory (a link or a file was put there)")
    if info.st_uid != os.geteuid():
        raise StoreError(f"{path}: owned by uid {info.st_uid}, not by this user")
    if info.st_mode & 0o022:
        raise StoreError(f"{path}: writable by group or others (mode "
                         f"{stat.S_IMODE(info.st_mode):o})")
