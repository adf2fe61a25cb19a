"""When to ask the CA again: Retry-After (RFC 9110 §10.2.3, RFC 8555 §8.2) and poll intervals.

Touches nothing: the current time is always passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A polling interval shorter than this hammers the CA; longer than this stalls a run.
MIN_POLL = 0.05
MAX_POLL = 60.0
# The first poll without a Retry-After: a CA that validates or issues at once (Pebble on
# loopback: a few milliseconds) is seen done by it; one that takes longer costs one poll more,
# and the wait after it is MIN_POLL. Each wait is on a certificate's critical path: issues
# alternated on one Pebble took 0.392 s with a first poll at 20 ms, 0.331 s at 5 ms.
FIRST_POLL = 0.005


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header, or None if absent or unparseable.

    Accepts delay-seconds and HTTP-date. A date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text[:12]))  # 12 digits is ~30,000 years: the caller clamps anyway
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - now).total_seconds()
    return max(0.0, delta) if math.isfinite(delta) else None


def clamp(seconds: float, low: float = MIN_POLL, high: float = MAX_POLL) -> float:
    """Keep a CA-suggested delay within a sane range."""
    return min(max(seconds, low), high)


def poll_wait(asked: float | None, intervals: Iterator[float]) -> float:
    """The wait before the next poll: the CA's Retry-After (``asked``), but never less than
    certfleet's own next interval from ``intervals``, and at most ``MAX_POLL``.

    The floor is certfleet's own schedule, not a fixed minimum: Retry-After 0 on an object
    that stays "processing" had certfleet ask ~18 times a second for the whole 300 s
    deadline; now the waits grow as without a Retry-After (5 ms, 50 ms, 0.1 s ... 5 s), about
    70 polls in 300 s. The first waits stay a few tens of milliseconds, so a CA that is done
    at once (Pebble, Retry-After 0, ~3 polls an issue) is seen done as soon as before
    (bench/issue_pair.py, 9 pairs against the 50 ms floor: the same time within 2 %).
    """
    own = next(intervals)  # drawn at every poll: the floor grows while the CA is not done
    return own if asked is None else clamp(asked, own, MAX_POLL)


def poll_intervals(first: float = FIRST_POLL, factor: float = 2.0,
                   cap: float = 5.0) -> Iterator[float]:
    """Intervals for polling when the CA gives no Retry-After: the first after a few
    milliseconds, then growing by ``factor`` (never below ``MIN_POLL``) up to
    ``cap``.

    A CA that validates at once is seen done at the first poll (a fixed quarter second
    would be most of a certificate's time); one that takes seconds is asked about a dozen
    times in a minute, not hammered. Callers bound the total with a deadline.
    """
    delay = first
    while True:
        yield delay
        delay = min(max(delay * factor, MIN_POLL), cap)
