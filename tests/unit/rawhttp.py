"""Raw-socket clients for the http-01 responder tests: bytes out, bytes back, real loopback
sockets, no HTTP library in between (one would refuse to send most of what is sent here)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest

from certfleet.protocol.challenges import HTTP_01_PREFIX
from certfleet.solvers.http_limits import Limits
from certfleet.solvers.http_responder import Responder

T = TypeVar("T")
TOKEN = "T" * 20 + "_-" + "x" * 21
KEY_AUTH = f"{TOKEN}.thumbprint"
NAME = "www.example.com"
PATH = HTTP_01_PREFIX + TOKEN
LOGGER = "certfleet.solvers.http_responder"


def request(host: str | bytes | None = NAME, path: str = PATH, *, method: str = "GET",
            version: str = "HTTP/1.1", extra: bytes = b"") -> bytes:
    """A request head; ``extra`` is more header lines (each ending in CRLF)."""
    line = f"{method} {path} {version}\r\n".encode()
    if isinstance(host, str):
        host = host.encode()
    return line + (b"Host: " + host + b"\r\n" if host is not None else b"") + extra + b"\r\n"


@dataclass
class Answer:
    raw: bytes
    closed: bool      # the server closed (EOF or reset) within the time allowed

    @property
    def status(self) -> int | None:
        if not self.raw.startswith(b"HTTP/1.1 "):
            return None
        return int(self.raw[9:12])

    @property
    def head(self) -> str:
        return self.raw.partition(b"\r\n\r\n")[0].decode("latin-1")

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


async def connect(port: int, source: str = "127.0.0.1") -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def read_all(reader: asyncio.StreamReader, timeout: float) -> Answer:
    """Everything until the server closes, or what came within ``timeout``."""
    data = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        return Answer(data, closed=False)
    except ConnectionResetError:
        pass
    return Answer(data, closed=True)


async def exchange(port: int, pieces: bytes | Sequence[bytes], *, source: str = "127.0.0.1",
                   pause: float = 0.0, timeout: float = 5.0) -> Answer:
    """Send ``pieces`` (``pause`` seconds apart), then read until the server closes."""
    reader, writer = await connect(port, source)
    try:
        for piece in [pieces] if isinstance(pieces, bytes) else pieces:
            try:
                writer.write(piece)
                await writer.drain()
            except ConnectionError:
                break
            if pause:
                await asyncio.sleep(pause)
        return await read_all(reader, timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def served(scenario: Callable[[int, Responder], Awaitable[T]], *,
           limits: Limits | None = None,
           tokens: dict[str, tuple[str, str]] | None = None, demand: bool = False) -> T:
    """Run ``scenario(port, responder)`` against a started responder on 127.0.0.1
    (``demand``: its caps follow the number of tokens, as ``run``'s responder's do)."""
    table = {TOKEN: (NAME, KEY_AUTH)} if tokens is None else tokens

    async def main() -> T:
        responder = Responder("127.0.0.1", 0, table.get, limits,
                              demand=table.__len__ if demand else None)
        await responder.start()
        try:
            return await scenario(responder.sockets[0][1], responder)
        finally:
            await responder.stop()

    return asyncio.run(main())


def ask(pieces: bytes | Sequence[bytes], **kwargs: object) -> Answer:
    """One exchange with a fresh responder holding TOKEN for NAME."""
    async def scenario(port: int, _: Responder) -> Answer:
        return await exchange(port, pieces)

    return served(scenario, **kwargs)  # type: ignore[arg-type]


def log_lines(caplog: pytest.LogCaptureFixture, prefix: str = "http-01 ") -> list[str]:
    """The responder's log lines, each checked to be one printable line."""
    lines = [r.getMessage() for r in caplog.records
             if r.name == LOGGER and r.getMessage().startswith(prefix)]
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()  # never a traceback
    for line in lines:
        assert line.isprintable(), repr(line)   # no newline, no escape sequence
        assert len(line) < 600
    return lines


def capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
