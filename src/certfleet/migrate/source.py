"""The only reader of the tree being imported from. It never writes there.

A file is read only if it is a regular file, checked before it is opened (a FIFO is never
opened, so it cannot hang the import), and again on the open descriptor (a file swapped in
between is refused). Symbolic links are followed, as the other client follows them
(certbot's ``live/`` is made of them); a loop is an error like any other. Each fault is a
``ConfigError`` of one line naming the file. The access time is left alone where the
system allows it (``O_NOATIME``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from ..errors import ConfigError, safe_text

LIMIT = 1 << 20
MAX_ENTRIES = 100_000
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


def shown(path: Path | str) -> str:
    """A path as it may be printed: control characters escaped."""
    return safe_text(str(path), 400)


def _fault(path: Path, reason: str) -> ConfigError:
    return ConfigError(f"{shown(path)}: {reason}")


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return "not a regular file"


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise _fault(path, "a symbolic link to nothing") from None
        raise _fault(path, "missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _fault(path, "a symbolic link loop") from None
        raise _fault(path, f"cannot read: {exc.strerror or exc}") from None


def read(path: Path, limit: int = LIMIT) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes."""
    info = _stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise _fault(path, f"{_kind(info.st_mode)}, not a file")
    if info.st_size > limit:
        raise _fault(path, f"larger than {limit} bytes")
    try:
        try:
            fd = os.open(path, _FLAGS | _NOATIME)
        except PermissionError:  # O_NOATIME needs to own the file; read it anyway
            fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise _fault(path, f"cannot read: {exc.strerror or exc}") from None
    with contextlib.closing(os.fdopen(fd, "rb")) as handle:
        now = os.fstat(fd)
        if (now.st_ino, now.st_dev) != (info.st_ino, info.st_dev):
            raise _fault(path, "replaced while being read")
        os.set_blocking(fd, True)
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise _fault(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise _fault(path, f"larger than {limit} bytes")
    return data


def is_dir(path: Path) -> bool:
    """Whether ``path`` leads to a directory (a loop or nothing is not one)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def entries(path: Path) -> list[str]:
    """The names in a directory, sorted; ``ConfigError`` naming it if it cannot be listed."""
    info = _stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise _fault(path, f"{_kind(info.st_mode)}, not a directory")
    try:
        with os.scandir(path) as scan:
            names = []
            for entry in scan:
                names.append(entry.name)
                if len(names) > MAX_ENTRIES:
                    raise _fault(path, f"more than {MAX_ENTRIES} entries")
    except OSError as exc:
        raise _fault(path, f"cannot list: {exc.strerror or exc}") from None
    return sorted(names)
