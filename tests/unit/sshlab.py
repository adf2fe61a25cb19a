"""An SSH server in the test's own event loop, for the SSH transport's fast tests.

asyncssh's server, with its SFTP server over a directory of this machine (chrooted there:
the client's ``/`` is ``Remote.root``) and every command run by ``/bin/sh -c`` as sshd runs
it. A test reaches ``deploy/ssh.py`` and ``deploy/sftp_files.py`` in its own process in
milliseconds, which is what ``make mutate`` needs; the real-sshd tests
(``integration/test_deploy_ssh.py``, ``faults/test_hostile_targets.py``) check the same
promises against OpenSSH.

A test scripts the server through its ``Remote``: ``hooks`` run right after an SFTP
request of that name succeeds (to swap a file between two requests, as another user on the
host could), ``refuse`` answers a request with an SFTP error, ``stall`` withholds the
answer ``STALL`` seconds (``late`` records one given after all),
``rewrite`` changes what it answers (a server that lies), ``vfs`` is what ``statvfs``
reports, commands find the programs in ``bin`` first, and ``asked``/``commands`` record
what the client did. A command whose channel the client closes is killed, as sshd hangs
up a session (``hung_up``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from certfleet.deploy.ssh import SshTransport
from certfleet.spec import HostSettings, Target

T = TypeVar("T")
# An answer withheld is withheld this long: far past every bound under test (0.2 to 0.5 s),
# and short enough that a mutant without the bound fails its test in seconds, not minutes.
STALL = 5.0
_KEYS: dict[str, asyncssh.SSHKey] = {}


def _key(name: str) -> asyncssh.SSHKey:
    """One host key and one client key per test process: generating them is the slow part."""
    if name not in _KEYS:
        _KEYS[name] = asyncssh.generate_private_key("ssh-ed25519")
    return _KEYS[name]


@dataclass
class Remote:
    """The server's script and record, and what a client needs to reach it."""

    root: Path
    base: Path
    port: int = 0
    accept: bool = True                        # the client's key is authorized
    hooks: dict[str, Callable[[str], None]] = field(default_factory=dict)
    refuse: dict[str, asyncssh.SFTPError] = field(default_factory=dict)
    rewrite: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    stall: set[str] = field(default_factory=set)
    late: list[str] = field(default_factory=list)
    vfs: tuple[int, int, int] | None = None    # (blocks free, block size, inodes free)
    asked: list[tuple[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    sessions: int = 0                          # SFTP sessions opened
    no_status: bool = False                    # commands end with no exit status sent
    children: list[asyncio.subprocess.Process] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)
    connections: list[asyncssh.SSHServerConnection] = field(default_factory=list)
    closed: int = 0                            # connections ended

    @property
    def bin(self) -> Path:
        return self.base / "bin"

    @property
    def known_hosts(self) -> Path:
        return self.base / "known_hosts"

    @property
    def identity(self) -> Path:
        return self.base / "id_ed25519"

    def at(self, path: str) -> Path:
        """The local path of ``path`` as the client names it."""
        return self.root / path.lstrip("/")

    def name(self, local: bytes | str) -> str:
        """The client's name for a local path."""
        text = os.fsdecode(local)
        return "/" + os.path.relpath(text, self.root).removeprefix(".")

    def transport(self, *, user: str | None = "deployer", **settings: Any) -> SshTransport:
        return SshTransport(Target("/", host="127.0.0.1", user=user),
                            HostSettings(port=self.port, identity=self.identity, **settings),
                            known_hosts=self.known_hosts)


class _Server(asyncssh.SSHServer):
    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.remote.connections.append(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self.remote.closed += 1

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self.remote.accept and key.public_data == _key("client").public_data


class _Sftp(asyncssh.SFTPServer):
    """The real SFTP server, each request passed through the test's script."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], remote: Remote) -> None:
        super().__init__(chan, chroot=os.fsencode(remote.root))
        self.remote = remote
        remote.sessions += 1

    async def _do(self, op: str, what: bytes | str, call: Callable[[], Any]) -> Any:
        remote = self.remote
        path = remote.name(what)
        remote.asked.append((op, path))
        if op in remote.stall:
            await asyncio.sleep(STALL)
            remote.late.append(op)  # the client waited the whole stall
        if op in remote.refuse:
            raise remote.refuse[op]
        result = call()
        if asyncio.iscoroutine(result):
            result = await result
        if op in remote.rewrite:
            result = remote.rewrite[op](result)
        if op in remote.hooks:
            remote.hooks[op](path)
        return result

    def _local(self, path: bytes) -> bytes:
        return self.map_path(path)

    async def lstat(self, path: bytes) -> Any:
        return await self._do("lstat", self._local(path), lambda: super(_Sftp, self).lstat(path))

    async def stat(self, path: bytes) -> Any:
        return await self._do("stat", self._local(path), lambda: super(_Sftp, self).stat(path))

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        return await self._do("open", self._local(path),
                              lambda: super(_Sftp, self).open(path, pflags, attrs))

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self._do("mkdir", self._local(path), lambda: super(_Sftp, self).mkdir(path, attrs))

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self._do("setstat", self._local(path),
                       lambda: super(_Sftp, self).setstat(path, attrs))

    async def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self._do("lsetstat", self._local(path),
                       lambda: super(_Sftp, self).lsetstat(path, attrs))

    async def remove(self, path: bytes) -> None:
        await self._do("remove", self._local(path), lambda: super(_Sftp, self).remove(path))

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._do("rename", self._local(newpath),
                       lambda: super(_Sftp, self).posix_rename(oldpath, newpath))

    async def statvfs(self, path: bytes) -> Any:
        vfs = self.remote.vfs

        def report() -> Any:
            if vfs is None:
                return super(_Sftp, self).statvfs(path)
            blocks, size, inodes = vfs
            return os.statvfs_result((size, size, 10**6, blocks, blocks, 10**6, inodes,
                                      inodes, 0, 255))
        return await self._do("statvfs", self._local(path), report)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        self.remote.asked.append(("readdir", self.remote.name(self._local(path))))
        if "readdir" in self.remote.stall:
            await asyncio.sleep(STALL)
            self.remote.late.append("readdir")
        async for entry in super().scandir(path):
            yield entry

    async def fstat(self, file_obj: Any) -> Any:
        return await self._do("fstat", file_obj.name, lambda: super(_Sftp, self).fstat(file_obj))

    async def fsetstat(self, file_obj: Any, attrs: asyncssh.SFTPAttrs) -> None:
        await self._do("fsetstat", file_obj.name,
                       lambda: super(_Sftp, self).fsetstat(file_obj, attrs))

    async def write(self, file_obj: Any, offset: int, data: bytes) -> Any:
        return await self._do("write", file_obj.name,
                              lambda: super(_Sftp, self).write(file_obj, offset, data))

    async def read(self, file_obj: Any, offset: int, size: int) -> Any:
        return await self._do("read", file_obj.name,
                              lambda: super(_Sftp, self).read(file_obj, offset, size))

    async def fsync(self, file_obj: Any) -> None:
        await self._do("fsync", file_obj.name, lambda: super(_Sftp, self).fsync(file_obj))

    async def close(self, file_obj: Any) -> None:
        await self._do("close", file_obj.name, lambda: super(_Sftp, self).close(file_obj))


async def _run(process: asyncssh.SSHServerProcess[bytes], remote: Remote) -> None:
    """What sshd does with a command: the login shell runs it."""
    command = process.command or ""
    remote.commands.append(command)
    path = f"{remote.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    child = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True, env={**os.environ, "PATH": path})
    remote.children.append(child)

    async def feed() -> None:  # the channel's input, to its end, as sshd passes it
        assert child.stdin is not None
        with contextlib.suppress(OSError):
            while chunk := await process.stdin.read(65536):
                child.stdin.write(chunk)
                await child.stdin.drain()
            child.stdin.close()

    async def both() -> tuple[bytes, bytes]:
        return (await asyncio.gather(feed(), child.communicate()))[1]
    ran = asyncio.ensure_future(both())
    gone = asyncio.ensure_future(process.channel.wait_closed())
    await asyncio.wait({ran, gone}, return_when=asyncio.FIRST_COMPLETED)
    if not ran.done():
        remote.hung_up.append(command)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        await ran
        return
    gone.cancel()
    out, err = ran.result()
    process.stdout.write(out)
    process.stderr.write(err)
    status = child.returncode or 0
    if remote.no_status:
        process.close()
    elif status < 0:
        process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
    else:
        process.exit(status)


@contextlib.asynccontextmanager
async def serve(base: Path) -> AsyncIterator[Remote]:
    """A server on 127.0.0.1 whose SFTP root is ``base/root``; the client's known_hosts
    and key are written beside it."""
    remote = Remote(base / "root", base)
    remote.root.mkdir(mode=0o755)
    remote.bin.mkdir()
    host, client = _key("host"), _key("client")
    # AES-GCM: one cipher call a packet, where chacha20-poly1305 makes six (a sixth of the
    # lab's CPU time, paid again for every mutant of the SSH modules).
    acceptor = await asyncssh.create_server(
        lambda: _Server(remote), "127.0.0.1", 0, server_host_keys=[host], encoding=None,
        encryption_algs=["aes128-gcm@openssh.com"],
        process_factory=lambda process: _run(process, remote),
        sftp_factory=lambda chan: _Sftp(chan, remote))
    remote.port = acceptor.sockets[0].getsockname()[1]
    public = host.export_public_key().decode().strip()
    remote.known_hosts.write_text(f"[127.0.0.1]:{remote.port} {public}\n")
    client.write_private_key(remote.identity)
    remote.identity.chmod(0o600)
    try:
        yield remote
    finally:
        acceptor.close()
        # A command the client gave up on would outlive the test: end it and reap it here
        # (whoever runs the tests may reap any child it finds, as mutmut does).
        for child in remote.children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                await child.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(acceptor.wait_closed(), 5)


def lab(base: Path, body: Callable[[Remote], Awaitable[T]]) -> T:
    """``body`` against a fresh server, in an event loop of its own."""
    async def main() -> T:
        async with serve(base) as remote:
            return await body(remote)
    return asyncio.run(main())
