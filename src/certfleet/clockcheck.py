"""Refuse renewal decisions when the local clock disagrees with the CA's.

Wires ``acme_client`` (the CA's ``Date`` header) and ``store`` (``clock.json``); touches
nothing itself. A clock far ahead makes everything look due (renewing everything); far
behind, nothing (letting certificates expire). So the clock is compared with the CA's
whenever the CA is asked anyway, and otherwise once a day, or at once if the local clock
went backwards since the last comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import CertfleetError
from .store import CertStore

if TYPE_CHECKING:
    from .acme_client import AcmeClient

RECHECK = timedelta(days=1)
log = logging.getLogger(__name__)


class ClockSkewError(CertfleetError):
    """The local clock and the CA's differ by more than allowed."""


def next_check(clock: dict[str, Any]) -> datetime | None:
    """When the daily comparison falls due after the one ``clock`` (``clock.json``)
    records; None if it records none (then it is due now)."""
    try:
        last = datetime.fromisoformat(str(clock.get("checked_at")))
    except ValueError:
        return None
    return last + RECHECK if last.tzinfo is not None else None


def check_needed(store: CertStore, now: datetime) -> bool:
    """Whether the daily comparison is due (or the clock went back since the last one)."""
    due = next_check(store.read_clock())
    return due is None or now < due - RECHECK or now >= due


async def compare(client_for: Callable[[], Awaitable[AcmeClient]], store: CertStore,
                  max_skew: float) -> None:
    """Ask the CA (its directory; one request) and compare its Date with ours."""
    client = await client_for()
    try:
        await client.directory()
    except CertfleetError as exc:  # no answer, no comparison: the run's own steps will fail
        log.info("cannot compare the clock with the CA: %s", exc)
        return
    now = datetime.now(UTC)
    if client.server_date is None:
        return  # a CA that sends no Date cannot be compared with; nothing to refuse on
    skew = (client.server_date - now).total_seconds()
    store.write_clock({"checked_at": now.isoformat(), "skew_seconds": round(skew, 1),
                       "directory": client.directory_url})
    if abs(skew) > max_skew:
        raise ClockSkewError(
            f"the local clock ({now:%Y-%m-%d %H:%M:%S} UTC) differs from the CA's "
            f"({client.server_date:%Y-%m-%d %H:%M:%S} UTC, {client.directory_url}) by "
            f"{abs(skew):.0f}s, more than max_clock_skew = {max_skew:.0f}s; refusing to "
            "decide renewals until the clock is fixed")
