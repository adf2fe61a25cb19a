"""Leftovers of killed deploys in a remote target directory, removed before a deploy.

Touches, on the remote host only: the target directory (read through a bounded scan) and
the leftovers found there (``remove``, which never follows a link). Nothing else is
opened, and nothing the server lists is trusted beyond a name to compare: a target that
lists thousands of planted names, or answers each request just inside ``OP_TIMEOUT``,
costs a bounded number of requests (``MAX_LISTED``, ``MAX_SWEPT``) and bounded memory (a
reply at a time, which asyncssh takes up to 4 MiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, cast

import asyncssh

from . import is_leftover

if TYPE_CHECKING:  # sftp_files imports this module: the class is needed for types only
    from .sftp_files import Sftp

# Names read from one directory, at most. A certificate's own directory holds its four or
# eight files; a directory shared through ``files = {...}`` four or eight a certificate, so
# a few thousand for a large host. OpenSSH's sftp-server sends 100 names a reply: reading
# this many costs 100 round trips, seconds even over a slow WAN (300 ms each). Past it the
# listing is left unread: what is there waits for a later run (the sweep is housekeeping,
# never a reason to fail a target), and a server listing names without end (150,000 long
# ones took 400 MB when all were kept) is not believed.
MAX_LISTED = 10_000
# Leftovers removed by one deploy, at most, one SFTP request each. A killed deploy leaves
# one for each file it was writing (four, or eight with a second key type); more than this
# were planted (or many runs were killed), and the rest go at this pace on later runs, so
# a target that answers each REMOVE slowly costs seconds (20 over a slow WAN), not hours.
MAX_SWEPT = 64


async def sweep(sftp: Sftp, directory: str) -> None:
    """Remove what killed deploys left in the target directory (``remove`` never follows)."""
    now = time.time()

    def leftover(entry: asyncssh.SFTPName) -> bool:
        name = str(entry.filename)  # a file name: the server lists no path
        return is_leftover(name, now - float(entry.attrs.mtime or now))

    for entry in await scan(sftp, directory, leftover, MAX_SWEPT):
        name = str(entry.filename)  # the path given was text: so is every name
        with contextlib.suppress(asyncssh.SFTPError):
            await sftp.remove(f"{directory}/{name}")


async def scan(sftp: Sftp, directory: str, keep: Callable[[asyncssh.SFTPName], bool],
               most: int) -> list[asyncssh.SFTPName]:
    """The entries of ``directory`` that ``keep`` accepts, at most ``most`` of them, among
    its first ``MAX_LISTED``; the rest of the listing is not read. Each reply is bounded
    like any request, and only what is kept stays in memory."""
    # scandir reads a reply at a time (opendir, then readdir as the names run out); its
    # clean-up (closing the handle) is a request too, bounded as well.
    entries = cast(AsyncGenerator[asyncssh.SFTPName, None], sftp.client.scandir(directory))
    kept: list[asyncssh.SFTPName] = []
    try:
        for _ in range(MAX_LISTED):
            entry = await sftp.bounded(directory, anext(entries, None))
            if entry is None:
                break
            if keep(entry):
                kept.append(entry)
                if len(kept) >= most:
                    break
    finally:
        # a request left unanswered holds the listing, and past the host's deadline nothing
        # more is asked: either way the listing ends with the session
        if not sftp.broken and not stopping():
            with contextlib.suppress(asyncssh.SFTPError):
                await sftp.bounded(directory, entries.aclose())
    return kept


def stopping() -> bool:
    """Whether the task is being cancelled: the host's deadline has passed (``batch``), and
    a clean-up's requests, each up to ``OP_TIMEOUT``, would outlast it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
