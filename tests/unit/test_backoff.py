from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certfleet.protocol.backoff import STEPS, after_failure, waiting_until

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_waits_grow_from_minutes_to_a_day() -> None:
    record = None
    waits = []
    for _ in range(7):
        record = after_failure(record, NOW, "boom", None)
        waits.append(datetime.fromisoformat(record["until"]) - NOW)
    assert waits == [*STEPS, STEPS[-1], STEPS[-1]]
    assert record is not None
    assert record["failures"] == 7


def test_retry_after_is_respected_and_clamped() -> None:
    record = after_failure(None, NOW, "rate limited", 3600)
    assert datetime.fromisoformat(record["until"]) - NOW == timedelta(hours=1)
    record = after_failure(None, NOW, "absurd", 10**12)
    assert datetime.fromisoformat(record["until"]) - NOW == timedelta(days=7)
    record = after_failure(None, NOW, "short", 1)
    assert datetime.fromisoformat(record["until"]) - NOW == STEPS[0]


def test_waiting_until() -> None:
    record = after_failure(None, NOW, "x", None)
    assert waiting_until(record, NOW) == NOW + STEPS[0]
    assert waiting_until(record, NOW + STEPS[0]) is None
    assert waiting_until(None, NOW) is None
    assert waiting_until({"until": "garbage"}, NOW) is None
