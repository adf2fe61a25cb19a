"""certfleet's HTTP client against real sockets: keep-alive reuse, a dropped kept-alive
connection, size limits, framing, timeouts and the Host header."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from certfleet import http11
from certfleet.http11 import (
    TICK,
    HttpError,
    Pool,
    Reply,
    _Attention,
    _connect_failure,
    _describe,
    host_field,
    origin_of,
)
from certfleet.http_framing import MAX_HEAD, MAX_HEADERS

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
T = TypeVar("T")


def _pool(**overrides: object) -> Pool:
    options: dict[str, object] = {"context": None, "limit": 4, "timeout": 5.0,
                                  "connect_timeout": 5.0, "max_body": 1024, "user_agent": "t/1"}
    options.update(overrides)
    return Pool(**options)  # type: ignore[arg-type]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def _against(handler: Handler, use: Callable[[Pool, str], Awaitable[T]],
             **pool_options: object) -> T:
    """``use(pool, base URL)`` against a local server answering with ``handler``."""
    async def scenario() -> T:
        server, base = await _serve(handler)
        async with server, _pool(**pool_options) as pool:
            return await use(pool, base)
    return asyncio.run(scenario())


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _answer(body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            + extra + b"\r\n" + body)


def test_keep_alive_reuses_one_connection() -> None:
    accepted: list[int] = []
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        while True:
            try:
                head = await _read_head(reader)
            except asyncio.IncompleteReadError:
                break
            heads.append(head)
            writer.write(_answer(b"hello"))
            await writer.drain()
        writer.close()

    async def use(pool: Pool, base: str) -> list[int]:
        return [(await pool.request("GET", f"{base}/{i}")).status for i in range(5)]

    assert _against(handler, use) == [200] * 5
    assert len(accepted) == 1
    assert [h.split(b"\r\n")[0] for h in heads] == [b"GET /%d HTTP/1.1" % i for i in range(5)]
    assert all(b"user-agent: t/1" in h.lower() for h in heads)


def test_the_round_trip_is_the_answer_s_not_the_wait_for_a_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One connection, two requests at once, each answered 0.2 s after it is read, and
    connecting takes 0.3 s: each reply's round trip is its own 0.2 s, not the second's wait
    for the first, nor the connecting."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                await _read_head(reader)
                await asyncio.sleep(0.2)
                writer.write(_answer(b"ok"))
                await writer.drain()
        writer.close()

    connect = Pool._connect

    async def slow_connect(pool: Pool, origin: tuple[str, str, int]) -> object:
        await asyncio.sleep(0.3)
        return await connect(pool, origin)

    monkeypatch.setattr(Pool, "_connect", slow_connect)

    async def use(pool: Pool, base: str) -> list[float]:
        replies = await asyncio.gather(*(pool.request("GET", f"{base}/{i}") for i in range(2)))
        return [reply.round_trip for reply in replies]

    assert all(0.2 <= trip < 0.3 for trip in _against(handler, use, limit=1))


def test_the_round_trip_ends_when_the_answer_arrives_not_when_a_busy_loop_reads_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer is sent at once, but the event loop is held 0.25 s between its bytes
    arriving and the request's task reading them (other work queued first, as a run's other
    certificates): the round trip is the CA's, the hold is this process's."""
    feed = http11._Reader.feed_data

    def held(reader: http11._Reader, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(time.sleep, 0.25)  # before the reader wakes
        feed(reader, data)

    monkeypatch.setattr(http11._Reader, "feed_data", held)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(_answer(b"ok"))
        await writer.drain()

    async def use(pool: Pool, base: str) -> tuple[float, float]:
        start = time.monotonic()
        reply = await pool.request("GET", f"{base}/")
        return reply.round_trip, time.monotonic() - start

    trip, took = _against(handler, use)
    assert took >= 0.25
    assert trip < 0.1


def test_the_round_trip_ends_with_the_first_of_the_answer() -> None:
    """The head (with the nonce a client waits for) comes at once, the body 0.3 s later:
    the round trip is the head's."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        answer = _answer(b"ok")
        writer.write(answer[:-2])
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(answer[-2:])
        await writer.drain()

    async def use(pool: Pool, base: str) -> tuple[float, bytes, float]:
        start = time.monotonic()
        reply = await pool.request("GET", f"{base}/")
        return reply.round_trip, reply.body, time.monotonic() - start

    trip, body, took = _against(handler, use)
    assert body == b"ok"
    assert took >= 0.3
    assert trip < 0.2


@pytest.mark.parametrize("dropped", ["idle", "asked"])
def test_a_dropped_kept_alive_connection_is_retried_once_on_a_new_one(dropped: str) -> None:
    """Closed after one answer without saying so, as a server timing out an idle connection
    does: while idle (the pool sees the end of the stream and connects anew), or as the next
    request arrives (the request is sent again on a new connection)."""
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await _read_head(reader)
        writer.write(_answer(b"one"))
        await writer.drain()
        if dropped == "asked":
            with contextlib.suppress(asyncio.IncompleteReadError):
                await _read_head(reader)
        writer.close()

    async def use(pool: Pool, base: str) -> list[bytes]:
        first = await pool.request("GET", f"{base}/a")
        await asyncio.sleep(0.05)
        second = await pool.request("GET", f"{base}/b")
        return [first.body, second.body]

    assert _against(handler, use) == [b"one", b"one"]
    assert len(accepted) == 2


@pytest.mark.parametrize("extra", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED",    # sent with the answer
    b"",                                                            # nothing extra
])
def test_bytes_beyond_an_answer_are_never_the_next_answer(extra: bytes) -> None:
    """A server that sends more than the answer (a second answer, ahead of the request it
    would answer) leaves the connection unfit: the next request goes on a new one and gets
    its own answer."""
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                head = await _read_head(reader)
                writer.write(_answer(head.split(b" ")[1]) + extra)
                await writer.drain()
        writer.close()

    async def use(pool: Pool, base: str) -> list[bytes]:
        return [(await pool.request("GET", f"{base}/r{i}")).body for i in range(3)]

    assert _against(handler, use) == [b"/r0", b"/r1", b"/r2"]
    assert len(accepted) == (3 if extra else 1)


def test_an_answer_that_closes_the_connection_ends_it() -> None:
    """``Connection: close``: the next request goes on a new connection, even when the
    server leaves this one open (and would never read from it again)."""
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await _read_head(reader)
        writer.write(_answer(b"%d" % len(accepted), b"Connection: close\r\n"))
        await writer.drain()
        await asyncio.sleep(10)

    async def use(pool: Pool, base: str) -> list[bytes]:
        return [(await pool.request("GET", f"{base}/{i}")).body for i in range(2)]

    assert _against(handler, use, timeout=2.0) == [b"1", b"2"]


def test_what_an_idle_connection_received_is_not_the_next_answer() -> None:
    """A server that times out an idle connection with a 408 and hangs up: the next request
    goes on a new connection, and its answer is its own."""
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        head = await _read_head(reader)
        writer.write(_answer(head.split(b" ")[1]))
        await writer.drain()
        if len(accepted) == 1:
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                         b"Content-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    async def use(pool: Pool, base: str) -> list[tuple[int, bytes]]:
        first = await pool.request("GET", f"{base}/a")
        await asyncio.sleep(0.2)
        second = await pool.request("GET", f"{base}/b")
        return [(first.status, first.body), (second.status, second.body)]

    assert _against(handler, use) == [(200, b"/a"), (200, b"/b")]
    assert len(accepted) == 2


@pytest.mark.parametrize("error", [
    ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed"),
    OSError(errno.EHOSTUNREACH, os.strerror(errno.EHOSTUNREACH)),
])
def test_any_system_error_in_an_exchange_is_an_http_error(
        error: OSError, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only a reset: a TLS record that does not decrypt, a route lost mid-answer."""
    async def failing(*args: object) -> object:
        raise error

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.close()

    async def use(pool: Pool, base: str) -> None:
        await pool.request("GET", f"{base}/")

    monkeypatch.setattr(http11.http_framing, "read_response", failing)
    with pytest.raises(HttpError) as caught:
        _against(handler, use)
    assert str(caught.value) == _describe(error)


@pytest.mark.parametrize("dropped", ["idle", "asked"])
def test_the_retry_goes_on_a_new_connection_when_every_kept_one_was_dropped(
        dropped: str) -> None:
    """Two connections kept alive, both closed by the server (after an idle timeout, or as
    the next request arrives): the request is sent again on a new connection, not on the
    other dead one."""
    accepted: list[int] = []
    both = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await _read_head(reader)
        if len(accepted) <= 2:
            if len(accepted) == 2:
                both.set()
            await both.wait()           # two requests at once: two connections
        writer.write(_answer(b"%d" % len(accepted)))
        await writer.drain()
        if len(accepted) <= 2:
            if dropped == "asked":
                with contextlib.suppress(asyncio.IncompleteReadError):
                    await _read_head(reader)
            writer.close()              # then dropped, unannounced

    async def use(pool: Pool, base: str) -> bytes:
        await asyncio.gather(pool.request("GET", f"{base}/a"), pool.request("GET", f"{base}/b"))
        await asyncio.sleep(0.05)
        return (await pool.request("GET", f"{base}/c")).body

    assert _against(handler, use) == b"3"
    assert len(accepted) == 3


def test_a_kept_alive_connection_that_dies_mid_answer_is_not_retried() -> None:
    """Part of an answer came back: the server saw the request, so it is not sent again
    (even though a new connection would answer it)."""
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await _read_head(reader)
        writer.write(_answer(b"one"))
        await writer.drain()
        if len(accepted) == 1:
            await _read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
        writer.close()

    async def use(pool: Pool, base: str) -> None:
        await pool.request("GET", f"{base}/a")
        await pool.request("POST", f"{base}/b", body=b"{}")

    with pytest.raises(HttpError, match=r"closed 7 bytes short of the body$"):
        _against(handler, use)
    assert len(accepted) == 1


def test_a_new_connection_that_dies_is_not_retried() -> None:
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await _read_head(reader)
        writer.transport.abort()

    async def use(pool: Pool, base: str) -> None:
        await pool.request("POST", f"{base}/new-order", body=b"{}")

    with pytest.raises(HttpError):
        _against(handler, use)
    assert len(accepted) == 1


@pytest.mark.parametrize("answer", [
    _answer(b"x" * 2000),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 5000,
], ids=["declared", "chunked", "until-close"])
def test_a_body_beyond_the_limit_is_refused(answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def use(pool: Pool, base: str) -> None:
        await pool.request("GET", f"{base}/big")

    with pytest.raises(HttpError, match="exceeds 1024"):
        _against(handler, use)


def test_chunked_bodies_and_repeated_headers_are_read() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 201 Created\r\nLink: <a>;rel=up\r\nLink: <b>;rel=up\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await writer.drain()

    async def use(pool: Pool, base: str) -> tuple[int, bytes, list[str]]:
        reply = await pool.request("GET", f"{base}/")
        return reply.status, reply.body, reply.all("link")

    assert _against(handler, use) == (201, b"abcde", ["<a>;rel=up", "<b>;rel=up"])


def test_a_silent_server_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def use(pool: Pool, base: str) -> None:
        await pool.request("GET", f"{base}/")

    with pytest.raises(HttpError, match="timed out"):
        _against(handler, use, timeout=0.3)


def test_a_trickling_answer_times_out() -> None:
    """The bound is on the whole exchange: a byte now and then does not extend it."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(600):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    async def use(pool: Pool, base: str) -> None:
        await pool.request("GET", f"{base}/")

    with pytest.raises(HttpError, match=r"^timed out$"):
        _against(handler, use, timeout=0.5)


def test_a_loop_held_up_by_its_own_work_is_not_a_silent_server() -> None:
    """The server answers at once, but the client's event loop is held up (here blocked on
    purpose, as a run's own work holds it up under load) for longer than the bound: the
    answer waiting in the socket is read, not taken for a timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer() -> None:   # in a thread: the blocked loop cannot hold it up
            conn, _ = listener.accept()
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(4096)
                time.sleep(0.1)  # the answer arrives while the loop is held up
                conn.sendall(_answer(b"here"))
                conn.recv(1)     # until the client closes

        server = threading.Thread(target=answer, daemon=True)
        server.start()

        async def scenario() -> bytes:
            async with _pool(timeout=0.5, connect_timeout=0.5) as pool:
                asyncio.get_running_loop().call_later(0.05, time.sleep, 1.5)  # held up
                reply = await pool.request(
                    "GET", f"http://127.0.0.1:{listener.getsockname()[1]}/")
                return reply.body

        assert asyncio.run(scenario()) == b"here"
        server.join(10)


def test_a_bound_ends_at_the_tick_that_reaches_it() -> None:
    """Two ticks of attention end a bound of two ticks; one does not. The ticks are given
    by hand (the pool's own timer stopped), so a loaded machine changes nothing."""
    async def scenario() -> None:
        attention, loop = _Attention(), asyncio.get_running_loop()
        inside = asyncio.Event()

        async def bounded() -> None:
            async with attention.bounded(2 * TICK):
                inside.set()
                await asyncio.sleep(3600)

        def tick() -> None:
            assert attention._timer is not None
            attention._timer.cancel()
            attention._tick(loop)

        task = asyncio.create_task(bounded())
        await inside.wait()
        tick()
        await asyncio.sleep(0.01)
        assert not task.done()
        tick()
        await asyncio.sleep(0.01)
        assert task.done()
        assert isinstance(task.exception(), TimeoutError)
        assert attention._timer is None     # no bound left: no timer either

    asyncio.run(scenario())


def test_garbage_instead_of_http_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    async def use(pool: Pool, base: str) -> None:
        await pool.request("GET", f"{base}/")

    with pytest.raises(HttpError, match=r"^not a valid HTTP/1\.1 answer: illegal status line"):
        _against(handler, use)


def _head_of(size: int, fields: int = 1) -> bytes:
    """A 200 answer with an empty body whose head (status line to blank line) is ``size``
    bytes, in ``fields`` header fields."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
    head += b"".join(b"X-%d: a\r\n" % i for i in range(fields - 2))
    pad = size - len(head) - len(b"X-Pad: \r\n\r\n")
    return head + b"X-Pad: " + b"a" * pad + b"\r\n\r\n"


def _answered_with(answer: bytes, pieces: int) -> int:
    """The status a pool reads from ``answer``, written in ``pieces`` parts with pauses (so
    that the client reads it in as many parts)."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        step = -(-len(answer) // pieces)
        for start in range(0, len(answer), step):
            writer.write(answer[start:start + step])
            await writer.drain()
            await asyncio.sleep(0.02)

    async def use(pool: Pool, base: str) -> int:
        return (await pool.request("GET", f"{base}/")).status

    return _against(handler, use)


@pytest.mark.parametrize("pieces", [1, 3])
def test_a_head_of_64_kib_is_read_and_one_byte_more_refused(pieces: int) -> None:
    assert len(_head_of(MAX_HEAD)) == MAX_HEAD
    assert _answered_with(_head_of(MAX_HEAD), pieces) == 200
    with pytest.raises(HttpError, match=f"^response headers exceed {MAX_HEAD} bytes$"):
        _answered_with(_head_of(MAX_HEAD + 1), pieces)


def test_at_most_256_header_fields() -> None:
    assert _answered_with(_head_of(4000, MAX_HEADERS), 1) == 200
    with pytest.raises(HttpError, match=f"^too many headers \\(more than {MAX_HEADERS}\\)$"):
        _answered_with(_head_of(4000, MAX_HEADERS + 1), 1)


@pytest.mark.parametrize(("exc", "said"), [
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
     "Connection reset by peer"),
    (ConnectionResetError("the server closed the connection"),
     "the server closed the connection"),
    (ConnectionResetError(), "ConnectionResetError"),
])
def test_how_a_failed_exchange_is_named(exc: BaseException, said: str) -> None:
    assert _describe(exc) == said


@pytest.mark.parametrize(("exc", "said"), [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('192.0.2.1', 80)"),
     os.strerror(errno.ECONNREFUSED)),
    (OSError(errno.EPERM, "blocked"), os.strerror(errno.EPERM)),     # the lowest number
    (OSError(0, "none at all"), "none at all"),                        # no system error
    (OSError("no number"), "no number"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
     "Name or service not known"),                                    # not errno's numbers
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
     "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
])
def test_how_a_failed_connection_is_named(exc: OSError, said: str) -> None:
    assert _connect_failure(exc) == said


def test_the_host_header_can_name_another_site() -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await _read_head(reader))
        writer.write(_answer(b""))
        await writer.drain()

    async def use(pool: Pool, base: str) -> None:
        await pool.request("GET", f"{base}/x", {"Host": "www.example.org"})

    _against(handler, use)
    lines = heads[0].lower().split(b"\r\n")
    assert lines.count(b"host: www.example.org") == 1
    assert not any(line.startswith(b"host: 127.0.0.1") for line in lines)


def test_a_pool_without_tls_refuses_https() -> None:
    async def scenario() -> None:
        async with _pool() as pool:
            await pool.request("GET", "https://127.0.0.1:1/")

    with pytest.raises(HttpError, match=r"^https is not allowed here$"):
        asyncio.run(scenario())


def test_a_connection_never_accepted_times_out_connecting() -> None:
    """A listener whose queue is full drops new connection attempts: only the connect
    timeout (not the exchange's) ends the wait."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)

        async def scenario() -> None:
            async with _pool(connect_timeout=0.3, timeout=30.0) as pool:
                await pool.request("GET", f"http://127.0.0.1:{port}/")

        with pytest.raises(HttpError, match=r"^timed out connecting$"):
            asyncio.run(scenario())
    finally:
        for sock in (listener, *fillers):
            sock.close()


@pytest.mark.parametrize(("origin", "field"), [
    (("https", "ca.test", 443), "ca.test"),
    (("https", "ca.test", 8443), "ca.test:8443"),
    (("https", "ca.test", 80), "ca.test:80"),
    (("http", "ca.test", 80), "ca.test"),
    (("http", "ca.test", 443), "ca.test:443"),
    (("http", "::1", 8080), "[::1]:8080"),
    (("https", "2001:db8::1", 443), "[2001:db8::1]"),
])
def test_the_host_field(origin: tuple[str, str, int], field: str) -> None:
    assert host_field(origin) == field


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_the_host_field_is_sent_unless_given(address: str) -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                heads.append(await _read_head(reader))
                writer.write(_answer(b""))
                await writer.drain()

    async def scenario() -> int:
        server = await asyncio.start_server(handler, address, 0)
        port: int = server.sockets[0].getsockname()[1]
        host = f"[{address}]" if ":" in address else address
        async with server, _pool() as pool:
            await pool.request("GET", f"http://{host}:{port}/x")
            await pool.request("GET", f"http://{host}:{port}/y", {"Host": ""})
        return port

    port = asyncio.run(scenario())
    expected = f"host: {'[::1]' if address == '::1' else address}:{port}".encode()
    assert [[line for line in head.lower().split(b"\r\n") if line.startswith(b"host:")]
            for head in heads] == [[expected], [expected]]


def test_nothing_listening_is_named() -> None:
    async def scenario() -> None:
        async with _pool(context=ssl.create_default_context) as pool:
            await pool.request("GET", "http://127.0.0.1:9/")

    with pytest.raises(HttpError, match="cannot connect"):
        asyncio.run(scenario())


@pytest.mark.parametrize("url", ["ftp://x/", "http:///nohost", "file:///etc/passwd",
                                 "http://ca.test:99999/", "http://[::1/", "http://ca.test:0/"])
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(HttpError, match="not an http"):
        origin_of(url)


def test_a_refused_url_is_quoted_up_to_200_characters() -> None:
    url = "ftp://" + "a" * 300
    with pytest.raises(HttpError) as refused:
        origin_of(url)
    assert str(refused.value) == f"not an http(s) URL: {url[:200]!r}"


def test_origin_and_target() -> None:
    assert origin_of("http://ca.test") == (("http", "ca.test", 80), "/")
    assert origin_of("https://ca.test/a/b") == (("https", "ca.test", 443), "/a/b")
    assert origin_of("https://ca.test/dir?x=1") == (("https", "ca.test", 443), "/dir?x=1")
    assert origin_of("http://[::1]:8080") == (("http", "::1", 8080), "/")


def test_a_header_is_its_first_value_and_every_value_is_kept() -> None:
    reply = Reply(200, (("link", "<a>"), ("location", "/x"), ("link", "<b>")), b"")
    assert reply.header("link") == "<a>"
    assert reply.header("location") == "/x"
    assert reply.header("retry-after") is None
    assert reply.all("link") == ["<a>", "<b>"]
