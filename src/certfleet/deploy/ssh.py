"""SSH targets: ``[user@]host:/dir`` reached with asyncssh, honouring ssh_config and known_hosts.

Touches remote hosts; here, it only looks at the ssh_config files, known_hosts and identity
asyncssh is given, each refused unless trusted (``named_files``: checked when the
configuration is read, and again just before asyncssh opens them). Files go over SFTP
(``sftp_files``: created exclusively, mode and owner set through the open handle, never by
path). Commands (the reload, and the ``id``/``getent`` look-ups that turn the host's
``owner`` and ``group`` into numbers) run as argv joined with ``shlex.join``, so no domain
name, path or server reply is ever interpreted by a shell. A host key that known_hosts
does not vouch for is refused, with its fingerprint in the error; it is never accepted or
learned. The account key never leaves the Work host: only a certificate's own four files
are sent.

Everything the server says (disconnect reasons, SFTP error texts, command output) reaches
a message only through ``safe_text``; the authentication banner is never shown (asyncssh's
``SSHClient.auth_banner_received`` ignores it). Every exchange is bounded in time: the
connection (``CONNECT_TIMEOUT``), each SFTP request (``sftp_files.OP_TIMEOUT``; a session
that stopped answering is replaced for the next target), each command, and the host's
whole deploy (``batch.host_deadline``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import asyncssh

from .. import named_files
from ..errors import DeployError, safe_tail, safe_text
from ..layout import Placement
from ..spec import HostSettings, Target
from . import DeployFile, check_owner
from . import sftp_files as files_
from .dircheck import Trust

CONNECT_TIMEOUT = 15.0       # asyncssh's: the TCP connection, key exchange and authentication
CLOSE_TIMEOUT = 5.0          # a peer that stops reading cannot hold the run at the end
COMMAND_TIMEOUT = 120.0
LOOKUP_TIMEOUT = 30.0
OUTPUT_KEPT = 4096           # the tail of a command's output kept for the message
# The largest user or group ID: IDs are 32 bits, and 2**32 - 1 is (uid_t) -1, which chown
# takes as "leave it as it is". A larger number from a host (or the settings) is refused
# as it comes, before SFTP has to encode it.
MAX_ID = 2**32 - 2


class SshTransport:
    """One SSH connection to one host (and user) for the whole run."""

    def __init__(
        self, target: Target, settings: HostSettings, *, ssh_config: Sequence[Path] = (),
        known_hosts: Path | None = None,
    ) -> None:
        assert target.host is not None
        self.host = target.host
        self.user = target.user or settings.user
        self.settings = settings
        self.ssh_config = [str(p) for p in ssh_config]
        self.known_hosts = known_hosts
        user = f"{self.user}@" if self.user else ""
        self.label = f"{user}{self.host}"
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: files_.Sftp | None = None
        self._login: int | None = None
        self._ids: dict[tuple[str, str], int] = {}

    def _options(self) -> dict[str, object]:
        # A list, even empty: given (), asyncssh would read ~/.ssh/config itself, unchecked
        # (the configuration put it here if it was there: config/job.py).
        options: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT,
                                      "config": list(self.ssh_config)}
        if self.user:
            options["username"] = self.user
        if self.settings.port:
            options["port"] = self.settings.port
        if self.settings.identity:
            options["client_keys"] = [str(self.settings.identity)]
        if self.known_hosts is not None:
            options["known_hosts"] = str(self.known_hosts)
        return options

    async def __aenter__(self) -> SshTransport:
        try:
            await self._open()
        except BaseException:
            await self.__aexit__(None, None, None)  # a connection without its SFTP session
            raise
        return self

    async def _open(self) -> None:
        """Connect and start the SFTP session; every failure is one line naming the host."""
        for path, kind in self._local_files():
            if why := named_files.refusals(path, kind, missing_ok=False):
                raise DeployError(f"{self.label}: {safe_text(why[0])}")
        try:
            self._conn = await asyncssh.connect(self.host, **self._options())
            await self._session()
        except asyncssh.HostKeyNotVerifiable:
            raise DeployError(f"{self.label}: host key not trusted ({await self._fingerprint()}"
                              "); add it to known_hosts after checking it") from None
        except asyncssh.PermissionDenied:
            raise DeployError(f"{self.label}: SSH authentication refused") from None
        except (OSError, asyncssh.Error) as exc:
            raise DeployError(f"{self.label}: cannot connect: {_describe(exc)}") from None

    def _local_files(self) -> list[tuple[Path, str]]:
        """The files of this machine asyncssh is told to read, and as what."""
        files = [(Path(path), named_files.SSH_CONFIG) for path in self.ssh_config]
        if self.known_hosts is not None:
            files.append((Path(self.known_hosts), named_files.KNOWN_HOSTS))
        if self.settings.identity:
            files.append((Path(self.settings.identity), named_files.IDENTITY))
        return files

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sftp is not None:
            self._sftp.client.exit()
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._conn.wait_closed(), CLOSE_TIMEOUT)

    async def _session(self) -> files_.Sftp:
        """The SFTP session; a fresh one if the last stopped answering."""
        assert self._conn is not None
        if self._sftp is not None:
            if not self._sftp.broken:
                return self._sftp
            self._sftp.client.exit()
            self._sftp = None
        try:
            client = await asyncio.wait_for(self._conn.start_sftp_client(),
                                            files_.OP_TIMEOUT)
        except TimeoutError:
            raise DeployError(f"{self.label}: no SFTP session within "
                              f"{files_.OP_TIMEOUT:g} s") from None
        self._sftp = files_.Sftp(client, self.label)
        return self._sftp

    async def _fingerprint(self) -> str:
        """The offered host key's fingerprint, fetched without trusting or storing it."""
        options = {k: v for k, v in self._options().items() if k in ("config", "port")}
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(self.host, **options),  # type: ignore[arg-type]
                CONNECT_TIMEOUT)
        except (OSError, asyncssh.Error) as exc:
            return f"fingerprint unavailable: {_describe(exc)}"
        return key.get_fingerprint("sha256") if key else "no host key offered"

    def peer_address(self) -> str | None:
        if self._conn is None:
            return None
        peer = self._conn.get_extra_info("peername")
        return str(peer[0]) if peer else None

    async def install(
        self, placement: Placement, files: Sequence[DeployFile], settings: HostSettings,
    ) -> None:
        where = f"{self.label}:{placement.directory}"
        check_owner(settings.owner, settings.group, where)
        try:
            ids = files_.Ids(await self._lookup("user", settings.owner),
                             await self._lookup("group", settings.group))
            login = None if settings.trust_target_dir else await self._lookup_login()
            trust = None if login is None else Trust(
                frozenset(uid for uid in (0, login, ids.uid) if uid is not None),
                ids.gid, settings.allow_group_writable, steady=frozenset((0, login)))
            target = files_.Target(await self._session(), where, placement, settings, ids,
                                   trust)
            await files_.install(target, files)
        except asyncssh.SFTPError as exc:
            reason = safe_text(exc.reason or type(exc).__name__)
            if isinstance(exc, asyncssh.SFTPFailure):
                reason += await self._no_room(placement.directory, files)
            raise DeployError(f"{where}: {reason}") from None
        except (OSError, asyncssh.Error) as exc:
            raise DeployError(f"{where}: {_describe(exc)}") from None

    async def _no_room(self, directory: str, files: Sequence[DeployFile]) -> str:
        """SFTP v3 reports a full disk as a bare "Failure" (it has no code for ENOSPC): ask
        the file system whether the files fit there, to say why the deploy failed."""
        # a Failure answers a request, so the session was started (starting one fails with
        # other errors)
        assert self._sftp is not None
        room = await self._sftp.room(directory)
        if room is None or room[1] <= 0:
            return ""
        blocks, size, inodes = room
        need = sum(-(-len(item.data) // size) for item in files)  # whole blocks
        if blocks < need:
            return (f" (No space left on device: {blocks * size} bytes free, {need * size} "
                    "needed)")
        if inodes < len(files):
            return f" (No space left on device: {inodes} inodes free, {len(files)} needed)"
        return ""

    async def _lookup_login(self) -> int:
        """The login user's uid on the host (``id -u``), once per connection."""
        if self._login is None:
            self._login = _number(await self._output(["id", "-u"]), "id -u", self.label)
        return self._login

    async def _lookup(self, what: str, name: str | None) -> int | None:
        """``owner``/``group`` as a number on the host, asked once per connection (a number
        in the settings is used as it is)."""
        if name is None:
            return None
        if name.isascii() and name.isdigit():
            if int(name) > MAX_ID:
                raise DeployError(f"{self.label}: {what} {name} is not a {what} ID (at most "
                                  f"{MAX_ID})")
            return int(name)
        if (what, name) not in self._ids:
            argv = ["id", "-u", "--", name] if what == "user" else ["getent", "group", "--", name]
            out = await self._output(argv)
            fields = out.split(":")  # getent: name:password:gid:members
            text = out if what == "user" else fields[2] if len(fields) > 2 else ""
            self._ids[(what, name)] = _number(text, f"{what} {name}", self.label)
        return self._ids[(what, name)]

    async def _output(self, argv: Sequence[str]) -> str:
        """The standard output of a lookup: what the login shell's start-up files print on
        standard error (a warning, a failed rehash) is no part of the answer."""
        status, output, errors = await self._exec(argv, LOOKUP_TIMEOUT)
        if status != 0:
            raise DeployError(f"{self.label}: {safe_text(shlex.join(argv))} failed "
                              f"({status}): {safe_text((errors or output).strip())}")
        return output

    async def _exec(self, argv: Sequence[str], timeout: float) -> tuple[int | str, str, str]:
        """Run ``argv`` (quoted for the login shell); its exit status (or the signal that
        ended it) and the tails of its standard output and error. Bounded in time and in
        memory."""
        assert self._conn is not None
        conn, command = self._conn, shlex.join(argv)
        process: asyncssh.SSHClientProcess[bytes] | None = None

        async def go() -> tuple[int | str, str, str]:
            nonlocal process
            process = await conn.create_process(command, stdin=asyncssh.DEVNULL,
                                                encoding=None)
            output, errors = await asyncio.gather(_tail(process.stdout),
                                                  _tail(process.stderr))
            await process.wait_closed()
            # asyncssh gives -1 as the exit status of a command ended by a signal
            signal, code = process.exit_signal, process.exit_status
            status: int | str = f"signal {safe_text(str(signal[0]))}" if signal \
                else "without a status" if code is None else code
            return status, output, errors

        try:
            return await asyncio.wait_for(go(), timeout)
        except TimeoutError:
            if process is not None:
                process.close()
            raise DeployError(f"{self.label}: {safe_text(argv[0])}: timed out after "
                              f"{timeout:g} s") from None
        except (OSError, asyncssh.Error) as exc:
            raise DeployError(f"{self.label}: {safe_text(argv[0])}: {_describe(exc)}") from None

    async def run(self, argv: Sequence[str]) -> None:
        status, output, errors = await self._exec(argv, COMMAND_TIMEOUT)
        if status != 0:
            said = (output + errors).strip()
            raise DeployError(f"{self.label}: {safe_text(argv[0])} exited "
                              f"{status}: {safe_tail(said)}")


async def _tail(stream: asyncssh.SSHReader[bytes]) -> str:
    """The last ``OUTPUT_KEPT`` bytes of a stream, read to its end."""
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk
        del kept[:-OUTPUT_KEPT]
    return kept.decode("utf-8", "replace")


def _number(text: str, what: str, label: str) -> int:
    """A user or group ID as the host printed it."""
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 10):
        raise DeployError(f"{label}: cannot resolve {safe_text(what)}: got "
                          f"'{safe_text(value, 60)}'")
    if int(value) > MAX_ID:
        raise DeployError(f"{label}: cannot resolve {safe_text(what)}: got {value}, not an "
                          f"ID (at most {MAX_ID})")
    return int(value)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and not isinstance(exc, socket.gaierror) \
            and (number := exc.errno or 0) > 0:
        # asyncio words a refused connection "Connect call failed ('192.0.2.1', 22)": the
        # system's text for the error number says what happened.
        return os.strerror(number)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return safe_text(str(exc) or type(exc).__name__)
