"""HTTP/1.1 over asyncio streams: certfleet's one HTTP client.

Touches the network only. Connections are kept alive and reused per origin (scheme, host,
port), at most ``limit`` open at once; every exchange is bounded by ``timeout`` seconds of
the event loop's attention (``_Attention``), connecting by ``connect_timeout``; a body is
read completely but never beyond ``max_body`` (its declared length is refused at once);
TLS is always verified against the context the pool is given a way to make (asked for at
each https connection; a pool without one speaks plain http only). The messages' bytes
(heads, chunked bodies, keep-alive, header limits) are ``http_framing``'s.

A request on a kept-alive connection that the server had closed meanwhile is sent once
more on a new one, when not a byte of an answer had come back (as urllib3 does): the
server never saw it (and an ACME POST sent twice is refused by its nonce).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, SupportsIndex
from urllib.parse import SplitResult, urlsplit

from . import http_framing
from .http_framing import MAX_HEAD, FramingError
from .protocol.frozen import frozen

TICK = 0.25               # seconds: how often the attention clock of a pool advances
Origin = tuple[str, str, int]


class HttpError(Exception):
    """The exchange failed below HTTP's answer: connect, TLS, timeout, framing, size."""


@frozen
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]   # lower-case names, in order, repeats kept
    body: bytes
    # Seconds from the request written on an open connection to the first of the answer
    # arriving: neither the wait for a connection and connecting (TCP, TLS), which are the
    # pool's, nor the event loop's delay in reading it, which is this process's.
    round_trip: float = 0.0

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), if any."""
        return next((v for k, v in self.headers if k == name), None)

    def all(self, name: str) -> list[str]:
        """Every value of header ``name`` (lower case), in order."""
        return [v for k, v in self.headers if k == name]


def origin_of(url: str) -> tuple[Origin, str]:
    """(scheme, host, port) and the request target (path and query) of ``url``."""
    parts = _split(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.port == 0:
        raise HttpError(f"not an http(s) URL: {url[:200]!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target


def _split(url: str) -> SplitResult | None:
    """``url`` split, or None when it cannot be: a port beyond 65535 or a broken IPv6 host
    (``urlsplit`` and ``port`` raise ValueError)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - checked here, read again by the caller
    except ValueError:
        return None
    return parts


def host_field(origin: Origin) -> str:
    """The ``Host`` field for ``origin``: the port only if not the scheme's default, an
    IPv6 address in brackets."""
    scheme, host, port = origin
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"


class _Reader(asyncio.StreamReader):
    """A stream reader that notes when bytes first arrive after ``arrived`` is cleared
    (when the transport handed them over, not when a busy event loop ran the task reading),
    and how many it holds unread: bytes beyond an answer, or sent by the server between
    exchanges, are no answer to the next request."""

    arrived: float | None = None
    fed = taken = 0

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:  # bytes, from the protocol
        if self.arrived is None and data:
            self.arrived = time.monotonic()
        self.fed += len(data)  # type: ignore[arg-type]  # bytes
        super().feed_data(data)

    async def readuntil(self, separator: Any = b"\n") -> bytes:  # typeshed: a buffer protocol
        return self._took(await super().readuntil(separator))

    async def readexactly(self, n: int) -> bytes:
        return self._took(await super().readexactly(n))

    async def read(self, n: int = -1) -> bytes:
        return self._took(await super().read(n))

    def _took(self, data: bytes) -> bytes:
        self.taken += len(data)
        return data

    @property
    def unread(self) -> int:
        return self.fed - self.taken


class _Connection:
    reusable = False   # the last answer left the connection fit for another exchange

    def __init__(self, reader: _Reader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @property
    def answered(self) -> bool:
        """A byte of the current answer has arrived."""
        return self.reader.arrived is not None

    async def exchange(self, method: str, message: bytes, max_body: int) -> Reply:
        """Sends ``message``, a request of ``method``, and reads its answer."""
        self.reader.arrived = None
        sent = time.monotonic()
        self.writer.write(message)
        await self.writer.drain()
        answer = await http_framing.read_response(self.reader, method, max_body)
        self.reusable = answer.keep_alive and not self.reader.unread
        arrived = self.reader.arrived or time.monotonic()
        return Reply(answer.head.status, answer.head.headers, answer.body, arrived - sent)

    def close(self) -> None:
        self.writer.transport.abort()


class _Attention:
    """Bounds on exchanges, counted in time the event loop was free to read their answers.

    The time an exchange takes is the server's and the loop's: a loop held up by the run's
    own work (hundreds of orders checking and storing certificates on a loaded core) leaves
    answers unread in the sockets, and a wall-clock bound would then blame the server for
    answers that arrived long before. So the clock advances by ``TICK`` at each reading, a
    reading that runs late included: whatever held the loop up was not the server's time.
    One timer per pool, running only while an exchange is bounded."""

    def __init__(self) -> None:
        self.clock = 0.0
        self._ends: dict[asyncio.Timeout, float] = {}   # each bound: the clock at its end
        self._timer: asyncio.TimerHandle | None = None

    @contextlib.asynccontextmanager
    async def bounded(self, seconds: float) -> AsyncIterator[None]:
        """Raises ``TimeoutError`` once the body has had ``seconds`` of attention."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as bound:
            self._ends[bound] = self.clock + seconds
            if self._timer is None:
                self._timer = loop.call_later(TICK, self._tick, loop)
            try:
                yield
            finally:
                del self._ends[bound]
                if not self._ends and self._timer is not None:
                    self._timer.cancel()
                    self._timer = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.clock += TICK
        for bound, end in self._ends.items():
            if end <= self.clock and bound.when() is None:
                bound.reschedule(loop.time())   # ends it: the task sees TimeoutError
        self._timer = loop.call_later(TICK, self._tick, loop)


class Pool:
    """Kept-alive connections for one client; ``async with`` closes them all."""

    def __init__(self, *, context: Callable[[], ssl.SSLContext] | None, limit: int,
                 timeout: float, connect_timeout: float, max_body: int,
                 user_agent: str) -> None:
        self.context, self.timeout, self.connect_timeout = context, timeout, connect_timeout
        self.max_body, self.user_agent = max_body, user_agent
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[Origin, list[_Connection]] = {}
        self._attention = _Attention()

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                      body: bytes | None = None) -> Reply:
        """One exchange; a ``Host`` in ``headers`` replaces the one taken from ``url``."""
        origin, target = origin_of(url)
        given = {k.lower(): v for k, v in (headers or {}).items()}
        lines = [("host", given.pop("host", "") or host_field(origin)),
                 ("user-agent", self.user_agent), *given.items()]
        try:
            message = http_framing.request(method, target, lines, body)
        except FramingError as exc:
            raise HttpError(str(exc)) from None
        async with self._slots:
            try:
                async with self._attention.bounded(self.timeout):
                    return await self._exchange(origin, method, message)
            except TimeoutError:
                raise HttpError("timed out") from None

    async def _exchange(self, origin: Origin, method: str, message: bytes) -> Reply:
        for fresh in (False, True):   # a kept-alive connection if there is one, then a new one
            conn = None if fresh else self._take(origin)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin)
            try:
                reply = await conn.exchange(method, message, self.max_body)
            # Any OSError: a reset, a TLS record that fails to decrypt (ssl.SSLError), a
            # route lost mid-read. The bound's expiry arrives here as a cancellation.
            except (OSError, FramingError) as exc:
                conn.close()
                if reused and not conn.answered:
                    continue  # a kept-alive connection the server had dropped: not seen
                raise HttpError(_describe(exc)) from None
            except BaseException:
                conn.close()
                raise
            if conn.reusable:
                self._idle.setdefault(origin, []).append(conn)
            else:
                conn.close()
            return reply
        raise AssertionError  # unreachable: a new connection is never tried again

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            # Closed by the server meanwhile, or holding bytes it sent while idle (a 408
            # before it hung up): such bytes would be read as the next request's answer.
            if not conn.writer.transport.is_closing() and not conn.reader.at_eof() \
                    and not conn.reader.unread:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        if scheme == "https" and self.context is None:
            raise HttpError("https is not allowed here")
        context = self.context() if scheme == "https" and self.context else None
        try:
            async with self._attention.bounded(self.connect_timeout):
                # With TLS, the certificate is checked against ``host`` (asyncio's default
                # server_hostname).
                reader, writer = await _open(host, port, context)
        except TimeoutError:
            raise HttpError("timed out connecting") from None
        except ssl.SSLCertVerificationError as exc:
            raise HttpError(f"TLS certificate not trusted: {exc.verify_message}") from None
        except (OSError, ssl.SSLError) as exc:
            raise HttpError(f"cannot connect: {_connect_failure(exc)}") from None
        return _Connection(reader, writer)


async def _open(host: str, port: int,
                context: ssl.SSLContext | None) -> tuple[_Reader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` with a reader that notes when each answer arrives."""
    loop = asyncio.get_running_loop()
    reader = _Reader(limit=MAX_HEAD)   # the longest line a response's head may have
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.create_connection(lambda: protocol, host, port, ssl=context)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def _connect_failure(exc: OSError) -> str:
    """Why a connection failed. asyncio words a refused one "Connect call failed
    ('192.0.2.1', 80)", which does not say what happened; the system's text for its error
    number does. A failed name look-up or TLS handshake keeps its own text (their numbers
    are not the system's error numbers)."""
    number = exc.errno or 0
    if not isinstance(exc, ssl.SSLError | socket.gaierror) and number > 0:
        return os.strerror(number)
    return _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
