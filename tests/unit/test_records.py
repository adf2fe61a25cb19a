"""Reading stored records back (certfleet.protocol.records): typed fields with bounds, and a
RecordError naming the field that is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from certfleet.protocol.records import RecordError, optional_when, serial_hex, text, when


def test_text_is_cut_to_its_bound() -> None:
    assert text("abc", "f", 10) == "abc"
    assert text("abcdef", "f", 3) == "abc"
    assert text("", "f", 3) == ""


@pytest.mark.parametrize("value", [None, 5, b"bytes", ["x"]])
def test_text_must_be_a_string(value: object) -> None:
    with pytest.raises(RecordError) as caught:
        text(value, "last.error", 10)
    assert str(caught.value) == "last.error is not a string"


def test_an_optional_text_may_be_missing() -> None:
    assert text(None, "f", 10, optional=True) == ""
    assert text("abcdef", "f", 3, optional=True) == "abc"
    with pytest.raises(RecordError, match=r"^f is not a string$"):
        text(5, "f", 3, optional=True)


def test_when() -> None:
    assert when("2026-11-29T12:00:00+00:00", "at") == datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert when("2026-11-29T12:00:00+02:00", "at").utcoffset() == timedelta(hours=2)
    exactly_64 = "2026-11-29T12:00:00." + "0" * 38 + "+00:00"
    assert len(exactly_64) == 64
    assert when(exactly_64, "at") == datetime(2026, 11, 29, 12, tzinfo=UTC)


@pytest.mark.parametrize(("value", "message"), [
    (None, "at is not a time"), (5, "at is not a time"), ("yesterday", "at is not a time"),
    ("2026-11-29T12:00:00." + "0" * 39 + "+00:00", "at is not a time"),   # 65 characters
    ("2026-11-29T12:00:00", "at has no time zone"),
])
def test_when_refuses(value: object, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        when(value, "at")
    assert str(caught.value) == message


def test_optional_when() -> None:
    assert optional_when(None, "ari.start") is None
    assert optional_when("2026-11-29T12:00:00-01:00", "ari.start") == \
        datetime(2026, 11, 29, 12, tzinfo=timezone(timedelta(hours=-1)))
    with pytest.raises(RecordError, match=r"^ari\.start is not a time$"):
        optional_when("", "ari.start")


@pytest.mark.parametrize("value", ["0", "ab", "0123456789abcdef", "f" * 64])
def test_serial_hex(value: str) -> None:
    assert serial_hex(value, "serial") == value


@pytest.mark.parametrize("value", ["", "f" * 65, "AB", "abX", "0x1f", " ab", 171, None])
def test_serial_hex_refuses(value: object) -> None:
    with pytest.raises(RecordError) as caught:
        serial_hex(value, "revocation.serial")
    assert str(caught.value) == "revocation.serial is not a serial number"


def test_a_time_is_judged_in_utc_whatever_the_local_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The last hour of 9999 in UTC is a time; at +14:00 it is in the year 10000. The
    check is the UTC one, wherever certfleet runs."""
    import time as clock
    from datetime import UTC, datetime

    from certfleet.protocol.records import in_range

    monkeypatch.setenv("TZ", "Etc/GMT-14")
    clock.tzset()
    try:
        assert in_range(datetime(9999, 12, 31, 23, tzinfo=UTC))
    finally:
        monkeypatch.undo()
        clock.tzset()
