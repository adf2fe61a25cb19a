"""``certfleet serve``: the Work host's long-running http-01 responder.

Touches one listening socket and reads ``STATE/challenges/`` (written by ``certfleet run``
in another process). Answers only ``GET /.well-known/acme-challenge/<token>`` for a token
presented there and a Host that is the name being validated; logs one line per request;
stops gracefully on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from .solvers.http_server import Responder, parse_listen
from .solvers.token_dir import read_token

log = logging.getLogger(__name__)


async def serve(listen: str, directory: Path, stop: asyncio.Event | None = None) -> None:
    """Answer validation requests until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    host, port = parse_listen(listen)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    responder = Responder(host, port, lambda token: read_token(directory, token))
    await responder.start()
    log.info("serving http-01 tokens from %s on %s (at most %d connections, %d per client)",
             directory, listen, responder.capacity, responder.limits.per_client)
    try:
        await stop.wait()
    finally:
        await responder.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped")
