"""The nonces of one ACME session (RFC 8555 §7.2): who gets the next one, and when to ask
``newNonce``. Pure bookkeeping on the event loop; the requests are ``acme_client``'s.

Nonces are conserved: each signed POST uses one and its answer brings one back. A nonce that
comes back is handed straight to the POST that has waited longest (first come, first
served), or kept in a small pool (newest first) if none waits. ``newNonce`` is asked only
when a POST waits and either nothing in flight will bring a nonce back (the start of a
session; an answer that brought none or a failed request, which also wakes a waiter so that
nobody waits forever), or the flow is too slow for the POSTs waiting: one of them has
waited ``NONCE_GRACE`` seconds, and none was asked for within that grace. The grace is
counted while the event loop was free to read answers (``NONCE_SETTLE``: a loop busy
elsewhere, storing a certificate, is not taken for a slow CA). Never more nonces circulate
than connections, nor than carry the CA's request rate: a nonce makes a round trip per POST,
so one carries 1/round-trip POSTs a second, and ``rate * round trip`` of them carry the rate
the session may spend (``acme_client.RateBudget``); more would only wait on that budget. The
round trip is smoothed as TCP smooths it, so that one slow answer adds no nonce for good.

So against a near CA (answers in a few milliseconds: one nonce carries more than the 200
requests a second allowed) one nonce circulates and ``newNonce`` is asked once a session,
however many POSTs queue behind it: what holds them up is the client's own work and the
CA's, which more nonces do not shorten (a 500-certificate run on loopback took as long with
one nonce as with four). Against a far CA (a round trip of 150 ms: one nonce carries 7 a
second) one more nonce joins each grace while POSTs wait, up to one a connection. The grace
is short against a far CA's round trip and long against a near CA's answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Awaitable, Callable

NONCE_POOL = 64             # nonces kept when no POST waits (more are dropped, oldest first)
NONCE_GRACE = 0.05          # seconds a POST waits before one more nonce is asked for
NONCE_SETTLE = 0.005        # and a moment more for answers already read (see ``take``)
ROUND_TRIP_GAIN = 1 / 8     # weight of a new round trip in the smoothed one (RFC 6298)


class _Waiter:
    """A POST waiting for a nonce, since when (the grace is counted from there)."""

    __slots__ = ("future", "since")

    def __init__(self, future: asyncio.Future[str | None], since: float) -> None:
        self.future, self.since = future, since


class NonceFlow:
    """Nonces pooled, handed to waiting POSTs, and counted while in flight.

    The grace is watched by one timer for the whole session, not one per waiting POST: the
    POST that has waited longest is the one that decides, and hundreds waiting at once
    would otherwise each wake every grace for nothing."""

    def __init__(self, connections: int, rate: float | None = None) -> None:
        self.connections = connections
        self.rate = rate         # requests a second the session may spend; None: no bound
        self.round_trip = 0.0    # smoothed, of the requests answered with a nonce; seconds
        self._timed = False      # whether any answer was timed yet
        self.pool: collections.deque[str] = collections.deque(maxlen=NONCE_POOL)
        self.waiters: collections.deque[_Waiter] = collections.deque()
        self.in_flight = 0       # POSTs and newNonce requests sent: each should bring one back
        self.handed = 0          # nonces handed to a waiter that has not yet sent its POST
        self.asked = 0.0         # when newNonce was last asked
        self._timer: asyncio.TimerHandle | None = None
        self._ask: Callable[[], Awaitable[None]] | None = None
        self._asking: set[asyncio.Task[None]] = set()

    async def take(self, ask: Callable[[], Awaitable[None]]) -> str:
        """A nonce: from the pool, else the next one to come back, else one that ``ask``
        (a ``newNonce`` request, whose answer comes back through ``answered``) brings."""
        if self.pool:
            return self.pool.pop()
        self._ask = ask
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), time.monotonic())
        self.waiters.append(waiter)
        try:
            while True:
                if not self._circulating():
                    self.asked = time.monotonic()
                    await ask()
                if not waiter.future.done():
                    self._arm(loop)
                    await waiter.future
                nonce = waiter.future.result()
                if nonce is not None:
                    self.handed -= 1
                    return nonce
                # Woken because no nonce will come back: keep the place, and ask.
                waiter = _Waiter(loop.create_future(), waiter.since)
                self.waiters.appendleft(waiter)
        except BaseException:
            self._leave(waiter.future)
            raise

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None:
            self._timer = loop.call_later(NONCE_GRACE, self._tick, loop,
                                          time.monotonic() + NONCE_GRACE, False)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float, settled: bool) -> None:
        """The grace has passed: one more nonce if the longest waiting POST has waited it.

        A loop held up by other work (a certificate checked and stored, its fsyncs) runs this
        late, or on time but with answers still unread in the sockets: neither is a stalled
        CA. A late run starts the grace again; a timely one that would ask looks again after
        ``NONCE_SETTLE``, so that answers already there get through first.
        """
        self._timer = None
        head = self._head()
        if head is None:
            return
        now = time.monotonic()
        if now - due > NONCE_SETTLE:
            head.since = now
        elif self._stalled(head.since, now):
            if not settled:
                self._timer = loop.call_later(NONCE_SETTLE, self._tick, loop,
                                              now + NONCE_SETTLE, True)
                return
            self.asked = now
            task = loop.create_task(self._ask_behind())
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)
        self._arm(loop)

    async def _ask_behind(self) -> None:
        """``newNonce`` for the waiting POSTs; a failure is no one POST's: it came back
        through ``answered`` (no nonce), which woke a waiter that asks in its own name."""
        assert self._ask is not None
        with contextlib.suppress(Exception):
            await self._ask()

    def _head(self) -> _Waiter | None:
        """The POST that has waited longest and still waits."""
        while self.waiters and self.waiters[0].future.done():
            self.waiters.popleft()
        return self.waiters[0] if self.waiters else None

    def sending(self) -> None:
        """A request that should bring a nonce back is on its way (from before any wait)."""
        self.in_flight += 1

    def answered(self, nonce: str | None, round_trip: float = 0.0) -> None:
        """That request is over: ``nonce`` came back ``round_trip`` seconds after it was
        sent, or none came (no header, or it failed)."""
        self.in_flight -= 1
        if nonce is not None:
            self._time(round_trip)
            self.give(nonce)
        else:
            self._wake()

    def give(self, nonce: str) -> None:
        """A nonce came back: to the first waiter, else into the pool."""
        while self.waiters:
            waiter = self.waiters.popleft().future
            if not waiter.done():
                self.handed += 1
                waiter.set_result(nonce)
                return
        self.pool.append(nonce)

    def _circulating(self) -> int:
        """Nonces held or sure to come back: pooled, handed to a POST, or in flight."""
        return len(self.pool) + self.handed + self.in_flight

    def _stalled(self, since: float, now: float) -> bool:
        """One more nonce: a POST has waited a grace, no other nonce was asked for within
        it, and fewer circulate than ``_enough``."""
        return now - since >= NONCE_GRACE and now - self.asked >= NONCE_GRACE \
            and self._circulating() < self._enough()

    def _time(self, sample: float) -> None:
        """The smoothed round trip, as TCP's (RFC 6298 §2): one slow answer, a pause of
        the CA's, moves it an eighth of the way, and a nonce once added stays."""
        if self._timed:
            self.round_trip += (sample - self.round_trip) * ROUND_TRIP_GAIN
        else:
            self.round_trip, self._timed = sample, True

    def _enough(self) -> int:
        """Nonces that carry the request rate at the smoothed round trip, one a connection at
        most (all of them without a rate)."""
        if self.rate is None:
            return self.connections
        return min(self.connections, max(1, math.ceil(self.rate * self.round_trip)))

    def _leave(self, waiter: asyncio.Future[str | None]) -> None:
        """A waiter gives up (an error, cancelled): what it was handed goes on."""
        if not waiter.done():
            waiter.cancel()
            return
        nonce = waiter.result()
        if nonce is None:
            self._wake()
        else:
            self.handed -= 1
            self.give(nonce)

    def _wake(self) -> None:
        """If no nonce will come back, the first waiter is woken to ask ``newNonce``."""
        if self._circulating():
            return
        while self.waiters:
            waiter = self.waiters.popleft().future
            if not waiter.done():
                waiter.set_result(None)
                return
