"""``certfleet serve``: the Work host's long-running http-01 responder.

Touches one listening socket and reads ``STATE/challenges/`` (written by ``certfleet run``
in another process), or with the shared store the tokens table (any Work host's ``run``
writes there), and nothing else of the state directory, so a sandbox may show it
that directory alone (contrib/systemd/certfleet-serve.service). Answers only
``GET /.well-known/acme-challenge/<token>`` for a token presented there and a Host that is
the name being validated; logs one line per request; stops gracefully on SIGTERM or
SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import fsutil
from .errors import StoreError
from .solvers.http_server import Responder, parse_listen
from .solvers.token_dir import read_token
from .store import Store

if TYPE_CHECKING:
    from collections.abc import Callable

    from .store.pg_tokens import DbTokens

log = logging.getLogger(__name__)


def challenge_dir(state_dir: Path) -> Path:
    """``STATE/challenges``, the one part of the state directory ``serve`` reads.

    An existing one must be this user's and writable by no one else, in a state directory
    that is this user's or root's (a read-only tmpfs a sandbox mounts there, with only
    ``challenges/`` bound into it) and writable by no one else; nothing else in it is
    looked at. A missing one is created with the state directory, as ``run`` would.
    """
    path = state_dir / "challenges"
    if not os.path.lexists(path):
        return Store(state_dir).challenge_dir()
    try:
        info = os.lstat(state_dir)
    except OSError as exc:
        raise StoreError(f"{state_dir}: cannot inspect: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{state_dir}: not a directory (symlinks are not followed)")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StoreError(f"{state_dir}: writable by group or others; refusing to use it")
    if info.st_uid not in (os.geteuid(), 0):
        raise StoreError(f"{state_dir}: owned by uid {info.st_uid}, not by this user or root")
    return fsutil.check_dir(path)


async def serve(listen: str, directory: Path, stop: asyncio.Event | None = None,
                tokens: DbTokens | None = None) -> None:
    """Answer validation requests until ``stop`` is set (or SIGTERM/SIGINT arrives), from
    ``directory`` or, with the shared store, from its ``tokens``."""
    host, port = parse_listen(listen)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if tokens is not None:
        responder = Responder(host, port, tokens.read, demand=_Every(tokens.count),
                              blocking=True)
    else:
        responder = Responder(host, port, lambda token: read_token(directory, token),
                              demand=_TokenCount(directory))
    await responder.start()
    log.info("serving http-01 tokens from %s on %s (at most %d connections, %d per client)",
             "the shared store" if tokens else directory, listen, responder.capacity,
             responder.limits.per_client)
    try:
        await stop.wait()
    finally:
        await responder.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped")


class _Every:
    """``count`` asked at most once a second, in a worker thread (it asks the database):
    the caps follow the last answer, and the event loop never waits for the next."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count, self.value, self.at = count, 0, -1.0
        self._asking: asyncio.Future[int] | None = None

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self.at >= 1.0 and self._asking is None:
            self.at = now
            self._asking = asyncio.get_running_loop().run_in_executor(None, self.count)
            self._asking.add_done_callback(self._answered)
        return self.value

    def _answered(self, asking: asyncio.Future[int]) -> None:
        self._asking = None
        if not asking.cancelled() and asking.exception() is None:
            self.value = asking.result()


class _TokenCount:
    """How many tokens ``run`` presents in the directory, counted at most once a second
    (the responder's caps follow it; ``http_limits``)."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.count, self.at = directory, 0, -1.0

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self.at >= 1.0:
            self.at = now
            try:
                with os.scandir(self.directory) as entries:
                    self.count = sum(1 for _ in entries)
            except OSError:
                self.count = 0
        return self.count
