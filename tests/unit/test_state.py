"""The state record: its transitions, and reading it back bounded and checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certfleet.protocol import ari
from certfleet.protocol.backoff import STEPS
from certfleet.state import INTERRUPTED, MAX_ERROR, CertState, StateDamaged

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
    {"ari": {"serial": "ab"}},
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
