"""Reading stored records back: typed fields with bounds. Touches nothing.

A state record was written by certfleet, but it may have been damaged since, or hold
values a hostile CA put there: every field is checked for its type and cut to a bound on
the way in, and a field that is not what it should be raises ``RecordError`` naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class RecordError(ValueError):
    """A stored record does not have the shape it should."""


def text(value: Any, what: str, limit: int, *, optional: bool = False) -> str:
    """A string of at most ``limit`` characters (a longer one is cut, not refused)."""
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{what} is not a string")
    return value[:limit]


def when(value: Any, what: str) -> datetime:
    """An ISO 8601 time with its time zone."""
    if not isinstance(value, str) or len(value) > 64:
        raise RecordError(f"{what} is not a time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{what} is not a time") from None
    if moment.tzinfo is None:
        raise RecordError(f"{what} has no time zone")
    if not in_range(moment):
        raise RecordError(f"{what} is out of range")
    return moment


def in_range(moment: datetime) -> bool:
    """Whether a time with its zone is a time in UTC too: 0001-01-01T00:00+14:00 is in the
    year 0 there, and every comparison or timestamp of it later would raise."""
    try:
        moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return False
    return True


def optional_when(value: Any, what: str) -> datetime | None:
    return None if value is None else when(value, what)


def serial_hex(value: Any, what: str) -> str:
    """A certificate serial number in hex, as stored."""
    if not isinstance(value, str) or not 0 < len(value) <= 64 \
            or any(c not in "0123456789abcdef" for c in value):
        raise RecordError(f"{what} is not a serial number")
    return value
