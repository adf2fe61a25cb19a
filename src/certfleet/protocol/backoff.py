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

STEPS = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
         timedelta(hours=6), timedelta(days=1))
MAX_RETRY_AFTER = timedelta(days=7)


def after_failure(previous: Mapping[str, Any] | None, now: datetime, error: str,
                  retry_after: float | None) -> dict[str, Any]:
    """The backoff record after one more failure."""
    failures = int((previous or {}).get("failures", 0)) + 1
    wait = STEPS[min(failures, len(STEPS)) - 1]
    if retry_after is not None and retry_after > 0:
        wait = max(wait, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
    return {"failures": failures, "until": (now + wait).isoformat(), "error": error}


def waiting_until(record: Mapping[str, Any] | None, now: datetime) -> datetime | None:
    """When the next attempt may be made, if that is still in the future."""
    if not record:
        return None
    try:
        until = datetime.fromisoformat(str(record.get("until")))
    except ValueError:
        return None
    return until if until > now else None
