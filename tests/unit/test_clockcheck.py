from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from certfleet.clockcheck import RECHECK, check_needed
from certfleet.store import Store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_daily_and_after_the_clock_went_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    assert check_needed(store, NOW)                      # never compared
    store.write_clock({"checked_at": NOW.isoformat()})
    assert not check_needed(store, NOW + timedelta(hours=1))
    assert check_needed(store, NOW + RECHECK)            # a day later
    assert check_needed(store, NOW - timedelta(minutes=1))  # the clock went backwards
    (tmp_path / "state" / "clock.json").write_text("{broken")
    assert check_needed(store, NOW)


def test_a_record_without_a_time_zone_or_a_time_means_compare_now(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    for bad in ("2026-11-28T12:00:00", 1764331200, None, "yesterday"):
        store.write_clock({"checked_at": bad})
        assert check_needed(store, NOW), bad
