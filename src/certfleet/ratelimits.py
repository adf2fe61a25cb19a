"""What a CA allows, and a run planned within it. Touches nothing: the ledger of orders
comes in as values and the current time is passed in.

Two of a CA's limits are the client's to keep, because breaking them costs every
certificate of the account:

* **Requests per second**, all endpoints together (``request_rate``). The client spends it
  as a token bucket (``acme_client.RateBudget``); waiting on a Retry-After costs none of it,
  so a run keeps as many orders in flight as the rate allows, up to ``concurrency``.
* **New orders per account per window** (Let's Encrypt: 300 per 3 hours). A run orders at
  most what is left of the window, the certificates nearest their end first, and defers
  the rest to a later run, naming when there will be room. Orders are counted in the
  account's ledger (``accounts/<ca>/orders.json``) across runs and processes.

Failed validations (Let's Encrypt: 5 per name per hour) need no ledger: a failed
certificate is left alone for 5 minutes, then 30, then 2 hours (``protocol.backoff``), so
no name fails more than three times in an hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .config.defaults import LETSENCRYPT, PRESETS
from .protocol.frozen import frozen
from .protocol.records import RecordError, when

if TYPE_CHECKING:
    from .plan import CertPlan

MAX_LEDGER = 100_000   # entries kept in a ledger; far above any CA's window


@frozen
class CaLimits:
    """One CA's limits as certfleet keeps them."""

    request_rate: float                  # requests per second, every endpoint together
    new_orders: int | None = None        # new orders per account per ``window``
    window: timedelta = timedelta(hours=3)


# What each CA allows. Let's Encrypt documents 250 requests/s per address
# on most endpoints (20/s on newNonce, which a run asks once) and 300 new orders per
# account per 3 hours (1,500 on staging); certfleet keeps to 200/s. The other public CAs
# document no request rate: 20/s keeps well clear of any. A private CA (a directory URL
# of one's own) gets 200/s; ``[ca] request_rate`` and ``new_order_limit`` change any.
CA_LIMITS = {
    LETSENCRYPT: CaLimits(200.0, 300, timedelta(hours=3)),
    PRESETS["letsencrypt-staging"]: CaLimits(200.0, 1500, timedelta(hours=3)),
    **{PRESETS[name]: CaLimits(20.0) for name in
       ("google", "google-staging", "zerossl", "sslcom-rsa", "sslcom-ecc", "actalis")},
}
PRIVATE_CA_LIMITS = CaLimits(200.0)


@frozen
class Ledger:
    """The new orders an account placed (or a live run has reserved) recently."""

    placed: tuple[datetime, ...] = ()

    def recent(self, now: datetime, window: timedelta) -> list[datetime]:
        return sorted(t for t in self.placed if now - window < t <= now + window)

    def left(self, limits: CaLimits, now: datetime) -> int | None:
        """New orders still allowed now (None: the CA sets no such limit)."""
        if limits.new_orders is None:
            return None
        return max(0, limits.new_orders - len(self.recent(now, limits.window)))

    def room_at(self, limits: CaLimits, now: datetime, wanted: int) -> datetime:
        """When ``wanted`` more orders fit in the window (the oldest ones leave it)."""
        recent = self.recent(now, limits.window)
        assert limits.new_orders is not None
        over = len(recent) + wanted - limits.new_orders
        if over <= 0:
            return now
        if over > len(recent):  # only orders placed from now on leave room behind
            return now + limits.window
        return recent[over - 1] + limits.window

    def with_orders(self, times: Iterable[datetime], now: datetime,
                    window: timedelta) -> Ledger:
        """The ledger with ``times`` added and what left the window dropped."""
        kept = [*self.recent(now, window), *times]
        return Ledger(tuple(sorted(kept)[-MAX_LEDGER:]))

    def without(self, times: Iterable[datetime]) -> Ledger:
        """The ledger with one entry of each of ``times`` taken out (a reservation
        returned)."""
        left = list(self.placed)
        for t in times:
            if t in left:
                left.remove(t)
        return Ledger(tuple(left))


def budget(plans: Sequence[CertPlan], ca_of: Mapping[str, str],
           limits: Mapping[str, CaLimits], ledgers: Mapping[str, Ledger],
           now: datetime) -> list[CertPlan]:
    """The plans with the due certificates beyond each CA's new-order room deferred (no
    longer due, and saying why).

    ``ca_of`` maps a certificate to the CA it is ordered from. The certificates that get
    the room: those without a certificate first, then those due earliest; ties keep file
    order.
    """
    due = [p for p in plans if p.due and not p.blocked]
    by_ca: dict[str, list[CertPlan]] = {}
    for plan in due:
        by_ca.setdefault(ca_of[plan.name], []).append(plan)
    deferred: dict[str, str] = {}
    for url, wanting in by_ca.items():
        ca_limits, ledger = limits.get(url), ledgers.get(url, Ledger())
        left = ledger.left(ca_limits, now) if ca_limits is not None else None
        if left is None or len(wanting) <= left:
            continue
        ranked = sorted(wanting, key=_urgency)
        later = ranked[left:]
        assert ca_limits is not None
        room = ledger.room_at(ca_limits, now, left + 1)  # after this run's own orders
        note = (f"deferred: {url} allows {ca_limits.new_orders} new orders per account per "
                f"{_span(ca_limits.window)}; {len(wanting)} are due and {left} left now; "
                f"room for more from {room:%Y-%m-%d %H:%M} UTC")
        deferred.update((p.name, note) for p in later)
    return [replace(p, due=None, deferred=deferred[p.name]) if p.name in deferred else p
            for p in plans]


def _urgency(plan: CertPlan) -> datetime:
    # No certificate yet: before any renewal time. Naive, to compare with datetime.min.
    return datetime.min if plan.renew_at is None else plan.renew_at.replace(tzinfo=None)


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{seconds} s"


def ledger_from_json(data: Any) -> Ledger:
    """A ledger read back; anything unreadable in it is skipped (the CA enforces the
    limit anyway: the ledger only keeps a run from running into it)."""
    placed: list[datetime] = []
    items = data.get("placed") if isinstance(data, Mapping) else None
    for item in (items if isinstance(items, list) else [])[:MAX_LEDGER]:
        try:
            placed.append(when(item, "placed"))
        except RecordError:
            continue
    return Ledger(tuple(placed))


def ledger_to_json(ledger: Ledger) -> dict[str, Any]:
    return {"placed": [t.isoformat() for t in ledger.placed]}
