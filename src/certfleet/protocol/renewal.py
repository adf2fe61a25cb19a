"""The renewal rule used when the CA gives no renewal window (RFC 9773 is the preferred clock).

Touches nothing: the current time is passed in. Never a fixed number of days: a rule of
"30 days before expiry" would renew a 6-day certificate on every run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

SHORT_LIFETIME = timedelta(days=10)


def renewal_time(
    not_before: datetime, not_after: datetime, fraction: float = 1 / 3
) -> datetime:
    """When a certificate becomes due: ``fraction`` (a third) of its lifetime left, and at
    least half for lifetimes under ten days, where a day of outage is a large share."""
    lifetime = not_after - not_before
    if lifetime <= timedelta(0):
        return not_before
    share = max(fraction, 0.5) if lifetime < SHORT_LIFETIME else fraction
    return not_after - lifetime * share


def is_due(
    not_before: datetime, not_after: datetime, now: datetime, fraction: float = 1 / 3
) -> bool:
    """True when the fallback rule says the certificate should be renewed now."""
    return now >= renewal_time(not_before, not_after, fraction)


def due_reason(
    *, wanted_names: tuple[str, ...], wanted_key_type: str,
    current_names: tuple[str, ...] | None, current_key_type: str | None,
    not_before: datetime | None, not_after: datetime | None, revoked: bool,
    now: datetime, forced: bool = False, fraction: float = 1 / 3,
    renew_at: datetime | None = None,
) -> str | None:
    """Why a certificate must be (re)issued now, or None if the current one is good.

    ``current_*`` are None when nothing was issued yet. ``renew_at``, when the caller has
    it (a renewal window's chosen time), replaces the lifetime rule.
    """
    if forced:
        return "forced"
    if current_names is None or not_before is None or not_after is None:
        return "new"
    if revoked:
        return "revoked"
    if sorted(current_names) != sorted(wanted_names):
        return "names changed"
    if current_key_type != wanted_key_type:
        return "key type changed"
    if now >= not_after:
        return "expired"
    due_at = renew_at if renew_at is not None else renewal_time(not_before, not_after, fraction)
    if now >= due_at:
        return "expiring"
    return None
