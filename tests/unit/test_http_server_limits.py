"""The http-01 responder's limits over real loopback sockets: the head's deadline
(slowloris), the idle timeout, the per-client cap (new connections closed at once), the
total cap (the oldest idle connection of the heaviest client dropped), the descriptor
budget, bodies that never end, the report of dropped connections, and stop.

Clients bind their own loopback source address (127.0.0.2, ...) so that each is a
different client for the caps; 127.0.0.1 plays the load balancer or the CA. Deadlines are
shortened through ``Limits``. A deadline is shown to have fired by what happened before it
(the connection closed while the head was still being sent) or by a wait that ends long
before any other deadline could; the only times asserted are lower bounds ("not before
the deadline"), which a loaded machine cannot break.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from certfleet.solvers.http_limits import PER_TOKEN, Limits, client_key, connection_budget
from certfleet.solvers.http_responder import Responder

from .rawhttp import (
    KEY_AUTH,
    LOGGER,
    NAME,
    TOKEN,
    Answer,
    capture,
    connect,
    exchange,
    log_lines,
    read_all,
    request,
    served,
)

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _trickle(port: int, data: bytes, every: float, source: str = "127.0.0.2",
                   timeout: float = 10.0) -> tuple[Answer, float, int]:
    """Send ``data`` one byte every ``every`` seconds until the server closes; returns what
    came back, how long the connection lasted, and how many bytes had been sent."""
    reader, writer = await connect(port, source)
    started = time.monotonic()
    sent = 0

    async def feed() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                await asyncio.sleep(every)

    feeding = asyncio.create_task(feed())
    answer = await read_all(reader, timeout)
    lasted = time.monotonic() - started
    feeding.cancel()
    writer.close()
    return answer, lasted, sent


async def _idle(port: int, source: str, count: int, opening: bytes = b"GET /") -> list[Conn]:
    """``count`` connections from ``source``, each with an incomplete head; a connection
    the server resets at once (it may do so before connect() returns) is left out."""
    conns = []
    for _ in range(count):
        try:
            reader, writer = await connect(port, source)
        except ConnectionResetError:
            continue
        writer.write(opening)
        conns.append((reader, writer))
    await asyncio.sleep(0.2)      # let the server accept and register all of them...
    for _ in range(50):           # ...in turns of the loop too, whatever the machine's load
        await asyncio.sleep(0)
    return conns


async def _closed(conn: Conn, within: float) -> bool:
    return (await read_all(conn[0], within)).closed


async def _settles_at(responder: Responder, count: int) -> bool:
    """Whether the server's count of open connections comes to ``count`` (an answered
    client's close reaches the server a moment after the client read its answer)."""
    for _ in range(200):
        if responder.open_connections == count:
            return True
        await asyncio.sleep(0.05)
    return False


def _close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.close()


def test_slowloris_is_closed_at_the_head_deadline(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    limits = Limits(header_timeout=1.0, idle_timeout=0.6, report_every=60)

    async def scenario(port: int, responder: Responder) -> None:
        # One byte every 0.2 s: never idle for 0.6 s, but the head would take 15 s.
        head = request()
        slow = asyncio.create_task(_trickle(port, head, every=0.2, timeout=60))
        await asyncio.sleep(0.3)
        # Meanwhile a validation request is answered at once.
        assert (await exchange(port, request())).status == 200
        answer, lasted, sent = await slow
        assert answer.closed
        assert answer.raw == b""
        assert sent < len(head)                 # cut off while the head was still coming
        assert lasted >= 0.9                    # at the deadline, not before
        await responder.stop()

    served(scenario, limits=limits)
    [report] = log_lines(caplog, "http-01 responder:")
    assert "1 without a complete head in time, closed" in report


@pytest.mark.parametrize("opening", [b"", b"GET /.well-known/acme-challenge/"],
                         ids=["nothing", "half a request line"])
def test_an_idle_connection_is_closed(opening: bytes) -> None:
    limits = Limits(header_timeout=30.0, idle_timeout=0.5)

    async def scenario(port: int, _: Responder) -> None:
        reader, writer = await connect(port)
        writer.write(opening)
        started = time.monotonic()
        # closed within 20 s: the idle timeout did it (the head deadline is 30 s away)
        answer = await read_all(reader, 20)
        assert answer.closed
        assert answer.raw == b""
        assert time.monotonic() - started >= 0.4           # at the idle timeout, not before
        writer.close()

    served(scenario, limits=limits)


def test_a_body_that_never_ends_gets_its_400_and_the_close() -> None:
    # Content-Length of a terabyte, then body bytes as fast as the socket takes them: the
    # answer arrives and the server closes after its bounded linger; nothing waits for the
    # body, nothing buffers it.
    async def scenario(port: int, _: Responder) -> None:
        reader, writer = await connect(port)

        async def flood() -> None:
            writer.write(request(extra=b"Content-Length: 1099511627776\r\n"))
            with contextlib.suppress(ConnectionError):
                while True:
                    writer.write(b"z" * 65536)
                    await writer.drain()

        flooding = asyncio.create_task(flood())
        answer = await read_all(reader, 10)
        flooding.cancel()
        writer.close()
        assert answer.status == 400
        assert answer.closed

    served(scenario)


def test_hundreds_of_slow_connections_do_not_stop_validation() -> None:
    limits = Limits(header_timeout=30.0, idle_timeout=30.0, max_connections=400)

    async def scenario(port: int, responder: Responder) -> None:
        conns = []
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
            conns += await _idle(port, source, 60)
        assert len(conns) == 300
        assert responder.open_connections == 300        # all held open by the server
        answer = await exchange(port, request(), timeout=5)
        assert (answer.status, answer.body) == (200, KEY_AUTH.encode())
        assert await _settles_at(responder, 300)        # nobody had to be dropped
        _close_all(conns)

    served(scenario, limits=limits)


def test_over_the_per_client_cap_new_connections_are_closed_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    limits = Limits(per_client=4, header_timeout=30.0, idle_timeout=30.0)

    async def scenario(port: int, responder: Responder) -> None:
        held = await _idle(port, "127.0.0.2", 4)
        assert len(held) == 4
        extra = await _idle(port, "127.0.0.2", 2)
        for conn in extra:                               # closed at once, unanswered
            answer = await read_all(conn[0], 10)
            assert answer.closed
            assert answer.raw == b""
        assert responder.open_connections == 4
        assert not await _closed(held[0], 0.3)           # the earlier ones are kept
        # Another client's quota is its own.
        assert (await exchange(port, request())).status == 200
        assert (await exchange(port, request(), source="127.0.0.3")).status == 200
        _close_all(held + extra)
        await responder.stop()

    served(scenario, limits=limits)
    [report] = log_lines(caplog, "http-01 responder:")
    assert "2 over the per-client cap, closed at once" in report
    assert "at most" in report
    assert "4 per client" in report


def test_the_caps_grow_with_the_tokens_being_validated() -> None:
    """Hundreds of orders in flight: the CA (or a load balancer proxying it) asks for every
    token from each perspective at once, all from one address; with 20 tokens presented a
    client may hold 20 x PER_TOKEN connections, not the 4 of an idle responder."""
    limits = Limits(per_client=4, max_connections=8, header_timeout=30.0,
                    idle_timeout=30.0)
    tokens = {TOKEN: (NAME, KEY_AUTH), **{f"t{i:040d}": (NAME, KEY_AUTH) for i in range(19)}}

    async def scenario(port: int, responder: Responder) -> None:
        assert responder.capacity == 20 * PER_TOKEN + 4
        held = await _idle(port, "127.0.0.2", 60)
        assert len(held) == 60
        assert responder.open_connections == 60
        for conn in held[:3]:
            assert not await _closed(conn, 0.1)
        assert (await exchange(port, request(), source="127.0.0.2")).status == 200
        tokens.clear()                                   # the run is done: caps shrink back
        tokens[TOKEN] = (NAME, KEY_AUTH)
        extra = await _idle(port, "127.0.0.2", 1)
        assert not extra or await _closed(extra[0], 10)  # over the per-client cap again
        _close_all(held + extra)

    served(scenario, limits=limits, tokens=tokens, demand=True)


def test_over_the_total_cap_the_oldest_idle_of_the_heaviest_client_is_dropped() -> None:
    limits = Limits(max_connections=16, per_client=12, header_timeout=30.0,
                    idle_timeout=30.0)

    async def scenario(port: int, responder: Responder) -> None:
        assert responder.capacity == 16
        light = await _idle(port, "127.0.0.3", 6)        # the oldest connections...
        heavy = await _idle(port, "127.0.0.2", 10)       # ...but this client holds more
        assert (len(light), len(heavy)) == (6, 10)
        assert responder.open_connections == 16
        answer = await exchange(port, request())
        assert answer.status == 200                      # the newcomer was admitted
        assert await _closed(heavy[0], 10)               # the heavy client's oldest went
        for conn in (heavy[1], heavy[-1], light[0], light[-1]):
            assert not await _closed(conn, 0.2)
        assert await _settles_at(responder, 15)
        _close_all(light + heavy)

    served(scenario, limits=limits)


def test_the_budget_holds_under_a_flood_from_many_addresses() -> None:
    limits = Limits(max_connections=32, per_client=8, header_timeout=30.0,
                    idle_timeout=30.0)

    async def scenario(port: int, responder: Responder) -> None:
        conns = []
        for i in range(10):
            conns += await _idle(port, f"127.0.0.{10 + i}", 10)
            assert responder.open_connections <= 32
        assert responder.open_connections == 32
        answer = await exchange(port, request())
        assert answer.status == 200
        _close_all(conns)

    served(scenario, limits=limits)


def test_stop_closes_every_connection() -> None:
    async def scenario(port: int, responder: Responder) -> None:
        conns = await _idle(port, "127.0.0.2", 20)
        await asyncio.wait_for(responder.stop(), 10)
        for conn in conns:
            assert await _closed(conn, 10)
        assert responder.open_connections == 0

    served(scenario)


@pytest.mark.parametrize(
    ("nofile", "budget"),
    [(1024, 384), (4096, 512), (20000, 512), (200, 16), (-1, 512)],
)
def test_connection_budget_stays_well_below_the_descriptor_limit(nofile: int,
                                                                 budget: int) -> None:
    assert connection_budget(Limits(), nofile) == budget
    if nofile >= 1024:   # the connections and an accept burst: at most half the limit
        assert budget + Limits().backlog <= nofile // 2


@pytest.mark.parametrize(
    ("address", "key"),
    [("192.0.2.1", "192.0.2.1"),
     ("2001:db8::1", "2001:db8::/64"),
     ("2001:db8::ffff:1", "2001:db8::/64"),           # the same /64: one client
     ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
     ("::ffff:192.0.2.1", "192.0.2.1"),               # dual-stack listener
     ("fe80::1%eth0", "fe80::/64"),
     ("?", "?")],
)
def test_client_key(address: str, key: str) -> None:
    assert client_key(address) == key


def test_logger_name_is_the_modules() -> None:
    assert Responder.__module__ == LOGGER
