"""certfleet's HTTP client against real sockets: keep-alive reuse, a dropped kept-alive
connection, size limits, framing, timeouts and the Host header."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import pytest

from certfleet.http11 import HttpError, Pool, origin_of

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _pool(**overrides: object) -> Pool:
    options: dict[str, object] = {"context": None, "limit": 4, "timeout": 5.0,
                                  "connect_timeout": 5.0, "max_body": 1024, "user_agent": "t/1"}
    options.update(overrides)
    return Pool(**options)  # type: ignore[arg-type]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


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

    async def scenario() -> list[int]:
        server, base = await _serve(handler)
        async with server, _pool() as pool:
            return [(await pool.request("GET", f"{base}/{i}")).status for i in range(5)]

    assert asyncio.run(scenario()) == [200] * 5
    assert len(accepted) == 1
    assert all(b"user-agent: t/1" in h.lower() for h in heads)


def test_a_dropped_kept_alive_connection_is_retried_once_on_a_new_one() -> None:
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await _read_head(reader)
        writer.write(_answer(b"one"))
        await writer.drain()
        # Close after one answer without saying so, as a server timing out an idle
        # connection does: the client's next request on it finds a dead socket.
        writer.close()

    async def scenario() -> list[bytes]:
        server, base = await _serve(handler)
        async with server, _pool() as pool:
            first = await pool.request("GET", f"{base}/a")
            await asyncio.sleep(0.05)
            second = await pool.request("GET", f"{base}/b")
            return [first.body, second.body]

    assert asyncio.run(scenario()) == [b"one", b"one"]
    assert len(accepted) == 2


def test_a_new_connection_that_dies_is_not_retried() -> None:
    accepted: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await _read_head(reader)
        writer.transport.abort()

    async def scenario() -> None:
        server, base = await _serve(handler)
        async with server, _pool() as pool:
            await pool.request("POST", f"{base}/new-order", body=b"{}")

    with pytest.raises(HttpError):
        asyncio.run(scenario())
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

    async def scenario() -> None:
        server, base = await _serve(handler)
        async with server, _pool() as pool:
            await pool.request("GET", f"{base}/big")

    with pytest.raises(HttpError, match="exceeds 1024"):
        asyncio.run(scenario())


def test_chunked_bodies_and_repeated_headers_are_read() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 201 Created\r\nLink: <a>;rel=up\r\nLink: <b>;rel=up\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await writer.drain()

    async def scenario() -> tuple[int, bytes, list[str]]:
        server, base = await _serve(handler)
        async with server, _pool() as pool:
            reply = await pool.request("GET", f"{base}/")
            return reply.status, reply.body, reply.all("link")

    assert asyncio.run(scenario()) == (201, b"abcde", ["<a>;rel=up", "<b>;rel=up"])


def test_a_silent_server_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def scenario() -> None:
        server, base = await _serve(handler)
        async with server, _pool(timeout=0.3) as pool:
            await pool.request("GET", f"{base}/")

    with pytest.raises(HttpError, match="timed out"):
        asyncio.run(scenario())


def test_garbage_instead_of_http_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        server, base = await _serve(handler)
        async with server, _pool() as pool:
            await pool.request("GET", f"{base}/")

    with pytest.raises(HttpError):
        asyncio.run(scenario())


def test_the_host_header_can_name_another_site() -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await _read_head(reader))
        writer.write(_answer(b""))
        await writer.drain()

    async def scenario() -> None:
        server, base = await _serve(handler)
        async with server, _pool() as pool:
            await pool.request("GET", f"{base}/x", {"Host": "www.example.org"})

    asyncio.run(scenario())
    lines = heads[0].lower().split(b"\r\n")
    assert lines.count(b"host: www.example.org") == 1
    assert not any(line.startswith(b"host: 127.0.0.1") for line in lines)


def test_a_pool_without_tls_refuses_https() -> None:
    async def scenario() -> None:
        async with _pool() as pool:
            await pool.request("GET", "https://127.0.0.1:1/")

    with pytest.raises(HttpError, match="https is not allowed"):
        asyncio.run(scenario())


def test_nothing_listening_is_named() -> None:
    async def scenario() -> None:
        async with _pool(context=ssl.create_default_context()) as pool:
            await pool.request("GET", "http://127.0.0.1:9/")

    with pytest.raises(HttpError, match="cannot connect"):
        asyncio.run(scenario())


@pytest.mark.parametrize("url", ["ftp://x/", "http:///nohost", "file:///etc/passwd"])
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(HttpError, match="not an http"):
        origin_of(url)


def test_origin_and_target() -> None:
    assert origin_of("https://ca.test/dir?x=1") == (("https", "ca.test", 443), "/dir?x=1")
    assert origin_of("http://[::1]:8080") == (("http", "::1", 8080), "/")
