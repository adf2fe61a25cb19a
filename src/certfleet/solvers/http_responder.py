"""The http-01 responder: a small HTTP/1.x server on the event loop's own sockets, built to
hold against hostile clients while the CA's validation requests still get their answer.

Touches the listening sockets for ``host:port`` and the connections it accepts; reads
tokens only through the ``lookup`` it is given; logs. Used in-process by
``HttpServerSolver`` (``run --http-listen``) and by ``certfleet serve``.

Accepting is done here, not by ``asyncio.start_server``: each accepted socket is counted
in the ``http_limits.ConnectionTable`` before anything else happens to it, and one over a
cap is closed (with a reset) before the next accept, so the descriptor budget holds even
under a connection flood (the limits, and why each is what it is, are in ``http_limits``).

One request per connection. The request line and header fields are read (at most
``max_head`` bytes, 8 KiB, within the head's deadline and the idle timeout) and parsed
strictly by ``http_head``; the answer (200 with the key authorization, 400, 404 or 431;
503 when the lookup cannot be made: the shared store's database did not answer)
always carries ``Connection: close``; then the server closes its sending side and, before
closing the socket, discards at most 64 KiB for at most 2 s of whatever the client still
sends, unparsed, so that the answer is not destroyed by a TCP reset for unread bytes.
Nothing after the head is ever parsed; a request announcing a body is refused (400)
without reading it. Only ``GET /.well-known/acme-challenge/<token>`` for a presented token
(that target exactly: no query, nothing percent-decoded, no absolute-form) and the exact
Host of its name gets 200; HEAD is not GET (the CA only sends GET, RFC 8555
§8.3): it gets 404, without a body. Every request is one log line (client address,
X-Forwarded-For, Host, token, status; a refused one its reason), each outside value
through ``safe_text``; nothing ends in a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Callable

from ..errors import ChallengeError, StoreError, safe_text
from ..protocol.challenges import HTTP_01_PREFIX
from ..protocol.messages import token_is_safe
from .http_head import BadRequest, Head, early_fault, head_end, host_matches, parse_head, text_of
from .http_limits import Conn, ConnectionTable, Limits, descriptor_budget

log = logging.getLogger(__name__)

__all__ = ["Limits", "Lookup", "Responder"]
Lookup = Callable[[str], "tuple[str, str] | None"]  # token -> (name, key authorization)
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_BODIES = {400: b"bad request\n", 404: b"not found\n", 431: b"request head too large\n",
           503: b"tokens unavailable\n"}
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_RESET = struct.pack("ii", 1, 0)    # SO_LINGER on, 0 s: close() sends a reset


class Responder:
    """The listener: answers validation requests from ``lookup`` within ``limits``."""

    def __init__(self, host: str, port: int, lookup: Lookup,
                 limits: Limits | None = None, demand: Callable[[], int] | None = None,
                 *, blocking: bool = False) -> None:
        """``demand``: how many tokens are presented now (the caps grow with it).
        ``blocking``: ``lookup`` waits on something slow (the shared store's database), so
        it runs in a worker thread, and a slow answer holds up only its own request."""
        self.host, self.port, self.lookup, self.demand = host, port, lookup, demand
        self.blocking = blocking
        self.limits = limits or Limits()
        self._table = ConnectionTable(self.limits, descriptor_budget(self.limits), demand)
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def capacity(self) -> int:
        return self._table.capacity

    @property
    def open_connections(self) -> int:
        return self._table.open

    @property
    def sockets(self) -> list[tuple[str, int]]:
        """The addresses listened on (the port is known here when 0 was asked for)."""
        return [sock.getsockname()[:2] for sock in self._listeners]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._table = ConnectionTable(self.limits, descriptor_budget(self.limits),
                                      self.demand)
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                           flags=socket.AI_PASSIVE)
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                self._listeners.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(self.limits.backlog)
                sock.setblocking(False)
        except OSError as exc:
            self._close_listeners()
            raise ChallengeError(f"cannot listen on {self.host}:{self.port}: "
                                 f"{exc.strerror or exc}") from exc
        for sock in self._listeners:
            loop.add_reader(sock.fileno(), self._accept, sock)

    def _close_listeners(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._listeners:
            if sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
            sock.close()
        self._listeners = []

    async def stop(self) -> None:
        """Stop listening, close every connection (their handlers see the end and return)."""
        if not self._listeners:
            return
        self._close_listeners()
        for conn in self._table.all():
            if conn.transport is not None:
                conn.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        self._table.report()

    def _accept(self, listener: socket.socket) -> None:
        """Accept what is waiting (at most one batch), each checked against the caps at once."""
        loop = asyncio.get_running_loop()
        for _ in range(self.limits.backlog):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._table.count("not accepted for lack of descriptors (paused 1 s)")
                    loop.remove_reader(listener.fileno())
                    loop.call_later(1.0, self._resume, listener)
                    return
                continue  # ECONNABORTED and the like: that client is gone
            address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
            conn = self._table.admit(address, loop.time())
            if conn is None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.close()
                continue
            task = loop.create_task(self._connected(conn, sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _resume(self, listener: socket.socket) -> None:
        if listener in self._listeners and listener.fileno() >= 0:
            asyncio.get_running_loop().add_reader(listener.fileno(), self._accept, listener)

    async def _connected(self, conn: Conn, sock: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=sock,
                                                           limit=self.limits.max_head)
        except OSError:
            self._table.forget(conn)
            sock.close()
            return
        conn.transport = writer.transport
        if not self._listeners:       # stopped meanwhile
            writer.transport.abort()
        self._table.idle(conn)
        try:
            await self._serve(conn, reader, writer)
        except OSError:
            pass  # the client went away (reset, broken pipe)
        except Exception as exc:  # one line in the log, never a traceback
            log.warning("http-01 connection from %s failed: %s", safe_text(conn.address, 60),
                        safe_text(f"{type(exc).__name__}: {exc}", 200))
        finally:
            self._table.forget(conn)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _serve(self, conn: Conn, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        limits, loop = self.limits, asyncio.get_running_loop()
        deadline = loop.time() + limits.header_timeout
        buffer, end, checked, line_done = b"", None, 0, False
        while end is None:
            fault = None if line_done else early_fault(buffer, checked)
            line_done = b"\n" in buffer
            checked = len(buffer)
            if fault is not None or len(buffer) > limits.max_head:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._table.count("without a complete head in time, closed")
                return
            try:
                chunk = await asyncio.wait_for(
                    reader.read(limits.max_head + 1 - len(buffer)),
                    min(limits.idle_timeout, remaining))
            except TimeoutError:
                self._table.count("without a complete head in time, closed")
                return
            if not chunk:
                return  # closed by the client (or dropped) before a complete head
            buffer += chunk
            end = head_end(buffer, checked)
        self._table.busy(conn)
        head: Head | None = None
        try:
            if fault is not None:
                raise BadRequest(fault)
            if end is None:
                raise BadRequest(f"request head over {limits.max_head} bytes", 431)
            head = parse_head(buffer[:end], limits.max_head)
            status, body = self._answer(conn, head, await self._entry(head))
        except StoreError as exc:
            # Not "no such token": the CA's error then names 503, and this log says why.
            log.warning("http-01 request from %s: %s -> 503", self._client(conn, head),
                        safe_text(str(exc), 200))
            status, body = 503, _BODIES[503]
        except BadRequest as bad:
            log.info("http-01 request from %s: refused: %s -> %d",
                     self._client(conn, head), safe_text(bad.reason, 160), bad.status)
            status, body = bad.status, _BODIES[bad.status]
        await self._respond(conn, reader, writer, status, body,
                            with_body=head is None or head.method != "HEAD")

    async def _entry(self, head: Head) -> tuple[str, str] | None:
        """What was presented for the token a GET asks for; None for anything else."""
        token = _token(head.target)
        if head.method != "GET" or not token_is_safe(token):
            return None
        if self.blocking:
            return await asyncio.to_thread(self.lookup, token)
        return self.lookup(token)

    def _answer(self, conn: Conn, head: Head,
                entry: tuple[str, str] | None) -> tuple[int, bytes]:
        target = head.target
        token = _token(target)
        host = head.host
        ok = entry is not None and host is not None and host_matches(host, entry[0])
        status = 200 if ok else 404
        log.info("http-01 request from %s: %sHost %s, token %s -> %d",
                 self._client(conn, head),
                 "" if head.method == "GET" else f"{safe_text(head.method, 20)} ",
                 "(none)" if host is None else _shown(host, 80),
                 _shown(token or target, 120), status)
        if entry is None or not ok:
            return status, _BODIES[404]
        return status, entry[1].encode()

    @staticmethod
    def _client(conn: Conn, head: Head | None) -> str:
        forwarded = ", ".join(head.get_all("x-forwarded-for")) if head else ""
        shown = safe_text(conn.address, 60)
        return f"{shown} (for {_shown(forwarded, 60)})" if forwarded else shown

    async def _respond(self, conn: Conn, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, status: int, body: bytes, *,
                       with_body: bool) -> None:
        limits = self.limits
        writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                     "Content-Type: text/plain\r\n"
                     f"Content-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + (body if with_body else b""))
        await asyncio.wait_for(writer.drain(), limits.write_timeout)
        if writer.can_write_eof():
            writer.write_eof()
        self._table.idle(conn)
        discarded = 0
        try:
            async with asyncio.timeout(limits.linger):
                while discarded < limits.linger_bytes:
                    chunk = await reader.read(4096)
                    if not chunk:
                        break
                    discarded += len(chunk)
        except TimeoutError:
            pass
        writer.close()


def _shown(value: str, limit: int) -> str:
    """A header value (latin-1 from the parser) as text fit for a log line."""
    return safe_text(text_of(value.encode("latin-1", "replace")), limit)


def _token(target: str) -> str:
    return target.removeprefix(HTTP_01_PREFIX) if target.startswith(HTTP_01_PREFIX) else ""
