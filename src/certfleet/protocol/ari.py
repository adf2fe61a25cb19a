"""ACME Renewal Information (RFC 9773): certificate IDs, renewal windows, the chosen time.

Touches nothing: the current time and the random draw are passed in. The schedule kept per
certificate is a plain dict (stored in its state record)::

    {"serial": hex, "start": iso, "end": iso, "chosen": iso, "explanation": url|None,
     "next_fetch": iso}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .b64 import b64url
from .messages import MalformedMessage

# RFC 9773 §4.3: honour Retry-After, within reason.
MIN_RECHECK = timedelta(minutes=1)
MAX_RECHECK = timedelta(days=1)
DEFAULT_RECHECK = timedelta(hours=6)
FAILED_RECHECK = timedelta(hours=1)


def _der_integer_content(value: int) -> bytes:
    """The content octets of a DER INTEGER: big-endian two's complement, minimal."""
    length = value.bit_length() // 8 + 1  # one spare bit for the sign
    return value.to_bytes(length, "big", signed=True)


def cert_id(aki: bytes, serial: int) -> str:
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) '.' base64url(serial DER content)."""
    return f"{b64url(aki)}.{b64url(_der_integer_content(serial))}"


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedMessage(f"renewalInfo: {what} is missing or not a string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedMessage(f"renewalInfo: {what} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise MalformedMessage(f"renewalInfo: {what} has no time zone")
    return when


def parse_window(obj: Any) -> tuple[datetime, datetime, str | None]:
    """The suggested window (start, end) and explanationURL of a renewalInfo response."""
    if not isinstance(obj, Mapping):
        raise MalformedMessage("renewalInfo is not a JSON object")
    window = obj.get("suggestedWindow")
    if not isinstance(window, Mapping):
        raise MalformedMessage("renewalInfo: suggestedWindow is missing")
    start, end = _time(window.get("start"), "start"), _time(window.get("end"), "end")
    if end < start:
        raise MalformedMessage("renewalInfo: the window ends before it starts")
    explanation = obj.get("explanationURL")
    return start, end, explanation if isinstance(explanation, str) else None


def recheck_after(retry_after: float | None, now: datetime) -> datetime:
    """When to ask again: the CA's Retry-After clamped to [1 minute, 1 day], else 6 hours."""
    if retry_after is None:
        return now + DEFAULT_RECHECK
    return now + min(max(timedelta(seconds=retry_after), MIN_RECHECK), MAX_RECHECK)


def schedule(
    previous: Mapping[str, Any] | None, serial: int, start: datetime, end: datetime,
    explanation: str | None, next_fetch: datetime, draw: float,
) -> dict[str, Any]:
    """The schedule after a fresh answer: the stored choice is kept while the window is the
    same, otherwise ``draw`` (uniform in [0, 1)) picks a new time inside the window."""
    same = (previous is not None and previous.get("serial") == f"{serial:x}"
            and previous.get("start") == start.isoformat()
            and previous.get("end") == end.isoformat() and previous.get("chosen"))
    chosen = (str(previous["chosen"]) if same and previous is not None
              else (start + (end - start) * draw).isoformat())
    return {"serial": f"{serial:x}", "start": start.isoformat(), "end": end.isoformat(),
            "chosen": chosen, "explanation": explanation, "next_fetch": next_fetch.isoformat()}


def chosen_time(record: Mapping[str, Any] | None, serial: int) -> datetime | None:
    """The stored renewal time for this certificate, if its schedule is about it."""
    if not record or record.get("serial") != f"{serial:x}" or not record.get("chosen"):
        return None
    try:
        return datetime.fromisoformat(str(record["chosen"]))
    except ValueError:
        return None


def fetch_due(record: Mapping[str, Any] | None, serial: int, now: datetime) -> bool:
    """Whether to ask the CA now: never asked about this certificate, or Retry-After passed."""
    if not record or record.get("serial") != f"{serial:x}":
        return True
    try:
        return now >= datetime.fromisoformat(str(record.get("next_fetch")))
    except ValueError:
        return True
