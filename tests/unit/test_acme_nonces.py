"""The nonce hand-off of certfleet.acme_client over real sockets (the in-process fake CA of
``tests/adversarial/fakeca.py`` on loopback): a nonce that comes back goes to the next
waiting POST, first come first served; ``newNonce`` is asked only when nothing in flight
will bring one back or a POST has waited ``NONCE_GRACE`` (one more each grace), and never
for more nonces than connections; an answer without a nonce, a failed request or a
cancelled POST leaves nobody waiting."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import pytest
from aiohttp import web

from certfleet import nonces
from certfleet.acme_client import AcmeClient, RateBudget
from certfleet.errors import TransportError
from certfleet.nonces import _Waiter

from .. import waits
from ..adversarial.fakeca import FakeCA

LONG = 30.0   # a grace no test lasts: only an answer, never a newNonce, can move a waiter


@pytest.fixture
def ca() -> Iterator[FakeCA]:
    fake = FakeCA().start()
    quiet_directory(fake)  # so that every nonce of a session is accounted for
    yield fake
    fake.stop()


def quiet_directory(ca: FakeCA) -> None:
    """The directory answered without a Replay-Nonce (as Boulder's is)."""
    async def answer(request: web.Request) -> web.StreamResponse:
        normal = await ca.default(request)
        del normal.headers["Replay-Nonce"]
        return normal

    ca.overrides["/dir"] = answer


class Gate:
    """An answer held until the test opens the gate (checked on the CA's own loop)."""

    def __init__(self) -> None:
        self.open = False
        self.arrived = 0

    async def wait(self) -> None:
        self.arrived += 1
        for _ in range(int(waits.SCENARIO / 0.005)):
            if self.open:
                return
            await asyncio.sleep(0.005)


class Signer:
    """Records the nonce each payload was signed with; returns a recognizable JWS."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, str]] = []

    def __call__(self, url: str, nonce: str, payload: Mapping[str, Any] | None
                 ) -> Mapping[str, Any]:
        self.calls.append((payload, nonce))
        return {"protected": nonce, "payload": json.dumps(payload), "signature": "sig"}

    @property
    def nonces(self) -> list[str]:
        return [nonce for _, nonce in self.calls]


def run(use: Callable[[AcmeClient], Awaitable[Any]], ca: FakeCA, **options: Any) -> Any:
    async def main() -> Any:
        async with AcmeClient(ca.directory_url, allow_http=True, **options) as client:
            return await asyncio.wait_for(use(client), waits.SCENARIO)  # a hang fails
    return asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(int(waits.SCENARIO / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A grace that never ends: only an answer, never a newNonce, moves a waiter."""
    monkeypatch.setattr(nonces, "NONCE_GRACE", LONG)


async def arrived(client: AcmeClient, ca: FakeCA, path: str, signer: Signer,
                  gate: Gate) -> asyncio.Task[Any]:
    """A POST to ``path`` (payload ``{"i": 0}``), once the CA holds it at ``gate``."""
    task = asyncio.create_task(client.post(ca.url(path), {"i": 0}, signer))
    await until(lambda: gate.arrived == 1)
    return task


def held(ca: FakeCA, path: str, gate: Gate, *, nonce: bool = True) -> None:
    """``path`` answers once ``gate`` opens; with a nonce or without."""
    async def answer(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        if nonce:
            return ca.raw(b'{"status": "valid"}', "application/json")
        return web.Response(body=b'{"status": "valid"}',
                            headers={"Content-Type": "application/json"})

    ca.overrides[path] = answer


def test_one_newnonce_for_many_serial_posts(ca: FakeCA) -> None:
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        for i in range(10):
            await client.post(ca.url("/account"), {"i": i}, signer)

    run(use, ca)
    assert ca.count("HEAD /nonce") == 1
    assert signer.nonces == ["n2", *(f"nonce{i}" for i in range(3, 12))]


@pytest.mark.usefixtures("patient")
def test_waiting_posts_get_the_nonces_that_come_back_first_come_first_served(ca: FakeCA) -> None:
    """Twenty POSTs at once on four connections: one newNonce, then each answer's nonce
    goes to the POST that has waited longest."""
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        await asyncio.gather(*(client.post(ca.url("/account"), {"i": i}, signer)
                               for i in range(20)))

    run(use, ca, connections=4)
    assert ca.count("HEAD /nonce") == 1
    assert [payload["i"] for payload, _ in signer.calls] == list(range(20))
    assert signer.nonces == ["n2", *(f"nonce{i}" for i in range(3, 22))]


@pytest.mark.usefixtures("patient")
def test_a_waiting_post_takes_the_nonce_of_the_answer_not_a_new_one(ca: FakeCA) -> None:
    gate = Gate()
    held(ca, "/slow", gate)
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        slow = await arrived(client, ca, "/slow", signer, gate)
        other = asyncio.create_task(client.post(ca.url("/account"), {"i": 1}, signer))
        await asyncio.sleep(0.3)
        assert not other.done()    # it waits for the nonce the slow answer brings back
        gate.open = True
        await asyncio.gather(slow, other)

    run(use, ca)
    assert ca.count("HEAD /nonce") == 1
    assert signer.nonces == ["n2", "nonce3"]


def test_a_held_answer_lets_a_second_nonce_be_fetched_after_the_grace(ca: FakeCA) -> None:
    gate = Gate()
    held(ca, "/slow", gate)
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        slow = await arrived(client, ca, "/slow", signer, gate)
        await client.post(ca.url("/account"), {"i": 1}, signer)  # while the slow one hangs
        assert not slow.done()
        gate.open = True
        await slow

    run(use, ca)
    assert ca.count("HEAD /nonce") == 2
    assert signer.nonces == ["n2", "n3"]


def test_a_long_queue_behind_quick_answers_gets_more_nonces(ca: FakeCA) -> None:
    """Each answer well within the grace, but twelve POSTs queued behind one nonce: the
    ones at the back would wait far longer than the grace, so more nonces join (one each
    grace, at most one per connection)."""
    async def quick(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.02)
        return await ca.default(request)

    ca.overrides["/account"] = quick
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        await asyncio.gather(*(client.post(ca.url("/account"), {"i": i}, signer)
                               for i in range(12)))

    run(use, ca, connections=4)
    assert 2 <= ca.count("HEAD /nonce") <= 4
    assert len(set(signer.nonces)) == 12


def test_posts_paced_by_the_request_rate_share_one_nonce(ca: FakeCA) -> None:
    """Twelve POSTs at 10 a second with quick answers: each waits its turn of the budget,
    the nonce with it, far longer than a grace; yet one nonce carries ten a second at any
    round trip under 100 ms, so newNonce is asked once, and the round trip measured is the
    answer's, not the wait for the budget."""
    async def quick(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.01)
        return await ca.default(request)

    ca.overrides["/account"] = ca.overrides["/nonce"] = quick
    signer = Signer()

    async def use(client: AcmeClient) -> float:
        await asyncio.gather(*(client.post(ca.url("/account"), {"i": i}, signer)
                               for i in range(12)))
        return client._flow.round_trip

    round_trip = run(use, ca, connections=4, rate=10.0)
    assert ca.count("HEAD /nonce") == 1
    assert len(set(signer.nonces)) == 12
    assert 0.01 <= round_trip < 0.1


def test_the_round_trip_leaves_out_the_wait_for_the_rate_budget(
        ca: FakeCA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request waits 100 ms for its turn of the budget and is answered in 10 ms: the
    round trip that sizes the nonces in flight is the answer's."""
    async def quick(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.01)
        return await ca.default(request)

    async def turn(budget: RateBudget) -> None:
        await asyncio.sleep(0.1)

    ca.overrides["/account"] = ca.overrides["/nonce"] = quick
    monkeypatch.setattr(RateBudget, "take", turn)
    signer = Signer()

    async def use(client: AcmeClient) -> float:
        for i in range(3):
            await client.post(ca.url("/account"), {"i": i}, signer)
        return client._flow.round_trip

    assert 0.01 <= run(use, ca, connections=4, rate=10.0) < 0.1


def test_no_more_nonces_are_fetched_than_connections_while_answers_are_slow(
        ca: FakeCA) -> None:
    """Twelve POSTs on two connections, each answer held three graces: POSTs wait a grace
    again and again, yet at most two nonces are ever fetched, and each is used once."""
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.15)  # three graces
        return await ca.default(request)

    ca.overrides["/account"] = slow
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        await asyncio.gather(*(client.post(ca.url("/account"), {"i": i}, signer)
                               for i in range(12)))

    run(use, ca, connections=2)
    # One at the start, one more after a grace (unless the machine is so loaded that every
    # grace ended late, which starts it again); never a third, however long the wait.
    assert 1 <= ca.count("HEAD /nonce") <= 2
    assert ca.count("POST /account") == 12
    assert len(set(signer.nonces)) == 12


@pytest.mark.usefixtures("patient")
def test_an_answer_without_a_nonce_wakes_a_waiter(ca: FakeCA) -> None:
    gate = Gate()
    held(ca, "/quiet", gate, nonce=False)
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        quiet = await arrived(client, ca, "/quiet", signer, gate)
        others = [asyncio.create_task(client.post(ca.url("/account"), {"i": i}, signer))
                  for i in (1, 2)]
        await asyncio.sleep(0.05)
        gate.open = True
        await asyncio.gather(quiet, *others)

    run(use, ca)
    # The first newNonce for the quiet POST; its answer brought none back, so the first
    # waiter asked again; the second waiter had the nonce of the first one's answer.
    assert ca.count("HEAD /nonce") == 2
    assert [payload["i"] for payload, _ in signer.calls] == [0, 1, 2]


@pytest.mark.usefixtures("patient")
def test_a_failed_request_wakes_a_waiter(ca: FakeCA) -> None:
    gate = Gate()

    async def broken(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        assert request.transport is not None
        request.transport.close()  # no answer at all
        return web.Response()

    ca.overrides["/broken"] = broken
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        failing = await arrived(client, ca, "/broken", signer, gate)
        other = asyncio.create_task(client.post(ca.url("/account"), {"i": 1}, signer))
        await asyncio.sleep(0.05)
        gate.open = True
        with pytest.raises(TransportError):
            await failing
        await other

    run(use, ca)
    assert ca.count("HEAD /nonce") == 2
    assert ca.count("POST /account") == 1


@pytest.mark.usefixtures("patient")
def test_a_cancelled_waiter_passes_its_place_on(ca: FakeCA) -> None:
    gate = Gate()
    held(ca, "/slow", gate)
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        slow = await arrived(client, ca, "/slow", signer, gate)
        gone = asyncio.create_task(client.post(ca.url("/account"), {"i": 1}, signer))
        other = asyncio.create_task(client.post(ca.url("/account"), {"i": 2}, signer))
        await asyncio.sleep(0.05)
        gone.cancel()
        gate.open = True
        await asyncio.gather(slow, other)
        assert gone.cancelled()

    run(use, ca)
    assert ca.count("HEAD /nonce") == 1
    assert [payload["i"] for payload, _ in signer.calls] == [0, 2]
    assert signer.nonces == ["n2", "nonce3"]


def test_a_waiter_cancelled_with_a_nonce_in_hand_gives_it_on(ca: FakeCA) -> None:
    """Cancelled just after a nonce was handed to it (before its task ran again): the nonce
    goes to the pool, not lost."""
    gate = Gate()
    held(ca, "/slow", gate)
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        first = await arrived(client, ca, "/slow", signer, gate)
        waiter: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        client._flow.waiters.append(_Waiter(waiter, 0.0))  # what a waiting POST leaves
        gate.open = True
        await first                            # its answer's nonce went to the waiter
        assert waiter.result() == "nonce3"
        client._flow._leave(waiter)                  # the waiting task is cancelled
        await client.post(ca.url("/account"), {"i": 1}, signer)

    run(use, ca)
    assert ca.count("HEAD /nonce") == 1
    assert signer.nonces == ["n2", "nonce3"]


def test_a_loop_held_up_elsewhere_is_not_a_slow_ca(ca: FakeCA) -> None:
    """The event loop is busy (here: blocked on purpose, as a certificate's checks and
    fsyncs block it) while a large answer arrives: when it runs again, the waiter's grace
    is over but the answer is still being read; that is no slow CA, and no second nonce is
    asked."""
    gate = Gate()

    async def big(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        return ca.raw(b'{"pad": "' + b"x" * 600_000 + b'"}', "application/json")

    ca.overrides["/big"] = big
    signer = Signer()

    async def use(client: AcmeClient) -> None:
        first = await arrived(client, ca, "/big", signer, gate)
        second = asyncio.create_task(client.post(ca.url("/account"), {"i": 1}, signer))
        await asyncio.sleep(0)     # the second POST waits for a nonce
        gate.open = True
        time.sleep(0.3)            # the loop held up while the answer arrives
        await asyncio.gather(first, second)

    run(use, ca)
    assert ca.count("HEAD /nonce") == 1
    assert signer.nonces == ["n2", "nonce3"]
