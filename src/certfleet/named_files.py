"""The files certfleet.toml names for another reader to open: asyncssh's ssh_config files,
known_hosts and identity (private key), and a TLS context's trust anchors (``ca_bundle``,
``smtp_ca_bundle``).

Touches nothing: each is ``stat``-ed, and an ssh_config is read to look for ``Include``.
They have the power of certfleet.toml itself (an ssh_config's ProxyCommand or
``Match exec`` runs as certfleet's user; known_hosts and a trust anchor decide which server
is the target or the CA; the identity is the key that logs in), so they must pass its rule,
``fsutil.check_trusted``: owned by this user or root, not writable by group or others, in a
directory others cannot write to; an identity, being a secret, not readable by them either.

``Include`` in an ssh_config is refused rather than followed: asyncssh resolves it itself,
at each connection (a glob, relative to ``~/.ssh``, inside ``Host`` and ``Match`` blocks),
so the files checked here could differ from the files it reads (a glob matching a file
added later); ``[ssh] config`` takes a list, where each file is named and checked.
"""

from __future__ import annotations

import locale
import shlex
from pathlib import Path

from . import fsutil
from .errors import ConfigError

SSH_CONFIG, KNOWN_HOSTS, IDENTITY, TLS_ROOTS = "ssh_config", "known_hosts", "identity", "roots"
SSH_CONFIG_LIMIT = 1 << 20
INCLUDE_REFUSED = ("Include is not followed (certfleet could not check the files it names); "
                   "list those files in [ssh] config instead")


def refusals(path: Path, kind: str, *, missing_ok: bool) -> list[str]:
    """Why ``path`` must not be read as ``kind``, each one line naming the file (and its
    line, for an ``Include``); [] if it may. A missing file is a reason unless
    ``missing_ok`` (configuration is checked before a file may exist; the reader opens it)."""
    try:
        if kind == SSH_CONFIG:
            data = fsutil.read_trusted(path, SSH_CONFIG_LIMIT)
            return [f"{path}:{line}: {INCLUDE_REFUSED}" for line in include_lines(data)]
        fsutil.check_trusted(path, secret=kind == IDENTITY)
    except FileNotFoundError:
        return [] if missing_ok else [f"{path}: no such file"]
    except ConfigError as exc:
        return [str(exc)]
    return []


def include_lines(data: bytes) -> list[int]:
    """The numbers of the lines asyncssh would take as ``Include`` (``SSHConfig.parse``:
    the first shlex word, up to an ``=``, in any case), wherever they are."""
    found = []
    # Decoded as asyncssh's open() decodes it (this process's locale): its strip() then
    # removes the same spaces. A bad byte ends asyncssh's reading there, after the lines
    # before it took effect: replaced, not fatal. splitlines() breaks at every line end
    # text mode breaks at (and at a few more, which can only find more).
    text = data.decode(locale.getpreferredencoding(False), "replace")
    for number, line in enumerate(text.split("\n"), 1):  # numbered as editors number them
        if any(_is_include(part) for part in line.splitlines()):
            found.append(number)
    return found


def _is_include(line: str) -> bool:
    line = line.strip()
    if not line or line[0] == "#":
        return False
    try:
        words = shlex.split(line)
    except ValueError:  # asyncssh refuses the whole file at this line
        return False
    return bool(words) and _keyword(words[0]).lower() == "include"


def _keyword(word: str) -> str:
    """The option name in a line's first word, split at ``=`` as asyncssh splits it."""
    if word.startswith("="):
        return word[1:]
    if word.endswith("="):
        return word[:-1]
    return word.split("=", 1)[0]
