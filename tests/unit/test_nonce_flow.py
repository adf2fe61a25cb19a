"""``NonceFlow`` by itself: its counts, the stall rule and the grace timer, driven directly.

The end-to-end behaviour against a loopback CA is in ``test_acme_nonces.py``; here the
bookkeeping is checked without the wire: each test sets the flow's clock marks (``asked``, a
waiter's ``since``) far from the present so that the real timer can never decide for it, and
calls ``_tick`` itself where the timer's decision is what is tested.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from certfleet import nonces
from certfleet.nonces import NONCE_GRACE, NonceFlow

LONG_AGO = -1e6   # a clock mark that makes any wait a stall
NEVER = 1e12      # one that makes none


class Asks:
    """A fake ``newNonce``: counts the asks; the nonce is delivered by the test."""

    def __init__(self, flow: NonceFlow, fail: bool = False) -> None:
        self.flow, self.fail, self.count = flow, fail, 0

    async def __call__(self) -> None:
        self.count += 1
        self.flow.sending()
        if self.fail:
            self.flow.answered(None)
            raise RuntimeError("newNonce failed")


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def quiet(flow: NonceFlow) -> None:
    """The stall rule can never fire: a nonce was just asked for, as far as it knows."""
    flow.asked = NEVER


def quiet_flow(in_flight: int) -> tuple[NonceFlow, Asks]:
    """A flow with ``in_flight`` POSTs on the wire and the stall rule kept quiet."""
    flow = NonceFlow(connections=4)
    quiet(flow)
    for _ in range(in_flight):
        flow.sending()
    return flow, Asks(flow)


async def stalled_waiter(flow: NonceFlow, asks: Asks, *, keep_timer: bool = False
                         ) -> asyncio.Task[str]:
    """A POST waiting behind the slow ones since long ago, no newNonce asked for as long: a
    stall. Its grace timer is taken away unless ``keep_timer``: the test ticks itself."""
    waiter = asyncio.create_task(flow.take(asks))
    await turns()
    flow.waiters[0].since = LONG_AGO
    flow.asked = LONG_AGO
    if not keep_timer and flow._timer is not None:
        flow._timer.cancel()
        flow._timer = None
    return waiter


async def next_take_asks(flow: NonceFlow, asks: Asks, nonce: str) -> None:
    """Nothing in circulation would bring a nonce back: the next POST asks ``newNonce``
    (once) and takes the nonce that comes back."""
    later = asyncio.create_task(flow.take(asks))
    await turns()
    assert asks.count == 1
    flow.answered(nonce)
    assert await later == nonce


def test_a_nonce_handed_on_counts_until_its_post_is_sent() -> None:
    """One POST's nonce handed to a waiter and another POST in flight: two nonces circulate,
    so a new POST waits for them instead of asking newNonce."""
    async def body() -> None:
        flow, asks = quiet_flow(2)
        first = asyncio.create_task(flow.take(asks))
        await turns()
        flow.answered("n1")                 # handed to ``first``, whose task has not run yet
        assert (flow.handed, flow.in_flight) == (1, 1)
        assert flow._circulating() == 2
        second = asyncio.create_task(flow.take(asks))
        await turns()
        assert asks.count == 0
        assert await first == "n1"
        flow.answered("n2")
        assert await second == "n2"
        assert (flow.handed, flow.in_flight, asks.count) == (0, 0, 0)

    run(body)


def test_once_every_handed_nonce_is_used_a_post_with_nothing_in_flight_asks() -> None:
    async def body() -> None:
        flow, asks = quiet_flow(2)
        waiting = [asyncio.create_task(flow.take(asks)) for _ in range(2)]
        await turns()
        flow.answered("n1")
        flow.answered("n2")
        assert flow.handed == 2
        assert [await w for w in waiting] == ["n1", "n2"]
        assert flow.handed == 0
        assert flow._circulating() == 0
        await next_take_asks(flow, asks, "n3")

    run(body)


def test_a_waiter_cancelled_with_a_nonce_in_hand_leaves_the_counts_whole() -> None:
    async def body() -> None:
        flow, asks = quiet_flow(1)
        waiter = asyncio.create_task(flow.take(asks))
        await turns()
        flow.answered("n1")                 # handed to the waiter ...
        waiter.cancel()                     # ... which is cancelled before it runs again
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (flow.handed, list(flow.pool)) == (0, ["n1"])
        assert await flow.take(asks) == "n1"
        assert flow._circulating() == 0
        await next_take_asks(flow, asks, "n2")

    run(body)


def test_a_waiter_woken_to_ask_keeps_its_place_and_its_waiting_time() -> None:
    async def body() -> None:
        flow, asks = quiet_flow(1)
        waiter = asyncio.create_task(flow.take(asks))
        await turns()
        since = flow.waiters[0].since
        flow.answered(None)                 # the only request in flight brought no nonce
        await turns()
        assert asks.count == 1
        assert flow.waiters[0].since == since
        flow.answered("n1")
        assert await waiter == "n1"

    run(body)


def test_the_stall_rule_at_its_bounds() -> None:
    flow = NonceFlow(connections=2)
    flow.in_flight = 1
    flow.asked = 0.0
    assert flow._stalled(0.0, NONCE_GRACE)                    # a whole grace: stalled
    assert not flow._stalled(1.0, 1.0 + NONCE_GRACE / 2)      # half a grace: not yet
    flow.asked = 1.0 + NONCE_GRACE / 2
    assert not flow._stalled(0.0, 1.0 + NONCE_GRACE)          # asked within the grace
    flow.asked = 0.0
    flow.in_flight = 2
    assert not flow._stalled(0.0, 10.0)                       # one a connection already


@pytest.mark.parametrize(("rate", "round_trip", "enough"), [
    (None, 0.003, 4),       # no rate to carry: one a connection
    (200.0, 0.0, 1),        # nothing answered yet: the one newNonce brings
    (200.0, 0.003, 1),      # a near CA: one nonce carries 333 a second
    (200.0, 0.005, 1),      # exactly the rate
    (200.0, 0.0051, 2),     # just short of it
    (200.0, 0.012, 3),
    (200.0, 0.15, 4),       # a far CA: as many as connections
])
def test_enough_nonces_carry_the_rate_at_the_round_trip(
        rate: float | None, round_trip: float, enough: int) -> None:
    flow = NonceFlow(connections=4, rate=rate)
    flow.round_trip = round_trip
    assert flow._enough() == enough


def test_a_fresh_flow_asks_for_one_nonce_until_a_round_trip_is_known() -> None:
    assert NonceFlow(connections=4, rate=200.0)._enough() == 1


def test_the_stall_rule_adds_no_nonce_the_rate_does_not_need() -> None:
    flow = NonceFlow(connections=4, rate=200.0)
    flow.in_flight, flow.asked, flow.round_trip = 1, 0.0, 0.003
    assert not flow._stalled(0.0, 10.0)      # waited long, yet one nonce carries the rate
    flow.round_trip = 0.015
    assert flow._stalled(0.0, 10.0)          # three carry it: a second one joins
    flow.in_flight = 3
    assert not flow._stalled(0.0, 10.0)


def test_the_round_trip_is_smoothed_over_the_answers_with_a_nonce() -> None:
    flow = NonceFlow(connections=4, rate=200.0)
    for _ in range(4):
        flow.sending()
    flow.answered("n1", 0.02)                # the first is taken as it is
    assert flow.round_trip == 0.02
    flow.answered(None, 5.0)                 # failed or no nonce: tells nothing of the flow
    assert flow.round_trip == 0.02
    flow.answered("n2", 0.1)                 # one slow answer moves it an eighth of the way
    assert flow.round_trip == pytest.approx(0.03)
    flow.answered("n3")                      # no time given: a sample of 0
    assert flow.round_trip == pytest.approx(0.02625)


def test_a_timely_tick_on_a_stall_settles_first_then_asks_once() -> None:
    async def body() -> None:
        flow, asks = quiet_flow(1)          # one POST in flight, slow
        waiter = await stalled_waiter(flow, asks)
        loop = asyncio.get_running_loop()
        flow._tick(loop, time.monotonic(), False)
        await turns()
        assert asks.count == 0
        assert flow._timer is not None
        flow._timer.cancel()
        before = time.monotonic()
        flow._tick(loop, time.monotonic(), True)
        await turns()
        assert asks.count == 1
        assert before <= flow.asked <= time.monotonic()
        assert not flow._asking             # the background ask is done and forgotten
        assert flow._timer is not None      # the grace is watched on
        flow.answered("n1")
        flow.answered("n2")
        assert await waiter == "n1"

    run(body)


def test_a_late_tick_is_a_busy_loop_not_a_slow_ca() -> None:
    async def body() -> None:
        flow, asks = quiet_flow(1)
        waiter = await stalled_waiter(flow, asks)
        before = time.monotonic()
        flow._tick(asyncio.get_running_loop(), before - 10, False)   # ran 10 s late
        await turns()
        assert asks.count == 0
        assert flow.waiters[0].since >= before   # the grace counts again from now
        assert flow._timer is not None
        flow.answered("n1")
        assert await waiter == "n1"

    run(body)


def test_a_tick_with_nobody_waiting_does_nothing() -> None:
    async def body() -> None:
        flow = NonceFlow(connections=4)
        flow._tick(asyncio.get_running_loop(), time.monotonic(), False)
        assert flow._timer is None

    run(body)


def test_a_failed_background_ask_raises_nowhere() -> None:
    """A newNonce asked for the waiting POSTs fails: it is counted out (no nonce came back,
    which wakes a waiter when nothing else is in flight), and the background task ends
    without an exception left to be retrieved."""
    async def body() -> None:
        flow = NonceFlow(connections=4)
        asks = Asks(flow, fail=True)
        flow._ask = asks
        tasks: list[asyncio.Task[Any]] = []
        flow._asking = _Recording(tasks)
        flow.waiters.append(nonces._Waiter(asyncio.get_running_loop().create_future(),
                                           LONG_AGO))
        flow.in_flight = 1
        flow.asked = LONG_AGO
        flow._tick(asyncio.get_running_loop(), time.monotonic(), True)
        assert len(tasks) == 1
        await asyncio.wait(tasks)
        assert tasks[0].exception() is None
        assert flow.in_flight == 1          # its own request counted out again
        if flow._timer is not None:
            flow._timer.cancel()

    run(body)


def test_the_first_tick_of_a_grace_is_not_a_settled_one(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """The timer armed for a grace runs ``_tick`` unsettled: on a stall it looks again after
    ``NONCE_SETTLE`` (made long here) before it asks."""
    monkeypatch.setattr(nonces, "NONCE_SETTLE", 60.0)

    async def body() -> None:
        flow, asks = quiet_flow(1)
        waiter = await stalled_waiter(flow, asks, keep_timer=True)
        armed = flow._timer
        assert armed is not None
        for _ in range(500):                # the grace's tick runs, and a settle one is set
            if flow._timer is not armed:
                break
            await asyncio.sleep(NONCE_GRACE / 5)
        assert flow._timer is not armed
        assert flow._timer is not None
        assert asks.count == 0
        waiter.cancel()
        flow._timer.cancel()

    run(body)


class _Recording(set):  # type: ignore[type-arg]
    """A set that also keeps what was added, for the test to await."""

    def __init__(self, seen: list[asyncio.Task[Any]]) -> None:
        super().__init__()
        self.seen = seen

    def add(self, item: Any) -> None:
        self.seen.append(item)
        super().add(item)


def test_a_fresh_flow_with_a_post_in_flight_can_stall() -> None:
    """No newNonce asked yet (the first POST's nonce came with the directory): a POST that
    has waited a grace behind it is a stall."""
    flow = NonceFlow(connections=4)
    flow.sending()
    assert flow._stalled(LONG_AGO, time.monotonic())
