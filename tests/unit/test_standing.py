"""A certificate's standing: derived once from its records, the same after the index's JSON,
and what planning decides from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certfleet.protocol.ari import Schedule
from certfleet.standing import NOTHING, Standing, from_json, of
from certfleet.state import CertState
from certfleet.store import VersionMeta

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()       # the first second of year 1
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _meta(serial: int = 0xABC) -> VersionMeta:
    return VersionMeta(
        version=3, names=("a.example", "www.a.example"), key_type="ec256", serial=serial,
        not_before=(NOW - timedelta(days=10)).isoformat(),
        not_after=(NOW + timedelta(days=80)).isoformat(), issuer="CN=CA", aki="00ff",
        issued_at=(NOW - timedelta(days=10)).isoformat(), directory="https://ca/dir",
        order_url="https://ca/order/1")


def _states() -> list[CertState]:
    base = CertState()
    ari = Schedule(serial="abc", next_fetch=NOW + timedelta(hours=6), start=NOW,
                   end=NOW + timedelta(days=2), chosen=NOW + timedelta(days=1),
                   explanation=None, error=None)
    return [
        base,
        base.after_attempt(NOW, "renewed", "boom", asked_ca=True),
        base.deployed("lb1:/etc/ssl", NOW, 0xABC, 3).deployed("lb2:/etc/ssl", NOW, 0xAB0, 2)
            .deploy_failed("lb3:/etc/ssl", NOW, "refused"),
        base.revoked(0xABC, NOW).alarmed(NOW),
        base.with_ari(ari),
        base.with_ari(Schedule(serial="999", next_fetch=NOW, start=None, end=None,
                               chosen=NOW, explanation=None, error="old")),
    ]


@pytest.mark.parametrize("state", _states())
def test_the_index_form_reads_back_the_same(state: CertState) -> None:
    held = of(_meta(), state)
    assert from_json(held.to_json()) == held
    assert from_json(of(None, state).to_json()) == of(None, state)


def test_what_a_standing_says() -> None:
    states = _states()
    failing = of(_meta(), states[1])
    assert failing.failures == 1
    assert failing.last_error == "boom"
    assert failing.waiting(NOW) == NOW + timedelta(minutes=5)
    assert failing.waiting(NOW + timedelta(hours=1)) is None
    assert of(_meta(), states[2]).deployed == {"lb1:/etc/ssl"}  # only the current serial
    assert of(_meta(), states[3]).revoked
    assert of(_meta(0xDEF), states[3]).revoked is False       # another serial's revocation
    assert of(_meta(), states[4]).ari_chosen == (NOW + timedelta(days=1)).timestamp()
    assert not of(_meta(), states[4]).ari_due(NOW)
    assert of(_meta(), states[4]).ari_due(NOW + timedelta(hours=6))   # the time it names
    assert of(_meta(), states[4]).ari_due(NOW + timedelta(hours=7))
    assert of(_meta(), states[5]).ari_chosen is None           # a window for another serial
    assert of(_meta(), states[5]).ari_due(NOW)
    assert of(None, CertState()) == NOTHING
    assert of(_meta(), states[3]).alarm_at == NOW.timestamp()
    never = of(None, states[1].alarmed(NOW))       # failed before anything was issued
    assert (never.failures, never.last_error, never.alarm_at) == (1, "boom", NOW.timestamp())
    assert never.waiting_until == (NOW + timedelta(minutes=5)).timestamp()
    assert not NOTHING.ari_due(NOW)


def _with(index: int, value: object) -> list[object]:
    """A good entry with one field changed."""
    entry = of(_meta(), CertState()).to_json()
    entry[index] = value
    return entry


@pytest.mark.parametrize("bad", [
    None, {}, [], [1] * len(Standing._fields), of(_meta(), CertState()).to_json()[:-1],
    _with(2, "zz top"), _with(3, "2026-01-01"), _with(3, float("inf")), _with(11, True),
    _with(11, -1), _with(10, ["x" * 2000]), _with(0, "a.example"), _with(13, 5),
    _with(1, 5), _with(2, 2748), _with(6, 1), _with(9, 0), _with(10, "lb1:/etc/ssl"),
    _with(4, "2026-01-01"), _with(5, None), _with(12, "soon"), _with(3, EARLIEST - 1),
    _with(3, LATEST + 1), _with(13, "e" * 1001), _with(10, ["x" * 1401]), _with(0, [5]),
    _with(10, [5]),
    # the times that may be missing (ARI's chosen time and next fetch, the back-off's end,
    # the alarm): each checked, at each bound
    _with(7, "soon"), _with(8, "soon"), _with(14, "soon"),
    _with(7, LATEST + 1), _with(7, EARLIEST - 1), _with(12, LATEST + 0.5),
    _with(12, EARLIEST - 0.5), _with(12, -1e11), _with(12, 1e12),
])
def test_an_entry_that_is_not_a_standing_is_refused(bad: object) -> None:
    assert from_json(bad) is None


@pytest.mark.parametrize("good", [
    _with(13, "e" * 1000), _with(10, ["x" * 1400]), _with(3, EARLIEST), _with(3, LATEST),
    _with(12, EARLIEST), _with(12, LATEST), _with(7, LATEST), _with(7, EARLIEST),
    _with(7, None), _with(14, None),
])
def test_an_entry_at_the_bounds_is_read(good: list[object]) -> None:
    """... and each of its times is a datetime again (years 1 to 9999): a time that is not
    would raise in planning, for every run of the fleet."""
    standing = from_json(good)
    assert standing is not None
    for value in (standing.not_before, standing.not_after, standing.issued_at,
                  standing.ari_chosen, standing.ari_fetch_at, standing.waiting_until,
                  standing.alarm_at):
        if value is not None:
            assert standing.time(value).tzinfo is UTC
