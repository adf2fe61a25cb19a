"""`certfleet serve` under a flood: 1,000 slow and idle connections kept open against it
while Pebble validates a name through the seed lab's nginx load balancer.

The topology is the seed's (tools/seed_lab.py): Pebble resolves www.example.com to LB1
(127.0.0.11), a real nginx that proxies /.well-known/acme-challenge/ to `certfleet serve`
on 127.0.0.1, connecting from 127.0.0.1. The flood must not come from that address too,
or the per-client cap would be the test's own doing and nothing could tell a protected
load balancer from a blocked one: the flood binds ten other loopback sources, 127.0.0.5 to
127.0.0.14, 100 connections each. Half of them send nothing (idle), half trickle a request
line one byte every 2 s (slowloris); each one the server closes is opened again 1 to 2 s
later, so the flood keeps pressing for as long as the run lasts.

That presses on both caps at once (see solvers/http_responder.py): 100 a source is over
the per-client cap of 64, so each source's surplus is closed at once, and 10 x 64 is over
the total of 512, so newcomers displace the oldest idle connections. The load balancer's
address has its own per-client quota, and its connections, complete requests from nginx,
are never the oldest idle ones: the run must succeed, which means every validation request
was answered within Pebble's own timeout (15 s a request). Meanwhile the server's open
descriptors are sampled from /proc: the server must be full (the flood is real) and stay
within its budget. `certfleet serve` is restarted for this with the open-file limit of a
default systemd service (soft 1024), so that budget is the one derived from RLIMIT_NOFILE,
384 connections (half the limit less the accept batch), not the 512 maximum.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certfleet.solvers.http_limits import Limits, connection_budget

from ..conftest import require
from .fleet_helpers import run_cli

pytestmark = pytest.mark.integration

SOURCES = [f"127.0.0.{i}" for i in range(5, 15)]
PER_SOURCE = 100
SERVE_NOFILE = 1024
BUDGET = connection_budget(Limits(), SERVE_NOFILE)          # 384
BACKLOG = Limits().backlog     # dropped connections the event loop has yet to close: a batch


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Flood:
    """1,000 slow and idle connections to ``port``, renewed as the server closes them."""

    def __init__(self, port: int, pid: int, rng: random.Random) -> None:
        self.port, self.pid, self.rng = port, pid, rng
        self.open = self.connects = self.closed_by_server = 0
        self.fd_samples: list[int] = []
        self._stopping = False     # besides cancelling: 3.11's wait_for can swallow a cancel
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _slot(self, source: str, slow: bool) -> None:
        while not self._stopping:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(source, 0))
            except OSError:
                await asyncio.sleep(1)
                continue
            self.open += 1
            self.connects += 1
            try:
                if slow:
                    writer.write(b"GET /.well-known/acme-challenge/")
                while not self._stopping:
                    try:
                        if await asyncio.wait_for(reader.read(1), 2.0) == b"":
                            self.closed_by_server += 1
                            break
                    except TimeoutError:
                        if slow:
                            writer.write(b"A")
                            await writer.drain()
            except OSError:
                self.closed_by_server += 1
            finally:
                self.open -= 1
                writer.close()
            await asyncio.sleep(self.rng.uniform(1.0, 2.0))

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.fd_samples.append(_fds(self.pid))
            await asyncio.sleep(0.25)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        tasks = [asyncio.create_task(self._slot(source, slow=i % 2 == 1))
                 for source in SOURCES for i in range(PER_SOURCE)]
        tasks.append(asyncio.create_task(self._sample()))
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        while self._loop is None or self._stop is None:
            time.sleep(0.01)
        self._stopping = True
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the flood did not stop"

    def wait_until(self, what: str, check: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"flood: {what} not reached: {self.stats()}"
            time.sleep(0.1)

    def stats(self) -> str:
        last = self.fd_samples[-1] if self.fd_samples else None
        return (f"{self.connects} connects, {self.open} open now, {self.closed_by_server} "
                f"closed by the server, server fds now {last}")


@pytest.fixture
def seed(pebble_lab_factory: Any, tmp_path: Path) -> Iterator[Any]:
    import web_lab

    require(web_lab.find_binaries, web_lab.WebLabUnavailable)
    import seed_lab

    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    with seed_lab.build(tmp_path, lab) as built:
        yield built


@pytest.fixture
def many_sockets() -> Iterator[None]:
    """This process holds the flood's 1,000 client sockets: make room if the limit is low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def _soft_nofile(soft: int) -> Iterator[None]:
    """This process's soft open-file limit lowered to ``soft`` (children inherit it)."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def test_validation_through_the_lb_while_1000_connections_flood_serve(
        seed: Any, many_sockets: None, rng_seed: int) -> None:
    assert BUDGET == 384
    seed.stop_serve()
    with _soft_nofile(SERVE_NOFILE):
        seed.start_serve()
    serve_pid = seed.serve.pid
    base_fds = _fds(serve_pid)
    with Flood(seed.serve_port, serve_pid, random.Random(rng_seed)) as flood:
        flood.wait_until("every connection opened once",
                         lambda: flood.connects >= len(SOURCES) * PER_SOURCE)
        flood.wait_until("the server full", lambda: flood.fd_samples
                         and flood.fd_samples[-1] >= base_fds + BUDGET - 20)
        during = len(flood.fd_samples)
        print("flood before the run:", flood.stats())
        started = time.monotonic()
        rc, out = run_cli("run", "--config", str(seed.config), "www.example.com")
        took = time.monotonic() - started
        samples = flood.fd_samples[during:]
        print(f"flood after the run ({took:.1f} s):", flood.stats(), "; server fds during "
              f"the run: min {min(samples)}, max {max(samples)} (base {base_fds})")
    assert rc == 0, out
    assert "www.example.com: issued (expires " in out
    # The flood was real all along, and the server never went past its budget.
    assert flood.closed_by_server > len(SOURCES) * PER_SOURCE - BUDGET
    assert max(samples) >= base_fds + BUDGET - 20
    assert max(flood.fd_samples) <= base_fds + BUDGET + BACKLOG

    log = seed.stop_serve()
    assert f"(at most {BUDGET} connections, 64 per client)" in log
    print(log)                                           # shown when the test fails
    lines = [line for line in log.splitlines() if "http-01 request from" in line]
    via_lb = [line for line in lines if line.startswith("certfleet: INFO: http-01 request "
                                                        "from 127.0.0.1 (for 127.0.0.1")]
    assert any(line.endswith(" -> 200") and "Host www.example.com," in line
               for line in via_lb), log[-3000:]
    assert not [line for line in lines if "from 127.0.0.1 " in line
                and not line.endswith(" -> 200")], "the load balancer was refused"
    assert "over the per-client cap, closed at once" in log
    assert "idle, dropped for a newer connection" in log
    assert "Traceback" not in log
