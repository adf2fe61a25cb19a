"""The state record: its transitions, and reading it back bounded and checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from certfleet.protocol import ari
from certfleet.protocol.backoff import STEPS
from certfleet.state import (
    INTERRUPTED,
    MAX_ERROR,
    MAX_NAMES,
    MAX_TARGET_KEY,
    MAX_TARGETS,
    MAX_URL,
    CertState,
    DeployRecord,
    Revocation,
    StateDamaged,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_a_failure_after_asking_the_ca_waits_and_a_success_clears_it() -> None:
    state = CertState().after_attempt(NOW, "renewed", "boom", asked_ca=True)
    assert state.last is not None
    assert state.last.result == "failed"
    assert state.waiting_until(NOW) == NOW + STEPS[0]
    state = state.after_attempt(NOW, "renewed", "boom again", asked_ca=True, retry_after=7200)
    assert state.backoff is not None
    assert state.backoff.failures == 2
    assert state.waiting_until(NOW) == NOW + timedelta(hours=2)
    state = state.after_attempt(NOW, "renewed")
    assert state.backoff is None
    assert state.last is not None
    assert state.last.result == "renewed"


def test_a_failure_without_asking_the_ca_does_not_wait() -> None:
    state = CertState().after_attempt(NOW, "failed", "no way to answer http-01")
    assert state.backoff is None
    assert state.last is not None


def test_deploys_are_marked_then_recorded() -> None:
    state = CertState().deploying(["a", "b"], NOW)
    assert state.deployed_serial("a") is None
    assert state.deploys["a"].error == INTERRUPTED
    state = state.deployed("a", NOW, 0xFF, 3).deploy_failed("b", NOW, "down")
    assert state.deployed_serial("a") == "ff"
    assert state.deployed_serial("b") is None
    assert state.forget_targets(["a"]).deploys.keys() == {"a"}


def test_revocation_sent_counts_until_confirmed() -> None:
    state = CertState().revoking(0x10, NOW)
    assert state.is_revoked(0x10)
    assert not state.is_revoked(0x11)
    assert state.revocation is not None
    assert not state.revocation.confirmed
    state = state.revoked(0x10, NOW)
    assert state.revocation is not None
    assert state.revocation.confirmed


def test_round_trip() -> None:
    window = ari.schedule(None, 0xAB, NOW, NOW + timedelta(days=1), "https://ca/why",
                          NOW + timedelta(hours=6), 0.5)
    state = (CertState().with_order("https://ca/order/1", ["a.example", "b.example"])
             .with_ari(window).after_attempt(NOW, "issued", "x", asked_ca=True)
             .deploying(["h:/d"], NOW).deployed("h:/d", NOW, 0xAB, 2).revoking(0xAB, NOW))
    assert CertState.from_json(state.to_json()) == state


def test_values_from_the_ca_are_bounded() -> None:
    state = CertState().after_attempt(NOW, "failed", "e" * 10**6, asked_ca=True)
    assert state.last is not None
    assert len(state.last.error or "") == MAX_ERROR
    assert state.backoff is not None
    assert len(state.backoff.error) <= MAX_ERROR
    _start, _end, explanation = ari.parse_window({
        "suggestedWindow": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"},
        "explanationURL": "https://ca/" + "x" * 10**6})
    assert explanation is None
    _, _, explanation = ari.parse_window({
        "suggestedWindow": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"},
        "explanationURL": "https://ca/\x1b]0;owned\x07"})
    assert explanation is None
    # A record written before the bounds existed is cut on the way in.
    data = {"last": {"at": NOW.isoformat(), "result": "failed", "error": "e" * 10**5}}
    assert len(CertState.from_json(data).last.error or "") == MAX_ERROR  # type: ignore[union-attr]


@pytest.mark.parametrize("data", [
    [], {"last": []}, {"last": {"at": NOW.isoformat(), "result": "exploded"}},
    {"order": {"url": "u", "names": "a.example"}}, {"deploy": {"k": {"at": NOW.isoformat(),
                                                                   "serial": "zz"}}},
    {"deploy": {"k": {"at": NOW.isoformat(), "serial": "ab", "version": -1}}},
    {"revocation": {"serial": "ab", "at": "yesterday"}},
])
def test_damaged_records_name_the_field(data: object) -> None:
    with pytest.raises(StateDamaged):
        CertState.from_json(data)


def test_ari_failure_keeps_a_known_window() -> None:
    window = ari.schedule(None, 0xAB, NOW, NOW + timedelta(days=1), None,
                          NOW + timedelta(hours=6), 0.25)
    failed = ari.failed(window, 0xAB, "timed out", NOW + ari.FAILED_RECHECK)
    assert ari.chosen_time(failed, 0xAB) == window.chosen
    assert failed.error == "timed out"
    assert ari.chosen_time(ari.failed(window, 0xAC, "x", NOW), 0xAC) is None


# -- every transition survives the trip through state.json ---------------------------------------

def test_every_kind_of_record_round_trips() -> None:
    window = ari.failed(None, 0xAB, "timed out", NOW + ari.FAILED_RECHECK)
    state = (CertState().with_ari(window).after_attempt(NOW, "renewed")
             .deploying(["web1:/a", "web2:/b", "/c"], NOW)
             .deployed("web1:/a", NOW + timedelta(seconds=5), 0xAB, 7)
             .deploy_failed("web2:/b", NOW + timedelta(seconds=6), "web2: cannot connect")
             .revoked(0xAB, NOW).alarmed(NOW + timedelta(seconds=7)))
    assert state.ari == window
    assert state.alarm_at == NOW + timedelta(seconds=7)
    assert state.deploys["/c"] == DeployRecord(NOW, error=INTERRUPTED)
    assert state.deploys["web2:/b"] == DeployRecord(NOW + timedelta(seconds=6),
                                                    error="web2: cannot connect")
    assert state.to_json() == {
        "last": {"at": NOW.isoformat(), "result": "renewed", "error": None},
        "ari": window.to_json(),
        "deploy": {"web1:/a": {"at": (NOW + timedelta(seconds=5)).isoformat(), "serial": "ab",
                               "version": 7},
                   "web2:/b": {"at": (NOW + timedelta(seconds=6)).isoformat(),
                               "error": "web2: cannot connect"},
                   "/c": {"at": NOW.isoformat(), "error": INTERRUPTED}},
        "revocation": {"serial": "ab", "at": NOW.isoformat(), "confirmed": True},
        "alarm_at": (NOW + timedelta(seconds=7)).isoformat(),
    }
    back = CertState.from_json(json.loads(json.dumps(state.to_json())))
    assert back == state
    assert back.deployed_serial("web1:/a") == "ab"
    assert back.deployed_serial("web2:/b") is None
    assert back.deployed_serial("/c") is None
    assert back.deployed_serial("elsewhere") is None


def test_the_expiry_alarm_goes_off_at_most_once_a_day() -> None:
    assert CertState().may_alarm(NOW)
    rang = CertState().alarmed(NOW)
    assert not rang.may_alarm(NOW)
    assert not rang.may_alarm(NOW + timedelta(days=1) - timedelta(seconds=1))
    assert rang.may_alarm(NOW + timedelta(days=1))
    # A clock set back (the alarm seems to be in the future) does not silence it.
    assert rang.may_alarm(NOW - timedelta(seconds=1))


def test_an_empty_record_is_an_empty_object() -> None:
    assert CertState().to_json() == {}
    assert CertState.from_json({}) == CertState()


def test_a_record_with_an_error_is_not_a_deploy_whatever_serial_it_names() -> None:
    failed = DeployRecord(NOW, "ab", 1, error="files in place, reload failed")
    assert not failed.ok
    assert CertState(deploys={"t": failed}).deployed_serial("t") is None
    assert CertState(deploys={"t": DeployRecord(NOW)}).deployed_serial("t") is None


def test_a_deploy_error_is_bounded() -> None:
    state = CertState().deploy_failed("t", NOW, "e" * 5000)
    assert state.deploys["t"].error == "e" * MAX_ERROR
    data = {"deploy": {"t": {"at": NOW.isoformat(), "error": "e" * 5000}}}
    assert CertState.from_json(data).deploys["t"].error == "e" * MAX_ERROR


def test_bounds_on_the_way_in() -> None:
    long_key = "web1:/" + "d" * 2000
    data = {"deploy": {long_key: {"at": NOW.isoformat(), "serial": "ab", "version": 1}},
            "order": {"url": "https://ca/" + "o" * 3000, "names": ["n.example"] * 150}}
    state = CertState.from_json(data)
    assert list(state.deploys) == [long_key[:MAX_TARGET_KEY]]
    assert state.order is not None
    assert len(state.order.url) == MAX_URL
    assert len(state.order.names) == MAX_NAMES
    targets = {f"t{i}": {"at": NOW.isoformat(), "error": "x"} for i in range(MAX_TARGETS)}
    assert len(CertState.from_json({"deploy": targets}).deploys) == MAX_TARGETS
    targets["one more"] = targets["t0"]
    with pytest.raises(StateDamaged, match=f"^deploy has more than {MAX_TARGETS} targets$"):
        CertState.from_json({"deploy": targets})


def test_confirmed_only_when_true() -> None:
    for value, confirmed in ((True, True), ("true", False), (1, False), (None, False)):
        data = {"revocation": {"serial": "ab", "at": NOW.isoformat(), "confirmed": value}}
        revocation = CertState.from_json(data).revocation
        assert revocation == Revocation("ab", NOW, confirmed)


AT = NOW.isoformat()
LONG = "k" * 100


@pytest.mark.parametrize(("data", "message"), [
    ([], "the record is not an object"),
    ({"last": []}, "last is not an object"),
    ({"last": {"at": AT, "result": 5}}, "last.result is not a string"),
    ({"last": {"at": AT, "result": "exploded"}}, "last.result is not a known result"),
    ({"last": {"at": AT, "result": "issuedXXXXXXXXXXXXXXXXX"}},
     "last.result is not a known result"),
    ({"last": {"at": "yesterday", "result": "issued"}}, "last.at is not a time"),
    ({"last": {"at": AT, "result": "failed", "error": 5}}, "last.error is not a string"),
    ({"backoff": {"failures": 0}}, "backoff.failures is not a positive integer"),
    ({"order": "u"}, "order is not an object"),
    ({"order": {"url": "u", "names": "a.example"}}, "order.names is not a list of names"),
    ({"order": {"url": "u", "names": ["a.example", 5]}}, "order.names is not a list of names"),
    ({"order": {"url": 5, "names": []}}, "order.url is not a string"),
    ({"deploy": []}, "deploy is not an object"),
    ({"deploy": {5: {"at": AT, "error": "x"}}}, "deploy key is not a string"),
    ({"deploy": {"k": "x"}}, "deploy['k'] is not an object"),
    ({"deploy": {"k": {"at": 5, "error": "x"}}}, "deploy['k'].at is not a time"),
    ({"deploy": {"k": {"at": AT, "error": 5}}}, "deploy['k'].error is not a string"),
    ({"deploy": {"k": {"at": AT, "serial": "zz", "version": 1}}},
     "deploy['k'].serial is not a serial number"),
    ({"deploy": {"k": {"at": AT, "serial": "ab", "version": -1}}},
     "deploy['k'].version is not a version number"),
    ({"deploy": {"k": {"at": AT, "serial": "ab", "version": True}}},
     "deploy['k'].version is not a version number"),
    ({"deploy": {"k": {"at": AT, "serial": "ab", "version": "1"}}},
     "deploy['k'].version is not a version number"),
    ({"deploy": {LONG: {"at": AT, "serial": "ab"}}},
     f"deploy[{LONG[:80]!r}].version is not a version number"),
    ({"revocation": 5}, "revocation is not an object"),
    ({"alarm_at": "yesterday"}, "alarm_at is not a time"),
    ({"alarm_at": "0001-01-01T00:00:00+14:00"}, "alarm_at is out of range"),
    ({"last": {"at": "9999-12-31T23:59:59-14:00", "result": "issued"}},
     "last.at is out of range"),
    ({"revocation": {"serial": "AB", "at": AT}}, "revocation.serial is not a serial number"),
    ({"revocation": {"serial": "ab", "at": "yesterday"}}, "revocation.at is not a time"),
])
def test_damaged_records_name_the_field_at_fault(data: object, message: str) -> None:
    with pytest.raises(StateDamaged) as caught:
        CertState.from_json(data)
    assert str(caught.value) == message


def test_a_deploy_record_of_version_zero_is_read() -> None:
    """The rule is "a non-negative integer": only what is below it is damage."""
    data = {"deploy": {"k": {"at": AT, "serial": "ab", "version": 0}}}
    assert CertState.from_json(data).deploys["k"] == DeployRecord(NOW, "ab", 0)


@pytest.mark.parametrize("schedule", [
    5, {"serial": "ab"}, {"serial": "ab", "next_fetch": "0001-01-01T00:00:00+14:00"},
    {"serial": "ab", "next_fetch": AT, "start": "0001-01-01T00:00:00+14:00",
     "end": "0001-01-01T00:00:01+14:00", "chosen": "0001-01-01T00:00:00+14:00"},
])
def test_an_ari_schedule_that_cannot_be_read_is_dropped_not_the_record(
        schedule: object) -> None:
    """The CA's advice, asked again on the next run: a window a hostile CA made once must
    not make the certificate's record damaged until someone edits it."""
    data = {"ari": schedule, "alarm_at": AT}
    state = CertState.from_json(data)
    assert state.ari is None
    assert state.alarm_at == NOW
