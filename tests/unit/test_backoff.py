from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certfleet.protocol.backoff import STEPS, Backoff, after_failure, waiting_until
from certfleet.protocol.records import RecordError

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_waits_grow_from_minutes_to_a_day() -> None:
    record = None
    waits = []
    for _ in range(7):
        record = after_failure(record, NOW, "boom", None)
        waits.append(record.until - NOW)
    assert waits == [*STEPS, STEPS[-1], STEPS[-1]]
    assert record is not None
    assert record.failures == 7


def test_retry_after_is_respected_and_clamped() -> None:
    assert after_failure(None, NOW, "rate limited", 3600).until - NOW == timedelta(hours=1)
    assert after_failure(None, NOW, "absurd", 10**12).until - NOW == timedelta(days=7)
    assert after_failure(None, NOW, "short", 1).until - NOW == STEPS[0]


def test_waiting_until() -> None:
    record = after_failure(None, NOW, "x", None)
    assert waiting_until(record, NOW) == NOW + STEPS[0]
    assert waiting_until(record, NOW + STEPS[0]) is None
    assert waiting_until(None, NOW) is None


def test_error_is_bounded_and_round_trips() -> None:
    record = after_failure(None, NOW, "x" * 100_000, None)
    assert len(record.error) == 1000
    assert Backoff.from_json(record.to_json()) == record


@pytest.mark.parametrize("data", [
    [], {"failures": 0, "until": NOW.isoformat(), "error": ""},
    {"failures": True, "until": NOW.isoformat(), "error": ""},
    {"failures": 1, "until": "garbage", "error": ""},
    {"failures": 1, "until": "2026-01-01T00:00:00", "error": ""},
    {"failures": 1, "until": NOW.isoformat(), "error": 5},
])
def test_damaged_records_are_refused(data: object) -> None:
    with pytest.raises(RecordError):
        Backoff.from_json(data)


def test_error_is_bounded_when_read_back() -> None:
    data = {"failures": 2, "until": NOW.isoformat(), "error": "x" * 5000}
    assert Backoff.from_json(data) == Backoff(2, NOW, "x" * 1000)


@pytest.mark.parametrize(("data", "message"), [
    ([], "backoff is not an object"),
    ({"failures": 0, "until": NOW.isoformat(), "error": ""},
     "backoff.failures is not a positive integer"),
    ({"failures": True, "until": NOW.isoformat(), "error": ""},
     "backoff.failures is not a positive integer"),
    ({"failures": "1", "until": NOW.isoformat(), "error": ""},
     "backoff.failures is not a positive integer"),
    ({"failures": 1, "until": "garbage", "error": ""}, "backoff.until is not a time"),
    ({"failures": 1, "until": NOW.isoformat(), "error": 5}, "backoff.error is not a string"),
])
def test_damaged_records_name_the_field(data: object, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        Backoff.from_json(data)
    assert str(caught.value) == message
