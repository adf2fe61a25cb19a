"""Deploy: give each target the current version's files, reload each host once, verify.

Touches remote hosts (``ssh.py``, ``sftp_files.py``) and local target directories
(``local.py``); this module holds what both share and touches nothing itself. A target
gets its files the same way everywhere: the directories on the way are checked
(``dircheck.py``); each file is created exclusively under a temporary name in the target
directory (never following a link) with its final mode, its owner and mode are set through
the open file (never by path), it is read back through it and compared (size and
SHA-256), and only when every file of the target is in place under its temporary name, and
every final name holds a regular file or nothing, are they renamed over the old ones and
checked again. A reader never sees a half-written file, a failure leaves the previous
files in place, and a user who can write the directory can fail the target but not turn
certfleet's privileges to another file.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

from ..errors import DeployError
from ..fsutil import process_gone
from ..layout import Placement
from ..protocol.frozen import frozen
from ..spec import HostSettings

TMP_PREFIX = ".certfleet-tmp-"
_ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10}")


@frozen
class DeployFile:
    """One file to place at a target: its name there, content and mode."""

    name: str
    data: bytes
    mode: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
LEFTOVER_AGE = 86400.0  # another Work host's temporary file is anyone's after a day


def temp_name(name: str) -> str:
    """``.certfleet-tmp-<host>-<pid>-<random>-<name>``: who wrote it, so that a later
    deploy can remove what a killed run left, and never what a live one is writing."""
    return f"{TMP_PREFIX}{_HOST_TAG}-{os.getpid()}-{secrets.token_hex(6)}-{name}"


def is_leftover(name: str, age: float) -> bool:
    """A temporary file of a dead deploy (this host's, process gone; or a day old)."""
    if not name.startswith(TMP_PREFIX):
        return False
    host, _, rest = name[len(TMP_PREFIX):].partition("-")
    pid = rest.partition("-")[0]
    if host == _HOST_TAG and pid.isdigit():
        return process_gone(int(pid))
    return age > LEFTOVER_AGE


def check_owner(owner: str | None, group: str | None, where: str) -> None:
    """Owner and group end up in a remote ``id``/``getent`` argument: names or numbers only."""
    for value in (owner, group):
        if value is not None and not _ACCOUNT.fullmatch(value):
            raise DeployError(f"{where}: invalid owner or group {value!r}")


def verify_copy(expected: DeployFile, got: bytes, where: str) -> None:
    """The read-back of a written file must match what was sent, byte for byte."""
    if len(got) != len(expected.data) or hashlib.sha256(got).hexdigest() != expected.sha256:
        raise DeployError(f"{where}: verification failed for {expected.name}: wrote "
                          f"{len(expected.data)} bytes, read back {len(got)} bytes "
                          "with a different hash")


class Transport(Protocol):
    """A connection to one host (or the local machine) that can install files and reload."""

    label: str

    async def __aenter__(self) -> Transport: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def install(
        self, where: Placement, files: Sequence[DeployFile], settings: HostSettings,
    ) -> None:
        """Place ``files`` in ``where.directory`` (made first if it is certfleet's own and
        missing), atomically per file, all verified first; owner and group from
        ``settings``."""

    async def run(self, argv: Sequence[str]) -> None:
        """Run a reload command; ``DeployError`` if it fails."""

    def peer_address(self) -> str | None:
        """The address actually connected to, for the TLS probe."""
