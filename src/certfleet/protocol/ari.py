"""ACME Renewal Information (RFC 9773): certificate IDs, renewal windows, the chosen time.

Touches nothing: the current time and the random draw are passed in. The ``Schedule`` kept
per certificate (in its state record) holds the CA's window, the time chosen in it, when
to ask again, and the CA's explanation URL; or, when asking failed, the error and when to
try again. Everything in it that came from the CA is bounded before it is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from .b64 import b64url
from .frozen import frozen
from .records import RecordError, in_range, optional_when, serial_hex, text, when

# RFC 9773 §4.3: honour Retry-After, within reason.
MIN_RECHECK = timedelta(minutes=1)
MAX_RECHECK = timedelta(days=1)
DEFAULT_RECHECK = timedelta(hours=6)
FAILED_RECHECK = timedelta(hours=1)
MAX_EXPLANATION = 1024   # an explanation URL longer than this is not kept
MAX_ERROR = 1000


def _der_integer_content(value: int) -> bytes:
    """The content octets of a DER INTEGER: big-endian two's complement, minimal."""
    length = value.bit_length() // 8 + 1  # one spare bit for the sign
    return value.to_bytes(length, "big", signed=True)


def cert_id(aki: bytes, serial: int) -> str:
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) '.' base64url(serial DER content)."""
    return f"{b64url(aki)}.{b64url(_der_integer_content(serial))}"


def _time(value: Any, what: str) -> datetime:
    from .messages import MalformedMessage

    if not isinstance(value, str):
        raise MalformedMessage(f"renewalInfo: {what} is missing or not a string")
    try:  # RFC 3339 §5.6: "T" and "Z" may be written in lower case
        when = datetime.fromisoformat(value.upper())
    except ValueError:
        raise MalformedMessage(f"renewalInfo: {what} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise MalformedMessage(f"renewalInfo: {what} has no time zone")
    if not in_range(when):
        raise MalformedMessage(f"renewalInfo: {what} is out of range")
    return when


def parse_window(obj: Any) -> tuple[datetime, datetime, str | None]:
    """The suggested window (start, end) and explanationURL of a renewalInfo response."""
    # Imported here: the state record (``Schedule``) is read by `status`, which parses no
    # CA message and need not build the message classes.
    from .messages import MalformedMessage

    if not isinstance(obj, Mapping):
        raise MalformedMessage("renewalInfo is not a JSON object")
    window = obj.get("suggestedWindow")
    if not isinstance(window, Mapping):
        raise MalformedMessage("renewalInfo: suggestedWindow is missing")
    start, end = _time(window.get("start"), "start"), _time(window.get("end"), "end")
    if end < start:
        raise MalformedMessage("renewalInfo: the window ends before it starts")
    explanation = obj.get("explanationURL")
    if not isinstance(explanation, str) or len(explanation) > MAX_EXPLANATION \
            or not explanation.isprintable():
        explanation = None  # a hostile CA's megabytes or control characters are not kept
    return start, end, explanation


def recheck_after(retry_after: float | None, now: datetime) -> datetime:
    """When to ask again: the CA's Retry-After clamped to [1 minute, 1 day], else 6 hours."""
    if retry_after is None:
        return now + DEFAULT_RECHECK
    return now + min(max(timedelta(seconds=retry_after), MIN_RECHECK), MAX_RECHECK)


@frozen
class Schedule:
    """The renewal schedule of one certificate (by its serial, in hex)."""

    serial: str
    next_fetch: datetime
    start: datetime | None = None
    end: datetime | None = None
    chosen: datetime | None = None
    explanation: str | None = None
    error: str | None = None     # why the last attempt to ask failed

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"serial": self.serial, "next_fetch": self.next_fetch.isoformat()}
        for key in ("start", "end", "chosen"):
            if (value := getattr(self, key)) is not None:
                data[key] = value.isoformat()
        if self.explanation is not None:
            data["explanation"] = self.explanation
        if self.error is not None:
            data["error"] = self.error
        return data

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        if not isinstance(data, Mapping):
            raise RecordError("ari is not an object")
        explanation = data.get("explanation")
        if explanation is not None and (not isinstance(explanation, str)
                                        or len(explanation) > MAX_EXPLANATION):
            explanation = None
        error = data.get("error")
        return cls(serial_hex(data.get("serial"), "ari.serial"),
                   when(data.get("next_fetch"), "ari.next_fetch"),
                   optional_when(data.get("start"), "ari.start"),
                   optional_when(data.get("end"), "ari.end"),
                   optional_when(data.get("chosen"), "ari.chosen"), explanation,
                   None if error is None else text(error, "ari.error", MAX_ERROR))


def schedule(
    previous: Schedule | None, serial: int, start: datetime, end: datetime,
    explanation: str | None, next_fetch: datetime, draw: float,
) -> Schedule:
    """The schedule after a fresh answer: the stored choice is kept while the window is the
    same, otherwise ``draw`` (uniform in [0, 1)) picks a new time inside the window."""
    same = (previous is not None and previous.serial == f"{serial:x}"
            and previous.start == start and previous.end == end and previous.chosen)
    chosen = previous.chosen if same and previous is not None \
        else start + (end - start) * draw
    return Schedule(f"{serial:x}", next_fetch, start, end, chosen, explanation)


def failed(previous: Schedule | None, serial: int, error: str, next_fetch: datetime) -> Schedule:
    """Asking failed: keep a window already known for this serial, note why, ask later."""
    if previous is not None and previous.serial == f"{serial:x}":
        return replace(previous, error=error[:MAX_ERROR], next_fetch=next_fetch)
    return Schedule(f"{serial:x}", next_fetch, error=error[:MAX_ERROR])


def chosen_time(record: Schedule | None, serial: int) -> datetime | None:
    """The stored renewal time for this certificate, if its schedule is about it."""
    if record is None or record.serial != f"{serial:x}":
        return None
    return record.chosen


def fetch_due(record: Schedule | None, serial: int, now: datetime) -> bool:
    """Whether to ask the CA now: never asked about this certificate, or Retry-After passed."""
    if record is None or record.serial != f"{serial:x}":
        return True
    return now >= record.next_fetch
