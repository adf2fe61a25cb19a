"""The CA's limits as a run keeps them: the new-order ledger, the planning of a run within
it, and the request-rate budget (with its clock injected, never measured)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certfleet import acme_client
from certfleet.acme_client import RateBudget
from certfleet.plan import CertPlan
from certfleet.ratelimits import CaLimits, Ledger, budget, ledger_from_json, ledger_to_json
from certfleet.spec import CertSpec
from certfleet.store import ledger as disk

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LE = CaLimits(200.0, 300, timedelta(hours=3))
CA = "https://ca.test/dir"


def _plan(name: str, renew_at: datetime | None = None, due: str | None = "new") -> CertPlan:
    return CertPlan(CertSpec(names=(name,)), due, renew_at, ())


def _ledger(count: int, at: datetime = NOW - timedelta(minutes=10)) -> Ledger:
    return Ledger(tuple([at] * count))


def test_orders_left_counts_only_the_window() -> None:
    ledger = Ledger((NOW - timedelta(hours=4),) * 50 + (NOW - timedelta(hours=1),) * 280)
    assert ledger.left(LE, NOW) == 20
    assert ledger.left(CaLimits(100.0), NOW) is None


def test_room_comes_back_when_the_oldest_leave_the_window() -> None:
    oldest = NOW - timedelta(hours=2, minutes=30)
    ledger = Ledger((oldest,) + (NOW - timedelta(hours=1),) * 299)
    assert ledger.left(LE, NOW) == 0
    assert ledger.room_at(LE, NOW, 1) == oldest + timedelta(hours=3)
    assert _ledger(10).room_at(LE, NOW, 5) == NOW
    assert Ledger().room_at(LE, NOW, 301) == NOW + timedelta(hours=3)


def test_a_run_larger_than_the_whole_limit_on_an_empty_ledger() -> None:
    plans = [_plan(f"s{i}.test") for i in range(5)]
    out = budget(plans, {p.name: CA for p in plans}, {CA: CaLimits(50.0, 2)}, {}, NOW)
    assert [p.deferred is None for p in out] == [True, True, False, False, False]
    assert "room for more from 2026-11-29 15:00 UTC" in (out[2].deferred or "")


def test_a_run_within_the_room_is_left_alone() -> None:
    plans = [_plan(f"s{i}.test") for i in range(20)]
    out = budget(plans, {p.name: CA for p in plans}, {CA: LE}, {CA: _ledger(280)}, NOW)
    assert out == plans


def test_beyond_the_room_the_least_urgent_are_deferred() -> None:
    soon, later = NOW + timedelta(days=1), NOW + timedelta(days=20)
    plans = [_plan("late.test", later, "renewal window"), _plan("new.test"),
             _plan("soon.test", soon, "renewal window"), _plan("fine.test", None, None)]
    ca_of = {p.name: CA for p in plans}
    out = {p.name: p for p in budget(plans, ca_of, {CA: LE}, {CA: _ledger(298)}, NOW)}
    assert out["new.test"].due == "new"
    assert out["new.test"].deferred is None
    assert out["soon.test"].due
    assert out["soon.test"].deferred is None
    assert out["late.test"].due is None
    note = out["late.test"].deferred or ""
    assert "300 new orders per account per 3 hours" in note
    assert "3 are due and 2 left now" in note
    assert (NOW - timedelta(minutes=10) + timedelta(hours=3)).strftime("%H:%M") in note
    assert out["fine.test"] == plans[3]


def test_each_ca_has_its_own_room() -> None:
    other = "https://other.test/dir"
    plans = [_plan("a.test"), _plan("b.test")]
    out = budget(plans, {"a.test": CA, "b.test": other},
                 {CA: LE, other: CaLimits(10.0, 1)}, {other: _ledger(1)}, NOW)
    assert [p.deferred is None for p in out] == [True, False]


def test_a_ca_without_an_order_limit_defers_nothing() -> None:
    plans = [_plan(f"s{i}.test") for i in range(5)]
    assert budget(plans, {p.name: CA for p in plans}, {CA: CaLimits(5.0)}, {}, NOW) == plans
    assert budget(plans, {p.name: CA for p in plans}, {}, {}, NOW) == plans


def test_a_reservation_is_given_back_exactly() -> None:
    ledger = _ledger(3).with_orders([NOW] * 4, NOW, LE.window)
    assert len(ledger.placed) == 7
    settled = ledger.without([NOW] * 4).with_orders([NOW] * 1, NOW, LE.window)
    assert settled.left(LE, NOW) == 300 - 4


def test_the_ledger_survives_its_json_and_skips_junk() -> None:
    ledger = _ledger(2)
    assert ledger_from_json(ledger_to_json(ledger)) == ledger
    junk = {"placed": ["yesterday", 5, None, "2026-11-29T11:00:00", NOW.isoformat()]}
    assert ledger_from_json(junk) == Ledger((NOW,))
    assert ledger_from_json([1, 2]) == Ledger()


def test_the_ledger_on_disk(tmp_path: Path) -> None:
    assert disk.read(tmp_path) == Ledger()
    disk.change(tmp_path, lambda ledger: ledger.with_orders([NOW], NOW, LE.window))
    assert disk.read(tmp_path) == Ledger((NOW,))
    assert (tmp_path / "orders.json").stat().st_mode & 0o777 == 0o600
    (tmp_path / "orders.json").write_text("{not json")
    assert disk.read(tmp_path) == Ledger()


class _Clock:
    """A monotonic clock that moves only when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("rate", [0.5, 5.0, 200.0])
def test_the_request_budget_never_exceeds_its_rate(monkeypatch: pytest.MonkeyPatch,
                                                   rate: float) -> None:
    clock = _Clock()
    monkeypatch.setattr(acme_client.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(acme_client.asyncio, "sleep", clock.sleep)
    stamps: list[float] = []

    async def scenario() -> None:
        bucket = RateBudget(rate)

        async def one() -> None:
            await bucket.take()
            stamps.append(clock.now)

        await asyncio.gather(*(one() for _ in range(int(rate * 2) + 6)))

    asyncio.run(scenario())
    burst = max(1.0, rate / 4)
    # In any span of time t, at most burst + rate * t requests went out.
    for i, start in enumerate(stamps):
        for j in range(i, len(stamps)):
            assert j - i + 1 <= burst + rate * (stamps[j] - start) + 1e-6
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] >= (len(stamps) - burst) / rate - 1e-6
