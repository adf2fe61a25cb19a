"""Crash-safe file primitives: every write is temp-in-same-dir, fsync, rename, fsync dir.

Touches only the paths its callers pass. Files are created with their final mode (a key is
0600 from the first byte, never chmod-ed afterwards), symlinks are never followed when
creating, and a failed write leaves the previous file untouched and no temporary behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from .errors import ConfigError, StoreError

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
    import secrets  # noqa: PLC0415 - hashlib: not for commands that write nothing

    return path.parent / f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(6)}"


_TEMP_NAME = re.compile(rf"\..+{re.escape(TMP_MARK)}([0-9]+)-[0-9a-f]{{12}}")


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
    """A temporary file of a process that died before renaming it into place: a name of
    ``temp_name``'s form, never a certificate's directory that merely contains ``.tmp-``
    (``www.tmp-42-a.example.com`` is a valid name)."""
    match = _TEMP_NAME.fullmatch(name)
    return match is not None and process_gone(int(match.group(1)))


def remove_tree(path: Path) -> None:
    """Remove a directory and all it holds, whatever of it is already gone; a link inside is
    removed, not followed, and ``path`` itself is removed only if it is a directory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:  # gone already; or a link, or not a directory: left as it is
        return
    try:  # the directories removed here (pending/, a version) hold files only
        if _unlink_files(fd):
            os.rmdir(path)
            return
    except OSError:
        pass
    finally:
        os.close(fd)
    # Something nested, or something in the way: shutil's walk, imported only then (it
    # brings bz2, lzma and zlib: ~4 ms of the process that would import it at start).
    import shutil  # noqa: PLC0415

    shutil.rmtree(path, ignore_errors=True)


def _unlink_files(fd: int) -> bool:
    """Unlink what the directory open as ``fd`` holds; False, and stop, at a directory."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return False
            os.unlink(entry.name, dir_fd=fd)
    return True


def remove_leftover(path: Path) -> None:
    """Remove a crash leftover, file or directory, never following a link."""
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def write_new(path: Path | str, data: bytes, mode: int, *, sync: bool = True,
              dir_fd: int | None = None) -> None:
    """Create ``path`` (which must not exist; relative to ``dir_fd`` if given) with ``mode``
    from creation, write, fsync (unless ``sync=False``: a probe whose content does not
    matter)."""
    fd = os.open(path, _CREATE, mode, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; the file is still empty here
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
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


def write_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` whole, or not at all, and never over an existing file (or link):
    written under a temporary name, then hard-linked to ``path``. ``FileExistsError`` if
    something is there already."""
    tmp = temp_name(path)
    try:
        write_new(tmp, data, mode)
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        raise StoreError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def replace_symlink(link: Path, target: str, *, sync: bool = True) -> None:
    """Point ``link`` at ``target`` in one atomic step: made in place where there is
    nothing yet, else a temporary link renamed over what is there. ``sync=False`` leaves
    the directory's fsync to the caller (one for several links)."""
    try:
        try:
            os.symlink(target, link)  # appears whole, as a rename would make it
        except FileExistsError:
            _link_over(link, target)
    except OSError as exc:
        raise StoreError(f"{link}: cannot switch link: {exc.strerror or exc}") from exc
    if sync:
        fsync_dir(link.parent)


def _link_over(link: Path, target: str) -> None:
    """A temporary link to ``target`` renamed over ``link``; gone again if that fails."""
    tmp = temp_name(link)
    try:
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def secure_dir(path: Path, mode: int = 0o700) -> Path:
    """Create ``path`` if missing (``mode`` whatever the umask) and refuse it if it is a
    symlink, writable by others or owned by another user."""
    try:
        if not os.path.lexists(path):
            path.mkdir(mode=mode, parents=True, exist_ok=True)
            os.chmod(path, mode, follow_symlinks=False)  # the umask may have narrowed it
    except OSError as exc:
        raise StoreError(f"{path}: cannot create directory: {exc.strerror or exc}") from exc
    return check_dir(path)


def check_dir(path: Path) -> Path:
    """Refuse ``path`` if it is not a directory of this user that only it can write."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot inspect: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path}: not a directory (symlinks are not followed)")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StoreError(f"{path}: writable by group or others; refusing to use it")
    if info.st_uid != os.geteuid():
        raise StoreError(f"{path}: owned by uid {info.st_uid}, not by this user")
    return path


_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_small(path: Path | str, limit: int = 1 << 20) -> bytes:
    """Read a regular file of at most ``limit`` bytes without following a final symlink.

    Opened non-blocking, so a FIFO planted in its place is refused instead of hanging the
    run. ``FileNotFoundError`` passes through (callers often expect absence); other
    failures become ``StoreError``.
    """
    try:
        fd = os.open(path, _READ | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return _read_fd(fd, path, limit)


def read_private(path: Path, limit: int = 1 << 20) -> tuple[bytes, int | None]:
    """``read_small`` for a private key: if group or others could read it, make it 0600
    again (through the open file, never by path) and return the mode it had, so the caller
    can warn; else None."""
    try:
        fd = os.open(path, _READ | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    info = os.fstat(fd)
    was = None
    if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077 and info.st_uid == os.geteuid():
        was = stat.S_IMODE(info.st_mode)
        os.fchmod(fd, 0o600)
    return _read_fd(fd, path, limit), was


def _read_fd(fd: int, path: Path | str, limit: int) -> bytes:
    """Read and close ``fd``. With ``os.read`` (no file object): `status` reads two small
    files per certificate, and a buffered reader costs more than the reading."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{path}: not a regular file")
        os.set_blocking(fd, True)
        # read(limit + 1) would allocate the whole limit up front (a gigabyte for the index);
        # the size is known, and a file that grows meanwhile is still cut at the limit.
        size = info.st_size
        if size > limit:
            raise StoreError(f"{path}: larger than {limit} bytes")
        chunks, wanted = [], size + 1
        while wanted > 0 and (chunk := os.read(fd, wanted)):
            chunks.append(chunk)
            wanted -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > size:  # it grew while being read: a writer that did not rename
        raise StoreError(f"{path}: changed while being read")
    return data


def read_trusted(path: Path, limit: int, *, secret: bool = False) -> bytes:
    """Read an input file whose content decides what certfleet does (configuration, domains
    file, secrets): refused unless it is a regular file owned by this user or root, not
    writable by group or others, in a directory no one else can write to (sticky ones
    aside); a ``secret`` must not be readable by group or others either. A symlink is
    followed (configuration management uses them) and the file it leads to is checked.

    Raises ``ConfigError`` with the reason, ``FileNotFoundError`` if there is no file.
    """
    info = check_trusted(path, secret=secret)
    try:
        fd = os.open(path, _READ)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if (os.fstat(fd).st_ino, os.fstat(fd).st_dev) != (info.st_ino, info.st_dev):
        os.close(fd)
        raise ConfigError(f"{path}: replaced while being opened")
    try:
        return _read_fd(fd, path, limit)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None


def check_trusted(path: Path, *, secret: bool = False) -> os.stat_result:
    """``read_trusted``'s rule, for a file another reader opens by its name (asyncssh's
    ssh_config, known_hosts and identity; a TLS context's trust anchors): the file's
    ``stat`` (the symlink followed) if it may be used. Raises as ``read_trusted``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):  # before opening: a FIFO or device is never opened
        raise ConfigError(f"{path}: not a regular file")
    _check_trusted(path, info, secret)
    return info


def _check_trusted(path: Path, info: os.stat_result, secret: bool) -> None:
    me = os.geteuid()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (me, 0):
        raise ConfigError(f"{path}: owned by uid {info.st_uid}, not by this user or root; "
                          "whoever owns it decides what certfleet runs")
    if mode & 0o022:
        raise ConfigError(f"{path}: writable by group or others (mode {mode:o}); chmod go-w it")
    if secret and mode & 0o077:
        raise ConfigError(f"{path}: a secret readable by group or others (mode {mode:o}); "
                          "chmod 600 it")
    folder = Path(os.path.realpath(path)).parent
    try:
        parent = os.stat(folder)
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot inspect: {exc.strerror or exc}") from None
    if parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX:
        raise ConfigError(f"{path}: its directory {folder} is writable by group or others "
                          f"(mode {stat.S_IMODE(parent.st_mode):o}), who could replace it")
    if parent.st_uid not in (me, 0):
        raise ConfigError(f"{path}: its directory {folder} is owned by uid {parent.st_uid}, "
                          "who could replace it")
