"""certfleet.protocol.timing: Retry-After parsing and poll intervals."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certfleet.protocol.timing import (
    FIRST_POLL,
    MAX_POLL,
    MIN_POLL,
    clamp,
    parse_retry_after,
    poll_intervals,
)

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), (" 30 ", 30.0), ("0", 0.0)])
def test_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_http_date_in_future() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", NOW) == 120.0


def test_http_date_uses_passed_now() -> None:
    later = datetime(2015, 10, 21, 7, 29, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", later) == 60.0


def test_http_date_in_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", NOW) == 0.0


def test_http_date_with_offset() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 09:30:00 +0200", NOW) == 120.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "1.5", "0x10", "1e3", "+5",
     "Wed, 32 Oct 2015 07:28:00 GMT", "Wed, 21 Foo 2015 07:28:00 GMT", "\u0661\u0662"],
)
def test_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_huge_digit_string_is_large_and_finite() -> None:
    seconds = parse_retry_after("9" * 5000, NOW)
    assert seconds is not None
    assert math.isfinite(seconds)
    assert seconds >= 10**11
    assert clamp(seconds) == MAX_POLL


@given(st.text(max_size=60))
def test_never_raises(value: str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@pytest.mark.parametrize(
    ("seconds", "expected"), [(0.0, MIN_POLL), (-3.0, MIN_POLL), (5.0, 5.0), (1e9, MAX_POLL)],
)
def test_clamp(seconds: float, expected: float) -> None:
    assert clamp(seconds) == expected


def test_clamp_custom_bounds() -> None:
    assert clamp(0.5, 1.0, 2.0) == 1.0
    assert clamp(3.0, 1.0, 2.0) == 2.0


def test_poll_intervals_grow_then_cap() -> None:
    values = list(itertools.islice(poll_intervals(), 20))
    assert values[0] == FIRST_POLL == 0.005  # Pebble on loopback is done by then
    assert values[1] == MIN_POLL == 0.05     # then as before: never below MIN_POLL
    assert values[2] == pytest.approx(0.1)
    assert sum(values[:7]) < 7.0     # seven polls within seconds, not minutes
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert values[1] > values[0]
    assert max(values) == 5.0
    assert values[-5:] == [5.0] * 5


def test_poll_intervals_custom() -> None:
    assert list(itertools.islice(poll_intervals(1.0, 2.0, 3.0), 4)) == [1.0, 2.0, 3.0, 3.0]


def test_an_http_date_without_a_known_zone_is_utc() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 29 Nov 2026 12:01:00 -0000", now) == 60.0


def test_delay_seconds_keep_twelve_digits() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_retry_after("1234567890123456", now) == 123456789012.0
