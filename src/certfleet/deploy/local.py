"""Local targets: a directory on the Work host itself.

Touches the target directory (temporary files it creates, then renames over the final
names; leftovers of killed deploys), the certificate's own directory (made if missing), and
runs the configured reload argv directly, never through a shell.

Nothing is resolved by path twice: the directories from ``/`` to the target are opened one
component at a time with O_NOFOLLOW (each checked by ``dircheck`` unless the host's
``trust_target_dir`` says otherwise), and everything else happens relative to the target
directory's descriptor: files are created O_EXCL|O_NOFOLLOW with their final mode, owner
and mode are set with ``fchown``/``fchmod`` on the open descriptor, the content is read back
through it, and after each rename the final name must be the very inode written.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import stat
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from ..errors import DeployError, safe_tail, safe_text
from ..layout import Placement
from ..spec import HostSettings
from . import TMP_PREFIX, DeployFile, check_owner, is_leftover, temp_name, verify_copy
from .dircheck import Missing, Refused, Seen, Trust, kind, open_dir, problem

RELOAD_TIMEOUT = 120.0
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _ids(owner: str | None, group: str | None, where: str) -> tuple[int, int]:
    return _id(owner, pwd.getpwnam, "user", where), _id(group, grp.getgrnam, "group", where)


def _id(name: str | None, look_up: Callable[[str], Any], what: str, where: str) -> int:
    """The number of user or group ``name`` (-1: unchanged), digits taken as the number."""
    if name is None:
        return -1
    if name.isdigit():
        return int(name)
    try:
        return int(look_up(name)[2])
    except KeyError:
        raise DeployError(f"{where}: no such {what}: {safe_text(name)!r}") from None


def sweep_leftovers(directory: str) -> None:
    """``_sweep`` for a target directory that may not exist (yet); never through a link."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, _DIR | os.O_NOFOLLOW)
        try:
            _sweep(fd)
        finally:
            os.close(fd)


def _sweep(dir_fd: int) -> None:
    """Remove what killed deploys left here (their ``finally`` never ran)."""
    now = time.time()
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                with contextlib.suppress(OSError):
                    age = now - entry.stat(follow_symlinks=False).st_mtime
                    if is_leftover(entry.name, age):
                        os.unlink(entry.name, dir_fd=dir_fd)


def _seen(path: str, info: os.stat_result) -> Seen:
    return Seen(path, info.st_mode, info.st_uid, info.st_gid)


def _open_target(directory: str, trust: Trust | None, where: str) -> int:
    """A descriptor of ``directory``, every component on the way checked and opened without
    following a link (``trust`` None: opened as the path says): ``dircheck.open_dir``."""
    try:
        return open_dir(directory, trust)
    except Missing as exc:
        on_the_way = "" if exc.path == directory else f" ({exc.path})"
        raise DeployError(f"{where}: target directory missing{on_the_way}") from None
    except Refused as exc:
        raise DeployError(f"{where}: refused: {exc}") from None


def _own_dir(parent: int, name: str, where: str, settings: HostSettings,
             ids: tuple[int, int], trust: Trust | None) -> int:
    """The certificate's own directory inside the target directory, made if missing; a
    symlink (or anything but a directory) there is refused, whatever the settings."""
    try:
        os.mkdir(name, settings.dir_mode, dir_fd=parent)
        made = True
    except FileExistsError:
        made = False
    try:
        fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent)
    except OSError:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        raise DeployError(f"{where}: refused: the certificate's own directory is "
                          f"{kind(info.st_mode)}, not a directory; certfleet never follows "
                          "it") from None
    try:
        if made:
            os.fchmod(fd, settings.dir_mode)  # the umask narrowed it
            if ids != (-1, -1):  # after the mode: see _write_all
                os.fchown(fd, *ids)
        if trust is not None and (why := problem(_seen(where, os.fstat(fd)), trust,
                                                 last=True)) is not None:
            raise DeployError(f"{where}: refused: {why}")
    except BaseException:
        os.close(fd)
        raise
    return fd


class LocalTransport:
    """Installs into directories of this machine."""

    label = "local"

    async def __aenter__(self) -> LocalTransport:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def peer_address(self) -> str | None:
        return "127.0.0.1"

    async def install(
        self, where: Placement, files: Sequence[DeployFile], settings: HostSettings,
    ) -> None:
        try:
            await asyncio.to_thread(self._install, where, files, settings)
        except OSError as exc:  # e.g. a directory this user may not even look into
            raise DeployError(f"{where.directory}: {exc.strerror or exc}") from exc

    def _install(
        self, where: Placement, files: Sequence[DeployFile], settings: HostSettings
    ) -> None:
        owner, group, directory = settings.owner, settings.group, where.directory
        check_owner(owner, group, directory)
        uid, gid = _ids(owner, group, directory)
        trust = None if settings.trust_target_dir else Trust(
            frozenset({0, os.geteuid(), *([] if uid == -1 else [uid])}),
            None if gid == -1 else gid, settings.allow_group_writable)
        if where.own_directory:
            parent_path, _, name = directory.rpartition("/")
            parent = _open_target(parent_path or "/", trust, parent_path or "/")
            try:
                dir_fd = _own_dir(parent, name, directory, settings, (uid, gid), trust)
            finally:
                os.close(parent)
        else:
            dir_fd = _open_target(directory, trust, directory)
        try:
            _sweep(dir_fd)
            _write_all(dir_fd, directory, files, (uid, gid))
        except OSError as exc:
            raise DeployError(f"{directory}: {exc.strerror or exc}") from exc
        finally:
            os.close(dir_fd)

    async def run(self, argv: Sequence[str]) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            raise DeployError(f"reload {safe_text(argv[0])}: {exc.strerror or exc}") from exc
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), RELOAD_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise DeployError(f"reload {safe_text(argv[0])}: timed out") from None
        if proc.returncode != 0:
            tail = safe_tail(output.decode("utf-8", "replace").strip())
            said = f": {tail}" if tail else " (and said nothing)"
            raise DeployError(f"reload {safe_text(argv[0])} exited {proc.returncode}{said}")


def _write_all(dir_fd: int, where: str, files: Sequence[DeployFile],
               ids: tuple[int, int]) -> None:
    """Each file under a temporary name (owner, mode, content, read-back all through its
    descriptor), then every final name checked, renamed over, and checked again."""
    written: list[tuple[str, DeployFile, int]] = []
    renamed: set[str] = set()
    try:
        for item in files:
            tmp = temp_name(item.name)
            fd = os.open(tmp, _CREATE, item.mode, dir_fd=dir_fd)
            written.append((tmp, item, fd))
            os.fchmod(fd, item.mode)  # the umask may have narrowed it
            # The owner last: a file given to another user can no longer have its mode
            # set without CAP_FOWNER, which the documented unit does not grant (a chown
            # keeps these permission bits).
            if ids != (-1, -1):
                os.fchown(fd, *ids)
            view = memoryview(item.data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            verify_copy(item, os.pread(fd, len(item.data) + 1, 0), f"{where}/{item.name}")
        for _, item, _ in written:
            with contextlib.suppress(FileNotFoundError):
                mode = os.stat(item.name, dir_fd=dir_fd, follow_symlinks=False).st_mode
                if not stat.S_ISREG(mode):
                    raise DeployError(f"{where}: refused: {item.name} is {kind(mode)}, not a "
                                      "regular file; certfleet does not replace it")
        for tmp, item, _ in written:
            os.rename(tmp, item.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            renamed.add(tmp)
        for _, item, fd in written:
            now, ours = os.stat(item.name, dir_fd=dir_fd, follow_symlinks=False), os.fstat(fd)
            if (now.st_dev, now.st_ino) != (ours.st_dev, ours.st_ino):
                raise DeployError(f"{where}: {item.name} was swapped during the deploy: it is "
                                  f"now {kind(now.st_mode)}, not the file written (someone "
                                  "else can write this directory)")
        os.fsync(dir_fd)
    finally:
        for tmp, _, fd in written:
            os.close(fd)
            if tmp not in renamed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dir_fd)
