"""certfleet.protocol.renewal: the fallback renewal rule and why a certificate is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certfleet.protocol.renewal import due_reason, is_due, renewal_time

START = datetime(2025, 1, 1, tzinfo=UTC)


def test_90_day_cert_renews_with_a_third_left() -> None:
    end = START + timedelta(days=90)
    assert renewal_time(START, end) == end - timedelta(days=30)


def test_6_day_cert_renews_at_half() -> None:
    end = START + timedelta(days=6)
    assert renewal_time(START, end) == end - timedelta(days=3)


def test_10_day_cert_uses_a_third() -> None:
    end = START + timedelta(days=10)
    assert renewal_time(START, end) == end - timedelta(days=10) / 3


@pytest.mark.parametrize("days", [0, -1])
def test_empty_or_negative_lifetime_is_due_at_once(days: int) -> None:
    assert renewal_time(START, START + timedelta(days=days)) == START


def test_is_due_boundary() -> None:
    end = START + timedelta(days=90)
    at = end - timedelta(days=30)
    assert not is_due(START, end, at - timedelta(seconds=1))
    assert is_due(START, end, at)


def reason(**changes: Any) -> str | None:
    kwargs: dict[str, Any] = {
        "wanted_names": ("example.com", "www.example.com"),
        "wanted_key_type": "ec256",
        "current_names": ("example.com", "www.example.com"),
        "current_key_type": "ec256",
        "not_before": START,
        "not_after": START + timedelta(days=90),
        "revoked": False,
        "now": START + timedelta(days=10),
    }
    kwargs.update(changes)
    return due_reason(**kwargs)


def test_fine_certificate_is_not_due() -> None:
    assert reason() is None


@pytest.mark.parametrize("missing", ["current_names", "not_before", "not_after"])
def test_new(missing: str) -> None:
    assert reason(**{missing: None}) == "new"


def test_forced_wins_over_everything() -> None:
    assert reason(forced=True) == "forced"
    assert reason(forced=True, current_names=None, revoked=True) == "forced"


def test_revoked() -> None:
    assert reason(revoked=True) == "revoked"


def test_names_changed() -> None:
    assert reason(current_names=("example.com",)) == "names changed"
    assert reason(wanted_names=("example.com", "www.example.com", "a.example.com")) == (
        "names changed")


def test_name_order_does_not_matter() -> None:
    assert reason(current_names=("www.example.com", "example.com")) is None


def test_key_type_changed() -> None:
    assert reason(current_key_type="rsa2048") == "key type changed"
    assert reason(current_key_type=None) == "key type changed"


def test_expired() -> None:
    assert reason(now=START + timedelta(days=90)) == "expired"
    assert reason(now=START + timedelta(days=400)) == "expired"


def test_expiring() -> None:
    assert reason(now=START + timedelta(days=60)) == "expiring"
    assert reason(now=START + timedelta(days=60) - timedelta(seconds=1)) is None


def test_short_lived_expiring_at_half() -> None:
    end = START + timedelta(days=6)
    assert reason(not_after=end, now=START + timedelta(days=2)) is None
    assert reason(not_after=end, now=START + timedelta(days=3)) == "expiring"


def test_a_one_day_certificate_renews_at_half() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert renewal_time(start, start + timedelta(days=1)) == start + timedelta(hours=12)
    assert renewal_time(start, start + timedelta(hours=1)) == start + timedelta(minutes=30)


def test_the_fraction_is_passed_on() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=90)
    assert not is_due(start, end, start + timedelta(days=44), fraction=0.5)
    assert is_due(start, end, start + timedelta(days=45), fraction=0.5)
    kwargs = {"wanted_names": ("a",), "wanted_key_type": "ec256", "current_names": ("a",),
              "current_key_type": "ec256", "not_before": start, "not_after": end,
              "revoked": False}
    assert due_reason(**kwargs, now=start + timedelta(days=45), fraction=0.5) == "expiring"
    assert due_reason(**kwargs, now=start + timedelta(days=45)) is None
