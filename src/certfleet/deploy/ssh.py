"""SSH targets: ``[user@]host:/dir`` reached with asyncssh, honouring ssh_config and known_hosts.

Touches remote hosts only. Files go over SFTP (no remote shell is needed for them); the
reload command and ``chown`` run as argv joined with ``shlex.join``, so no domain name,
path or server reply is ever interpreted by a shell. A host key that known_hosts does not
vouch for is refused, with its fingerprint in the error; it is never accepted or learned.
The account key never leaves the Work host: only a certificate's own four files are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import asyncssh

from ..errors import DeployError, safe_text
from ..layout import Placement
from ..spec import HostSettings, Target
from . import TMP_PREFIX, DeployFile, check_owner, is_leftover, temp_name, verify_copy

CONNECT_TIMEOUT = 15.0
COMMAND_TIMEOUT = 120.0


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
        self._sftp: asyncssh.SFTPClient | None = None

    def _options(self) -> dict[str, object]:
        options: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT,
                                      "config": self.ssh_config or ()}
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
            self._conn = await asyncssh.connect(self.host, **self._options())
            self._sftp = await self._conn.start_sftp_client()
        except asyncssh.HostKeyNotVerifiable:
            raise DeployError(f"{self.label}: host key not trusted ({await self._fingerprint()}"
                              "); add it to known_hosts after checking it") from None
        except asyncssh.PermissionDenied:
            raise DeployError(f"{self.label}: SSH authentication refused") from None
        except (OSError, asyncssh.Error) as exc:
            raise DeployError(f"{self.label}: cannot connect: {_describe(exc)}") from None
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sftp is not None:
            self._sftp.exit()
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(Exception):
                await self._conn.wait_closed()

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
        assert self._sftp is not None
        owner, group, directory = settings.owner, settings.group, placement.directory
        where = f"{self.label}:{directory}"
        check_owner(owner, group, where)
        sftp = self._sftp
        written: list[tuple[str, str]] = []
        try:
            if placement.own_directory:
                await self._make_own_dir(directory, settings)
            if not await sftp.isdir(directory):
                raise DeployError(f"{where}: target directory missing")
            await self._sweep(directory)
            for item in files:
                tmp = f"{directory}/{temp_name(item.name)}"
                written.append((tmp, f"{directory}/{item.name}"))
                attrs = asyncssh.SFTPAttrs(permissions=item.mode)
                async with sftp.open(tmp, "xb", attrs) as handle:
                    await sftp.chmod(tmp, item.mode)  # the remote umask may have narrowed it
                    await handle.write(item.data)
                if owner or group:
                    spec = f"{owner or ''}:{group}" if group else str(owner)
                    await self.run(["chown", "--", spec, tmp])
                async with sftp.open(tmp, "rb") as handle:
                    verify_copy(item, await handle.read(), f"{where}/{item.name}")
            for tmp, final in written:
                await sftp.posix_rename(tmp, final)
            written.clear()
        except asyncssh.SFTPError as exc:
            raise DeployError(f"{where}: {safe_text(exc.reason or type(exc).__name__)}") from None
        except (OSError, asyncssh.Error) as exc:
            raise DeployError(f"{where}: {_describe(exc)}") from None
        finally:
            for tmp, _ in written:
                with contextlib.suppress(asyncssh.SFTPError, OSError, asyncssh.Error):
                    await sftp.remove(tmp)

    async def _make_own_dir(self, directory: str, settings: HostSettings) -> None:
        """The certificate's own directory inside the target directory, made if missing."""
        assert self._sftp is not None
        parent = directory.rpartition("/")[0] or "/"
        if not await self._sftp.isdir(parent):
            raise DeployError(f"{self.label}:{parent}: target directory missing")
        if await self._sftp.exists(directory):
            return
        await self._sftp.mkdir(directory, asyncssh.SFTPAttrs(permissions=settings.dir_mode))
        await self._sftp.chmod(directory, settings.dir_mode)  # the remote umask narrowed it
        if settings.owner or settings.group:
            spec = f"{settings.owner or ''}:{settings.group}" if settings.group \
                else str(settings.owner)
            await self.run(["chown", "--", spec, directory])

    async def _sweep(self, directory: str) -> None:
        """Remove what killed deploys left in the target directory."""
        assert self._sftp is not None
        now = time.time()
        for entry in await self._sftp.readdir(directory):
            name = entry.filename if isinstance(entry.filename, str) else ""
            if name.startswith(TMP_PREFIX):
                age = now - float(entry.attrs.mtime or now)
                if is_leftover(name, age):
                    with contextlib.suppress(asyncssh.SFTPError):
                        await self._sftp.remove(f"{directory}/{name}")

    async def run(self, argv: Sequence[str]) -> None:
        assert self._conn is not None
        command = shlex.join(argv)
        try:
            result = await self._conn.run(command, check=False, timeout=COMMAND_TIMEOUT,
                                          stdin=asyncssh.DEVNULL)
        except (OSError, asyncssh.Error) as exc:
            raise DeployError(f"{self.label}: {safe_text(argv[0])}: {_describe(exc)}") from None
        if result.exit_status != 0:
            output = "".join(
                part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part or "")
                for part in (result.stderr, result.stdout)
            ).strip()
            raise DeployError(f"{self.label}: {safe_text(argv[0])} exited "
                              f"{result.exit_status}: {safe_text(output[-300:])}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return safe_text(str(exc) or type(exc).__name__)
