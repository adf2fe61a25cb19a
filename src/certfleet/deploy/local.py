"""Local targets: a directory on the Work host itself.

Touches the target directory (temporary files it creates, then renames) and runs the
configured reload argv directly, never through a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .. import fsutil
from ..errors import DeployError, safe_text
from ..layout import Placement
from ..spec import HostSettings
from . import TMP_PREFIX, DeployFile, check_owner, is_leftover, temp_name, verify_copy

RELOAD_TIMEOUT = 120.0


def _ids(owner: str | None, group: str | None, where: str) -> tuple[int, int]:
    try:
        uid = -1 if owner is None else (int(owner) if owner.isdigit()
                                        else pwd.getpwnam(owner).pw_uid)
        gid = -1 if group is None else (int(group) if group.isdigit()
                                        else grp.getgrnam(group).gr_gid)
    except KeyError as exc:
        raise DeployError(f"{where}: no such user or group: {exc}") from None
    return uid, gid


def sweep_leftovers(directory: str) -> None:
    """``_sweep`` for a target directory that may not exist (yet)."""
    with contextlib.suppress(OSError):
        _sweep(Path(directory))


def _sweep(directory: Path) -> None:
    """Remove what killed deploys left here (their ``finally`` never ran)."""
    now = time.time()
    for entry in directory.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            with contextlib.suppress(OSError):
                if is_leftover(entry.name, now - entry.lstat().st_mtime):
                    entry.unlink()


def _make_own_dir(directory: Path, mode: int, uid: int, gid: int) -> None:
    """The certificate's own directory inside the target directory, made if missing."""
    if not directory.parent.is_dir():
        raise DeployError(f"{directory.parent}: target directory missing")
    try:
        os.mkdir(directory, mode)
    except FileExistsError:
        return
    os.chmod(directory, mode, follow_symlinks=False)
    if uid != -1 or gid != -1:
        os.chown(directory, uid, gid, follow_symlinks=False)


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
        owner, group = settings.owner, settings.group
        directory = Path(where.directory)
        check_owner(owner, group, str(directory))
        uid, gid = _ids(owner, group, str(directory))
        if where.own_directory:
            _make_own_dir(directory, settings.dir_mode, uid, gid)
        if not directory.is_dir():
            raise DeployError(f"{directory}: target directory missing")
        _sweep(directory)
        written: list[tuple[Path, Path]] = []
        try:
            for item in files:
                tmp = directory / temp_name(item.name)
                written.append((tmp, directory / item.name))
                fsutil.write_new(tmp, item.data, item.mode)
                if uid != -1 or gid != -1:
                    os.chown(tmp, uid, gid, follow_symlinks=False)
                verify_copy(item, fsutil.read_small(tmp), str(tmp))
            for tmp, final in written:
                os.replace(tmp, final)
            fsutil.fsync_dir(directory)
        except OSError as exc:
            raise DeployError(f"{directory}: {exc.strerror or exc}") from exc
        finally:
            for tmp, _ in written:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

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
            tail = safe_text(output.decode("utf-8", "replace").strip()[-300:])
            raise DeployError(f"reload {safe_text(argv[0])} exited {proc.returncode}: {tail}")
