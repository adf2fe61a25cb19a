"""The nonces of one ACME session (RFC 8555 §7.2): who gets the next one, and when to ask
``newNonce``. Pure bookkeeping on the event loop; the requests are ``acme_client``'s.

Nonces are conserved: each signed POST uses one and its answer brings one back. A nonce that
comes back is handed straight to the POST that has waited longest (first come, first
served), or kept in a small pool (newest first) if none waits. ``newNonce`` is asked only
when a POST waits and either nothing in flight will bring a nonce back (the start of a
session; an answer that brought none or a failed request, which also wakes a waiter so that
nobody waits forever), or the flow has stalled: no nonce came back, and none was asked for,
for ``NONCE_GRACE`` seconds while POSTs wait, counted while the event loop was free to
read answers (``NONCE_SETTLE``: a loop busy elsewhere is not taken for a slow CA).

So while the CA answers within the grace, one nonce circulates and POSTs go one after
another, which costs nothing against a near CA (answers in milliseconds) and keeps
``newNonce`` to once a session. Against a far or slow CA (a round trip of 150 ms and more,
or a slow finalize) the flow stalls each grace and one more nonce is fetched each time, up
to one per connection: never more nonces in circulation than connections, as no more POSTs
could be on the wire at once anyway. The grace is short against a far CA's round trip and
long against a near CA's answer, even on a loaded machine.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable

NONCE_POOL = 64             # nonces kept when no POST waits (more are dropped, oldest first)
NONCE_GRACE = 0.05          # seconds with POSTs waiting and no nonce back: the flow stalled
NONCE_SETTLE = 0.005        # and a moment more for answers already read (see ``take``)


class NonceFlow:
    """Nonces pooled, handed to waiting POSTs, and counted while in flight."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.pool: collections.deque[str] = collections.deque(maxlen=NONCE_POOL)
        self.waiters: collections.deque[asyncio.Future[str | None]] = collections.deque()
        self.in_flight = 0       # POSTs and newNonce requests sent: each should bring one back
        self.handed = 0          # nonces handed to a waiter that has not yet sent its POST
        self.stall_clock = 0.0   # when a nonce last came back or newNonce was last asked

    async def take(self, ask: Callable[[], Awaitable[None]]) -> str:
        """A nonce: from the pool, else the next one to come back, else one that ``ask``
        (a ``newNonce`` request, whose answer comes back through ``answered``) brings."""
        if self.pool:
            return self.pool.pop()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[str | None] = loop.create_future()
        self.waiters.append(waiter)
        since = time.monotonic()
        try:
            while True:
                if self._should_ask(since):
                    self.stall_clock = time.monotonic()
                    await ask()
                if not waiter.done():
                    since = await self._wait(waiter, since)
                if waiter.done():
                    nonce = waiter.result()
                    if nonce is not None:
                        self.handed -= 1
                        return nonce
                    waiter = loop.create_future()  # woken to ask newNonce: keep the place
                    self.waiters.appendleft(waiter)
        except BaseException:
            self._leave(waiter)
            raise

    async def _wait(self, waiter: asyncio.Future[str | None], since: float) -> float:
        """Wait a grace for ``waiter``; the time the grace now counts from.

        A loop held up by other work (a certificate checked and stored, its fsyncs) wakes
        the waiter late, or on time but with answers still unread in the sockets: neither
        is a stalled CA. A late wake starts the grace again; a timely one that would ask
        waits ``NONCE_SETTLE`` more so that answers already there get through first.
        """
        due = time.monotonic() + NONCE_GRACE
        await asyncio.wait((waiter,), timeout=NONCE_GRACE)
        now = time.monotonic()
        if waiter.done():
            return since
        if now - due > NONCE_SETTLE:
            return now
        if self._should_ask(since):
            await asyncio.wait((waiter,), timeout=NONCE_SETTLE)
        return since

    def sending(self) -> None:
        """A request that should bring a nonce back is on its way (from before any wait)."""
        self.in_flight += 1

    def answered(self, nonce: str | None) -> None:
        """That request is over: ``nonce`` came back, or none (no header, or it failed)."""
        self.in_flight -= 1
        if nonce is not None:
            self.give(nonce)
        else:
            self._wake()

    def give(self, nonce: str) -> None:
        """A nonce came back: to the first waiter, else into the pool."""
        self.stall_clock = time.monotonic()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.handed += 1
                waiter.set_result(nonce)
                return
        self.pool.append(nonce)

    def _circulating(self) -> int:
        """Nonces held or sure to come back: pooled, handed to a POST, or in flight."""
        return len(self.pool) + self.handed + self.in_flight

    def _should_ask(self, since: float) -> bool:
        """Ask ``newNonce``: nothing will bring a nonce back, or the flow has stalled."""
        circulating = self._circulating()
        if circulating == 0:
            return True
        stalled = time.monotonic() - max(since, self.stall_clock) >= NONCE_GRACE
        return stalled and circulating < self.connections

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
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
