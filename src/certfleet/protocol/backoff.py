"""How long to leave a certificate alone after a failed attempt. Touches nothing.

Cron may run certfleet every few minutes; a failing certificate must not be retried that
often (Let's Encrypt allows five failed validations per name per hour). The wait grows
with consecutive failures, from minutes to a day, and is never shorter than the CA's own
Retry-After (clamped to a week, so an absurd value cannot park a certificate forever).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .frozen import frozen
from .records import RecordError, text, when

STEPS = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
         timedelta(hours=6), timedelta(days=1))
MAX_RETRY_AFTER = timedelta(days=7)
MAX_ERROR = 1000


@frozen
class Backoff:
    """After ``failures`` failed attempts in a row, the next one waits until ``until``."""

    failures: int
    until: datetime
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"failures": self.failures, "until": self.until.isoformat(), "error": self.error}

    @classmethod
    def from_json(cls, data: Any) -> Backoff:
        if not isinstance(data, Mapping):
            raise RecordError("backoff is not an object")
        failures = data.get("failures")
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise RecordError("backoff.failures is not a positive integer")
        return cls(failures, when(data.get("until"), "backoff.until"),
                   text(data.get("error"), "backoff.error", MAX_ERROR))


def after_failure(previous: Backoff | None, now: datetime, error: str,
                  retry_after: float | None) -> Backoff:
    """The backoff after one more failure (``error`` is cut to ``MAX_ERROR``)."""
    failures = (previous.failures if previous else 0) + 1
    wait = STEPS[min(failures, len(STEPS)) - 1]
    if retry_after is not None and retry_after > 0:
        wait = max(wait, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
    return Backoff(failures, now + wait, error[:MAX_ERROR])


def waiting_until(record: Backoff | None, now: datetime) -> datetime | None:
    """When the next attempt may be made, if that is still in the future."""
    if record is None:
        return None
    return record.until if record.until > now else None
