"""ACME Renewal Information (RFC 9773): certificate IDs, the CA's window, the schedule kept
per certificate and read back from its record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certfleet.protocol import ari
from certfleet.protocol.messages import MalformedMessage
from certfleet.protocol.records import RecordError

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
START = datetime(2026, 12, 1, tzinfo=UTC)
END = datetime(2026, 12, 3, tzinfo=UTC)


def test_cert_id_rfc9773_example() -> None:
    """RFC 9773 §4.1: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4 and
    serial 00:87:65:43:21."""
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    assert ari.cert_id(aki, 0x87654321) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


@pytest.mark.parametrize(("serial", "content"), [
    (0, "00"), (1, "01"), (0x7F, "7f"), (0x80, "0080"), (0xFF, "00ff"), (0x100, "0100"),
    (0x7FFF, "7fff"), (0x8000, "008000"), (0x0FEDCBA987654321, "0fedcba987654321"),
    (2**159 - 1, "7f" + "ff" * 19), (2**159, "0080" + "00" * 19),
])
def test_serial_content_is_minimal_twos_complement(serial: int, content: str) -> None:
    assert ari._der_integer_content(serial).hex() == content
    assert ari.cert_id(b"\x01", serial).split(".")[1] == \
        ari.b64url(bytes.fromhex(content))


def window(start: str = "2026-12-01T00:00:00Z", end: str = "2026-12-03T00:00:00Z",
           **extra: Any) -> dict[str, Any]:
    return {"suggestedWindow": {"start": start, "end": end}, **extra}


def test_parse_window() -> None:
    assert ari.parse_window(window(explanationURL="https://ca/why")) == (START, END,
                                                                         "https://ca/why")
    assert ari.parse_window(window()) == (START, END, None)
    same = window("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert ari.parse_window(same) == (START, START, None)   # a window of one instant
    lower = window("2026-12-01t00:00:00z", "2026-12-03T01:00:00+01:00")
    assert ari.parse_window(lower) == (START, END, None)


@pytest.mark.parametrize("explanation", [5, None, "https://ca/\x1b[2J", "x" * 1025,
                                         "https://ca/\n"])
def test_an_unusable_explanation_is_dropped(explanation: object) -> None:
    assert ari.parse_window(window(explanationURL=explanation))[2] is None


def test_an_explanation_up_to_the_bound_is_kept() -> None:
    url = "https://ca/" + "x" * (ari.MAX_EXPLANATION - 11)
    assert ari.parse_window(window(explanationURL=url))[2] == url


@pytest.mark.parametrize(("obj", "message"), [
    ([], "renewalInfo is not a JSON object"),
    ({}, "renewalInfo: suggestedWindow is missing"),
    ({"suggestedWindow": "soon"}, "renewalInfo: suggestedWindow is missing"),
    (window(start=5), "renewalInfo: start is missing or not a string"),
    ({"suggestedWindow": {"start": "2026-12-01T00:00:00Z"}},
     "renewalInfo: end is missing or not a string"),
    (window(start="tomorrow"), "renewalInfo: start is not an RFC 3339 time"),
    (window(end="2026-12-03T00:00:00"), "renewalInfo: end has no time zone"),
    (window("2026-12-03T00:00:00Z", "2026-12-01T00:00:00Z"),
     "renewalInfo: the window ends before it starts"),
])
def test_a_malformed_window_says_what_is_wrong(obj: object, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        ari.parse_window(obj)
    assert str(caught.value) == message


@pytest.mark.parametrize(("retry_after", "wait"), [
    (None, ari.DEFAULT_RECHECK), (3600, timedelta(hours=1)), (0, ari.MIN_RECHECK),
    (-5, ari.MIN_RECHECK), (59, ari.MIN_RECHECK), (61, timedelta(seconds=61)),
    (86400, ari.MAX_RECHECK), (10**9, ari.MAX_RECHECK),
])
def test_recheck_after_honours_retry_after_within_bounds(retry_after: float | None,
                                                         wait: timedelta) -> None:
    assert ari.recheck_after(retry_after, NOW) == NOW + wait


def test_a_new_window_draws_a_time_inside_it() -> None:
    first = ari.schedule(None, 0xAB, START, END, "https://ca/why", NOW + timedelta(hours=6),
                         0.25)
    assert first == ari.Schedule("ab", NOW + timedelta(hours=6), START, END,
                                 START + timedelta(hours=12), "https://ca/why")
    assert ari.schedule(None, 0xAB, START, END, None, NOW, 0.0).chosen == START


def test_the_same_window_keeps_its_chosen_time() -> None:
    first = ari.schedule(None, 0xAB, START, END, None, NOW, 0.25)
    again = ari.schedule(first, 0xAB, START, END, "https://ca/new", NOW + timedelta(hours=6),
                         0.75)
    assert again.chosen == first.chosen
    assert (again.next_fetch, again.explanation) == (NOW + timedelta(hours=6),
                                                     "https://ca/new")


@pytest.mark.parametrize(("serial", "start", "end"), [
    (0xAC, START, END), (0xAB, START + timedelta(hours=1), END),
    (0xAB, START, END + timedelta(hours=1)),
])
def test_a_changed_window_or_certificate_draws_again(serial: int, start: datetime,
                                                     end: datetime) -> None:
    first = ari.schedule(None, 0xAB, START, END, None, NOW, 0.25)
    again = ari.schedule(first, serial, start, end, None, NOW, 0.75)
    assert again.chosen == start + (end - start) * 0.75
    assert (again.serial, again.start, again.end) == (f"{serial:x}", start, end)


def test_a_failed_window_has_no_chosen_time_to_keep() -> None:
    failed = ari.failed(None, 0xAB, "timed out", NOW)
    again = ari.schedule(failed, 0xAB, START, END, None, NOW, 0.5)
    assert again.chosen == START + timedelta(days=1)


def test_failed_keeps_a_known_window_and_notes_why() -> None:
    known = ari.schedule(None, 0xAB, START, END, "https://ca/why", NOW, 0.25)
    later = NOW + ari.FAILED_RECHECK
    failed = ari.failed(known, 0xAB, "e" * 5000, later)
    assert failed == ari.Schedule("ab", later, START, END, known.chosen, "https://ca/why",
                                  "e" * ari.MAX_ERROR)
    other = ari.failed(known, 0xAC, "refused", later)
    assert other == ari.Schedule("ac", later, error="refused")
    assert ari.failed(None, 0xAB, "refused", later) == ari.Schedule("ab", later,
                                                                    error="refused")


def test_chosen_time_and_fetch_due_are_about_one_certificate() -> None:
    known = ari.schedule(None, 0xAB, START, END, None, NOW + timedelta(hours=6), 0.5)
    assert ari.chosen_time(known, 0xAB) == START + timedelta(days=1)
    assert ari.chosen_time(known, 0xAC) is None
    assert ari.chosen_time(None, 0xAB) is None
    assert ari.fetch_due(None, 0xAB, NOW)
    assert ari.fetch_due(known, 0xAC, NOW)
    assert not ari.fetch_due(known, 0xAB, NOW)
    assert not ari.fetch_due(known, 0xAB, NOW + timedelta(hours=6) - timedelta(seconds=1))
    assert ari.fetch_due(known, 0xAB, NOW + timedelta(hours=6))


def test_schedule_round_trip() -> None:
    full = ari.Schedule("ab", NOW, START, END, START + timedelta(hours=3), "https://ca/why",
                        "last time: refused")
    assert full.to_json() == {
        "serial": "ab", "next_fetch": NOW.isoformat(), "start": START.isoformat(),
        "end": END.isoformat(), "chosen": (START + timedelta(hours=3)).isoformat(),
        "explanation": "https://ca/why", "error": "last time: refused"}
    assert ari.Schedule.from_json(full.to_json()) == full
    bare = ari.Schedule("ab", NOW)
    assert bare.to_json() == {"serial": "ab", "next_fetch": NOW.isoformat()}
    assert ari.Schedule.from_json(bare.to_json()) == bare


def test_schedule_from_json_bounds_what_the_ca_sent() -> None:
    data = ari.Schedule("ab", NOW).to_json()
    for explanation in (5, "x" * (ari.MAX_EXPLANATION + 1)):
        assert ari.Schedule.from_json({**data, "explanation": explanation}).explanation \
            is None
    kept = "x" * ari.MAX_EXPLANATION
    assert ari.Schedule.from_json({**data, "explanation": kept}).explanation == kept
    long = ari.Schedule.from_json({**data, "error": "e" * 5000})
    assert long.error == "e" * ari.MAX_ERROR


@pytest.mark.parametrize(("data", "message"), [
    ("x", "ari is not an object"),
    ({"serial": "xy", "next_fetch": NOW.isoformat()}, "ari.serial is not a serial number"),
    ({"serial": "ab"}, "ari.next_fetch is not a time"),
    ({"serial": "ab", "next_fetch": NOW.isoformat(), "start": "x"}, "ari.start is not a time"),
    ({"serial": "ab", "next_fetch": NOW.isoformat(), "end": 5}, "ari.end is not a time"),
    ({"serial": "ab", "next_fetch": NOW.isoformat(), "chosen": "2026-12-01T00:00:00"},
     "ari.chosen has no time zone"),
    ({"serial": "ab", "next_fetch": NOW.isoformat(), "error": 5}, "ari.error is not a string"),
])
def test_a_damaged_schedule_names_the_field(data: object, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        ari.Schedule.from_json(data)
    assert str(caught.value) == message


@pytest.mark.parametrize(("start", "end"), [
    ("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:01+14:00"),   # the year 0 in UTC
    ("2026-12-01T00:00:00Z", "9999-12-31T23:59:59-14:00"),         # the year 10000
])
def test_a_window_that_is_no_time_in_utc_is_refused(start: str, end: str) -> None:
    """Valid RFC 3339, but no datetime in UTC: kept, it made every later comparison raise,
    for the whole fleet, on every run."""
    with pytest.raises(MalformedMessage, match=r"renewalInfo: (start|end) is out of range"):
        ari.parse_window(window(start, end))


def test_a_stored_schedule_that_is_no_time_in_utc_is_refused() -> None:
    good = ari.Schedule("abc", NOW, START, END, START).to_json()
    for key in ("next_fetch", "start", "end", "chosen"):
        with pytest.raises(RecordError, match=f"ari.{key} is out of range"):
            ari.Schedule.from_json({**good, key: "0001-01-01T00:00:00+14:00"})
