"""The wait before a poll: the CA's Retry-After, never below certfleet's own growing
interval (``timing.poll_wait``). "Retry-After: 0" on an object that stays "processing" had
certfleet poll ~18 times a second for the whole 300 s deadline."""

from __future__ import annotations

import itertools

from certfleet.protocol.timing import FIRST_POLL, MAX_POLL, poll_intervals, poll_wait


def _waits(asked: float | None, n: int) -> list[float]:
    intervals = poll_intervals()
    return [poll_wait(asked, intervals) for _ in range(n)]


def test_retry_after_zero_follows_certfleets_own_schedule() -> None:
    assert _waits(0.0, 12) == list(itertools.islice(poll_intervals(), 12))
    assert _waits(0.0, 12) == _waits(None, 12)


def test_the_first_waits_stay_short_for_a_ca_that_is_done_at_once() -> None:
    first = _waits(0.0, 3)
    assert first[0] == FIRST_POLL
    assert sum(first) < 0.2  # Pebble with Retry-After 0: an issue needs ~3 polls


def test_retry_after_zero_for_300_seconds_is_few_polls() -> None:
    intervals, waited, polls = poll_intervals(), 0.0, 0
    while waited < 300:
        waited += poll_wait(0.0, intervals)
        polls += 1
    assert polls < 80  # was 6,000 at the 50 ms floor


def test_a_longer_retry_after_is_honoured_within_max_poll() -> None:
    assert _waits(7.0, 3) == [7.0, 7.0, 7.0]
    assert _waits(1e12, 2) == [MAX_POLL, MAX_POLL]


def test_a_retry_after_below_the_floor_is_raised_to_it() -> None:
    waits = _waits(0.3, 10)
    assert waits[:4] == [0.3, 0.3, 0.3, 0.3]   # 5 ms, 50, 100, 200 ms: the CA's is longer
    assert waits[4:] == [0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
