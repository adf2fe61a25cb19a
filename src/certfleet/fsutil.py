"""Crash-safe file primitives: every write is temp-in-same-dir, fsync, rename, fsync dir.

Touches only the paths its callers pass. Files are created with their final mode (a key is
0600 from the first byte, never chmod-ed afterwards), symlinks are never followed when
creating, and a failed write leaves the previous file untouched and no temporary behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from .errors import StoreError

TMP_MARK = ".tmp-"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """A fresh hidden temporary name beside ``path``, carrying this process's ID so that a
    later run can tell a crash leftover from a write in progress."""
    return path.parent / f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(6)}"


def process_gone(pid: int) -> bool:
    """Whether no process has this ID (then nothing can still be writing its files)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def is_leftover(name: str) -> bool:
    """A temporary file of a process that died before renaming it into place."""
    _, mark, tail = name.partition(TMP_MARK)
    pid = tail.partition("-")[0]
    return bool(mark) and pid.isdigit() and process_gone(int(pid))


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (which must not exist) with ``mode`` from creation, write, fsync."""
    fd = os.open(path, _CREATE, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; the file is still empty here
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old file or the new, never half."""
    tmp = temp_name(path)
    try:
        write_new(tmp, data, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    fsync_dir(path.parent)


def replace_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one atomic step (create temp link, rename over)."""
    tmp = temp_name(link)
    try:
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(f"{link}: cannot switch link: {exc.strerror or exc}") from exc
    fsync_dir(link.parent)


def secure_dir(path: Path, mode: int = 0o700) -> Path:
    """Create ``path`` if missing and refuse it if it is a symlink or writable by others."""
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create directory: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path}: not a directory (symlinks are not followed)")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StoreError(f"{path}: writable by group or others; refusing to use it")
    if info.st_uid != os.geteuid():
        raise StoreError(f"{path}: owned by uid {info.st_uid}, not by this user")
    return path


def read_small(path: Path, limit: int = 1 << 20) -> bytes:
    """Read a file of at most ``limit`` bytes without following a final symlink.

    ``FileNotFoundError`` passes through (callers often expect absence); other failures
    become ``StoreError``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        # read(limit + 1) would allocate the whole limit up front (a gigabyte for the index);
        # the size is known, and a file that grows meanwhile is still cut at the limit.
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise StoreError(f"{path}: larger than {limit} bytes")
        data = handle.read(size + 1)
    if len(data) > size:  # it grew while being read: a writer that did not rename
        raise StoreError(f"{path}: changed while being read")
    return data
