"""One target directory on a remote host, over an SFTP session: checks, the certificate's
own directory, temporary files, verification, renames.

Touches, on the remote host only: the directories on the way to the target (``lstat``
only), the certificate's own directory (made if missing), the temporary files it creates
there, the final file names (by ``rename`` only), and leftovers of killed deploys
(``sftp_sweep``: ``remove``, which never follows a link). It never changes the mode or
owner of anything by path except a directory it has just made, without following a link.

What SFTP (version 3, as OpenSSH's sftp-server speaks it) can and cannot guarantee, and
what is done with it:

* ``open`` with CREAT|EXCL never follows a link and never opens an existing entry: a
  symlink, FIFO or device already at a temporary name makes it fail. Every temporary file
  is created that way, with its final mode (the umask can only narrow it).
* Mode and owner are set through that open handle (``fsetstat``: fchmod/fchown on the
  server), the content is written and read back through it, and ``fstat`` of it is
  checked. Whatever is swapped in at the temporary name meanwhile, these act on the file
  certfleet created, never on another one.
* SFTP v3 has no O_NOFOLLOW and no O_NONBLOCK: opening an existing path follows links and
  blocks on a FIFO (which hangs the whole single-threaded sftp-server). So certfleet never
  opens a path it did not just create: it reads back through its own handle.
* ``rename`` replaces a link, never its target. Just before, every final name is
  ``lstat``-ed and must be missing or a regular file; just after, each must still be a
  regular file with the size, owner, group, mode and mtime of the handle's ``fstat``.
  SFTP v3 reports no inode numbers, so "the same file" cannot be proven exactly; a swap is
  caught by the file type and attributes, and certfleet never acts on what it finds.
* Directories: ``mkdir`` never follows; the mode and owner of a directory just made are set
  with ``lsetstat@openssh.com`` (OpenSSH 8.0+), which does not follow links. There is no
  ``openat``: each operation resolves its path anew, so a user who may write a directory
  on the way could redirect the files into another directory between two operations. That
  is why the directories on the way are checked (``dircheck``; here, each entry on the way
  to the directory written in must be left to root and the login user, ``swappable``)
  unless the host is told to trust them. That rests on ownership, not on timing.
* Every request is bounded (``OP_TIMEOUT``), its clean-up included; after a timeout the
  session is marked broken and the transport opens a fresh one for the next target. A
  host's whole deploy is bounded too (``batch``): past that, a later run sweeps the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import asyncssh

from ..errors import DeployError
from ..layout import Placement
from ..protocol.frozen import frozen
from ..spec import HostSettings
from . import DeployFile, temp_name, verify_copy
from .dircheck import Seen, Trust, kind, prefixes, problem, swappable
from .sftp_sweep import stopping, sweep

OP_TIMEOUT = 30.0
T = TypeVar("T")


@frozen
class Ids:
    """The numeric owner and group the files are given (None: left as created)."""

    uid: int | None = None
    gid: int | None = None


class Sftp:
    """An SFTP session whose every request is bounded in time."""

    def __init__(self, client: asyncssh.SFTPClient, label: str) -> None:
        self.client = client
        self.label = label
        self.broken = False

    async def bounded(self, what: str, call: Awaitable[T]) -> T:
        # Not wait_for: it waits for the cancelled request to end, and a request's clean-up
        # may itself wait on the server (readdir closes its handle), so a server that stops
        # answering would hold it for ever. The request left behind ends with the session.
        request = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({request}, timeout=OP_TIMEOUT)
        finally:
            request.cancel()  # nothing once it is done; not awaited
        if not done:
            self.broken = True
            where = what if what.startswith(f"{self.label}:") else f"{self.label}:{what}"
            raise DeployError(f"{where}: no answer from the SFTP server within "
                              f"{OP_TIMEOUT:g} s")
        return request.result()

    async def lstat(self, path: str) -> asyncssh.SFTPAttrs | None:
        try:
            return await self.bounded(path, self.client.lstat(path))
        except asyncssh.SFTPNoSuchFile:
            return None

    async def isdir(self, path: str) -> bool:
        return await self.bounded(path, self.client.isdir(path))

    async def create(self, path: str, mode: int) -> asyncssh.SFTPClientFile:
        attrs = asyncssh.SFTPAttrs(permissions=mode)
        return await self.bounded(path, self.client.open(path, "x+b", attrs))

    async def mkdir(self, path: str, mode: int) -> None:
        await self.bounded(path, self.client.mkdir(path, asyncssh.SFTPAttrs(permissions=mode)))

    async def lsetstat(self, path: str, attrs: asyncssh.SFTPAttrs) -> None:
        await self.bounded(path, self.client.setstat(path, attrs, follow_symlinks=False))

    async def rename(self, old: str, new: str) -> None:
        await self.bounded(new, self.client.posix_rename(old, new))

    async def remove(self, path: str) -> None:
        await self.bounded(path, self.client.remove(path))

    async def fsetstat(self, handle: asyncssh.SFTPClientFile, attrs: asyncssh.SFTPAttrs,
                       what: str) -> None:
        await self.bounded(what, handle.setstat(attrs))

    async def fstat(self, handle: asyncssh.SFTPClientFile, what: str) -> asyncssh.SFTPAttrs:
        return await self.bounded(what, handle.stat())

    async def write(self, handle: asyncssh.SFTPClientFile, data: bytes, what: str) -> None:
        await self.bounded(what, handle.write(data, 0))
        with contextlib.suppress(asyncssh.SFTPOpUnsupported):
            await self.bounded(what, handle.fsync())

    async def read(self, handle: asyncssh.SFTPClientFile, size: int, what: str) -> bytes:
        data: bytes = await self.bounded(what, handle.read(size, 0))  # opened in binary
        return data

    async def close(self, handle: asyncssh.SFTPClientFile, what: str) -> None:
        await self.bounded(what, handle.close())

    async def room(self, path: str) -> tuple[int, int, int] | None:
        """Blocks, their size, and inodes free to an unprivileged user on the file system
        that holds ``path`` (``statvfs@openssh.com``); None if the server cannot tell."""
        try:
            vfs = await self.bounded(path, self.client.statvfs(path))
        except (asyncssh.Error, DeployError):
            return None
        return vfs.bavail, vfs.frsize, vfs.favail


@dataclass
class _Temp:
    item: DeployFile
    path: str
    final: str
    handle: asyncssh.SFTPClientFile
    attrs: asyncssh.SFTPAttrs | None = None
    renamed: bool = False


@dataclass
class Target:
    """One install: where, what, as whom, and what the directories may be."""

    sftp: Sftp
    where: str                  # "label:directory", for messages
    placement: Placement
    settings: HostSettings
    ids: Ids
    trust: Trust | None         # None: trust_target_dir
    temps: list[_Temp] = field(default_factory=list)


async def install(target: Target, files: Sequence[DeployFile]) -> None:
    """Check the directories, make the certificate's own one if missing, write every file
    under a temporary name, verify, then rename them all into place and check them."""
    directory = target.placement.directory
    before: asyncssh.SFTPAttrs | None
    if target.placement.own_directory:
        parent = await check_dirs(target, directory.rpartition("/")[0] or "/")
        before = await own_dir(target, parent)
    else:
        before = await check_dirs(target, directory)
    await sweep(target.sftp, directory)
    try:
        for item in files:
            await _write(target, item)
        for temp in target.temps:
            await _final_is_free(target, temp)
        for temp in target.temps:
            try:
                await target.sftp.rename(temp.path, temp.final)
            except asyncssh.SFTPError:
                await _what_is_there(target, temp)
                raise
            temp.renamed = True
        for temp in target.temps:
            await _still_ours(target, temp)
        after = await target.sftp.lstat(directory)
        if before is not None and (after is None or _differs(before, after, dirs=True)):
            raise DeployError(f"{target.where}: the directory was replaced during the deploy")
    finally:
        await _clean_up(target)


async def check_dirs(target: Target, directory: str) -> asyncssh.SFTPAttrs | None:
    """Every directory from ``/`` to ``directory``, looked at without following links."""
    if target.trust is None:
        if not await target.sftp.isdir(directory):
            raise DeployError(f"{target.sftp.label}:{directory}: target directory missing")
        return None
    parent: asyncssh.SFTPAttrs | None = None
    for path in prefixes(directory):
        attrs = await _checked(target, path, directory)  # and its entry in the one before
        _steady(target, f"{target.sftp.label}:{directory}", parent, path, attrs)
        parent = attrs
    return parent


async def _checked(target: Target, path: str, directory: str) -> asyncssh.SFTPAttrs:
    """One directory on the way to ``directory`` (or itself), refused unless it is safe."""
    assert target.trust is not None
    where = f"{target.sftp.label}:{directory}"
    attrs = await target.sftp.lstat(path)
    if attrs is None:
        on_the_way = "" if path == directory else f" ({path})"
        raise DeployError(f"{where}: target directory missing{on_the_way}")
    why = problem(_seen(path, attrs), target.trust, last=path == directory)
    if why is not None:
        raise DeployError(f"{where}: refused: {why}")
    return attrs


def _steady(target: Target, where: str, parent: asyncssh.SFTPAttrs | None, path: str,
            attrs: asyncssh.SFTPAttrs | None) -> None:
    """``path`` (``attrs`` None: not yet made), an entry of a directory on the way (seen as
    ``parent``), must be left to root and the login user (``dircheck.swappable``)."""
    if target.trust is None or parent is None:  # trusted, or ``/`` itself
        return
    above = path.rpartition("/")[0] or "/"
    uid = None if attrs is None else _seen(path, attrs).uid
    why = swappable(_seen(above, parent), path, uid, target.trust)
    if why is not None:
        raise DeployError(f"{where}: refused: {why}")


async def own_dir(target: Target, parent: asyncssh.SFTPAttrs | None) -> asyncssh.SFTPAttrs:
    """The certificate's own directory (in ``parent``'s): made if missing (mode and owner
    set without following a link), and never a symlink, whatever the settings."""
    sftp, directory, settings = target.sftp, target.placement.directory, target.settings
    _steady(target, target.where, parent, directory, None)  # before anything is made there
    attrs = await sftp.lstat(directory)
    if attrs is None:
        await sftp.mkdir(directory, settings.dir_mode)
        attrs = _a_directory(target, await sftp.lstat(directory))
        fix = _dir_fix(attrs, settings.dir_mode, target.ids)
        if fix is not None:
            try:
                await sftp.lsetstat(directory, fix)
            except asyncssh.SFTPError as exc:
                # a link swapped in refuses lsetstat too (no lchmod on Linux): say that first
                _a_directory(target, await sftp.lstat(directory))
                if isinstance(exc, asyncssh.SFTPOpUnsupported):
                    raise DeployError(f"{target.where}: the SFTP server cannot set a "
                                      "directory's mode or owner without following links "
                                      "(lsetstat, OpenSSH 8.0+): make this directory by "
                                      "hand") from None
                raise
            attrs = await sftp.lstat(directory)
    attrs = _a_directory(target, attrs)
    if target.trust is not None:
        why = problem(_seen(directory, attrs), target.trust, last=True)
        if why is not None:
            raise DeployError(f"{target.where}: refused: {why}")
        _steady(target, target.where, parent, directory, attrs)  # its owner, now known
    return attrs


def _a_directory(target: Target, attrs: asyncssh.SFTPAttrs | None) -> asyncssh.SFTPAttrs:
    """``attrs`` of the certificate's own directory, refused unless it is one."""
    if attrs is None:
        raise DeployError(f"{target.where}: the directory vanished while being made")
    mode = _mode(attrs)
    if not stat.S_ISDIR(mode):
        raise DeployError(f"{target.where}: refused: the certificate's own directory is "
                          f"{kind(mode)}, not a directory; certfleet never follows it")
    return attrs


def _dir_fix(attrs: asyncssh.SFTPAttrs | None, mode: int, ids: Ids) -> asyncssh.SFTPAttrs | None:
    """What a directory just made still needs: its mode (the umask narrowed it) and owner."""
    if attrs is None:
        return None
    fix = asyncssh.SFTPAttrs()
    if stat.S_IMODE(_mode(attrs)) != mode:
        fix.permissions = mode
    if (ids.uid is not None and ids.uid != attrs.uid) or \
            (ids.gid is not None and ids.gid != attrs.gid):
        fix.uid = attrs.uid if ids.uid is None else ids.uid
        fix.gid = attrs.gid if ids.gid is None else ids.gid
    return None if fix.permissions is None and fix.uid is None else fix


async def _write(target: Target, item: DeployFile) -> None:
    """Create the temporary file (never following, never opening what is there), then set
    owner and mode, write, read back and ``fstat``, all through the one handle."""
    sftp, directory = target.sftp, target.placement.directory
    path = f"{directory}/{temp_name(item.name)}"
    what = f"{target.where}/{item.name}"
    handle = await sftp.create(path, item.mode)
    temp = _Temp(item, path, f"{directory}/{item.name}", handle)
    target.temps.append(temp)
    ids = target.ids
    if ids.uid is not None or ids.gid is not None:
        now = await sftp.fstat(handle, what)
        await sftp.fsetstat(handle, asyncssh.SFTPAttrs(
            uid=now.uid if ids.uid is None else ids.uid,
            gid=now.gid if ids.gid is None else ids.gid), what)
    # after the owner (which may clear bits), and the umask may have narrowed it
    await sftp.fsetstat(handle, asyncssh.SFTPAttrs(permissions=item.mode), what)
    await sftp.write(handle, item.data, what)
    verify_copy(item, await sftp.read(handle, len(item.data) + 1, what), what)
    attrs = await sftp.fstat(handle, what)
    mode = _mode(attrs)
    if not stat.S_ISREG(mode):  # only a lying server says so of the file it created
        raise DeployError(f"{what}: the file written is {kind(mode)}, not a regular file")
    wrong = (f"mode {stat.S_IMODE(mode):04o}" if stat.S_IMODE(mode) != item.mode
             else f"owner {attrs.uid}" if ids.uid is not None and attrs.uid != ids.uid
             else f"group {attrs.gid}" if ids.gid is not None and attrs.gid != ids.gid
             else "")
    if wrong:
        raise DeployError(f"{what}: the file written has {wrong}, not what was set")
    temp.attrs = attrs


async def _final_is_free(target: Target, temp: _Temp) -> None:
    """A final name may hold the previous regular file, or nothing; anything else (a link,
    a FIFO, a device, a directory) was put there by someone else and is left alone."""
    attrs = await target.sftp.lstat(temp.final)
    mode = _mode(attrs)
    if attrs is not None and not stat.S_ISREG(mode):
        raise DeployError(f"{target.where}: refused: {temp.item.name} is {kind(mode)}, not a "
                          "regular file; certfleet does not replace it")


async def _what_is_there(target: Target, temp: _Temp) -> None:
    """A rename failed: if the temporary name no longer holds a regular file, say so."""
    attrs = await target.sftp.lstat(temp.path)
    mode = _mode(attrs)
    if not stat.S_ISREG(mode):
        now = "gone" if attrs is None else kind(mode)
        raise DeployError(f"{target.where}: {temp.item.name} was swapped during the deploy: "
                          f"its temporary file is now {now} (someone else can write this "
                          "directory)")


async def _still_ours(target: Target, temp: _Temp) -> None:
    """After the rename, the final name must hold what the handle wrote."""
    attrs = await target.sftp.lstat(temp.final)
    name = temp.item.name
    if attrs is None:
        raise DeployError(f"{target.where}: {name} vanished right after it was put in place")
    mode = _mode(attrs)
    if not stat.S_ISREG(mode):
        raise DeployError(f"{target.where}: {name} was swapped during the deploy: it is now "
                          f"{kind(mode)} (someone else can write this directory)")
    assert temp.attrs is not None
    if _differs(temp.attrs, attrs, dirs=False):
        raise DeployError(f"{target.where}: {name} was swapped during the deploy: it is not "
                          "the file written (someone else can write this directory)")


def _differs(one: asyncssh.SFTPAttrs, two: asyncssh.SFTPAttrs, *, dirs: bool) -> bool:
    keys = ("permissions", "uid", "gid") + (() if dirs else ("size", "mtime"))
    return any(getattr(one, key) != getattr(two, key) for key in keys)


async def _clean_up(target: Target) -> None:
    """Close the handles and remove the temporary names not renamed (``remove`` removes a
    link, never its target). Skipped on a session that stopped answering, and past the
    host's deadline (its requests could outlast it): a later run's sweep removes them."""
    for temp in target.temps:
        if target.sftp.broken or stopping():
            return
        with contextlib.suppress(asyncssh.Error, OSError, DeployError):
            await target.sftp.close(temp.handle, temp.path)
        if not temp.renamed:
            with contextlib.suppress(asyncssh.Error, OSError, DeployError):
                await target.sftp.remove(temp.path)


def _mode(attrs: asyncssh.SFTPAttrs | None) -> int:
    """st_mode as the server reports it; nothing reported (or nothing there) is no type and
    no permission, which every check refuses."""
    return 0 if attrs is None or attrs.permissions is None else attrs.permissions


def _seen(path: str, attrs: asyncssh.SFTPAttrs) -> Seen:
    """An owner the server does not report is nobody's (-1): never trusted."""
    uid, gid = attrs.uid, attrs.gid
    return Seen(path, _mode(attrs), -1 if uid is None else uid, -1 if gid is None else gid)
