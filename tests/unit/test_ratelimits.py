"""The CA's limits as a run keeps them: the new-order ledger, the planning of a run within
it, and the request-rate budget (with its clock injected, never measured)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certfleet import acme_client
from certfleet.acme_client import RateBudget
from certfleet.plan import CertPlan
from certfleet.ratelimits import (
    MAX_LEDGER,
    CaLimits,
    Ledger,
    budget,
    ledger_from_json,
    ledger_to_json,
)
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


def test_the_window_ends_where_room_at_says() -> None:
    """An order counts for exactly one window: from the moment ``room_at`` names, it no
    longer does. One recorded up to a window ahead (a clock set back since) counts too;
    further ahead, it is junk."""
    placed = NOW - timedelta(hours=1)
    ledger = Ledger((placed,))
    one = CaLimits(1.0, 1)
    assert ledger.left(one, NOW) == 0
    at = ledger.room_at(one, NOW, 1)
    assert at == placed + one.window
    assert ledger.left(one, at) == 1
    assert ledger.left(one, at - timedelta(microseconds=1)) == 0
    assert Ledger((NOW + one.window,)).left(one, NOW) == 0
    assert Ledger((NOW + one.window + timedelta(microseconds=1),)).left(one, NOW) == 1


def test_room_comes_back_when_the_oldest_leave_the_window() -> None:
    oldest = NOW - timedelta(hours=2, minutes=30)
    ledger = Ledger((oldest,) + (NOW - timedelta(hours=1),) * 299)
    assert ledger.left(LE, NOW) == 0
    assert ledger.room_at(LE, NOW, 1) == oldest + timedelta(hours=3)
    assert _ledger(10).room_at(LE, NOW, 5) == NOW
    assert Ledger().room_at(LE, NOW, 301) == NOW + timedelta(hours=3)


def test_room_at_the_edges_of_the_limit() -> None:
    two = CaLimits(1.0, 2)
    older, newer = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    ledger = Ledger((older, newer))
    assert _ledger(10).room_at(LE, NOW, 290) == NOW             # exactly fills the window
    assert ledger.room_at(two, NOW, 1) == older + timedelta(hours=3)
    assert ledger.room_at(two, NOW, 2) == newer + timedelta(hours=3)   # both must leave
    assert ledger.room_at(two, NOW, 3) == NOW + timedelta(hours=3)     # and one of ours


def test_a_run_larger_than_the_whole_limit_on_an_empty_ledger() -> None:
    plans = [_plan(f"s{i}.test") for i in range(5)]
    out = budget(plans, {p.name: CA for p in plans}, {CA: CaLimits(50.0, 2)}, {}, NOW)
    assert [p.deferred is None for p in out] == [True, True, False, False, False]
    assert "room for more from 2026-11-29 15:00 UTC" in (out[2].deferred or "")


def test_a_run_within_the_room_is_left_alone() -> None:
    plans = [_plan(f"s{i}.test") for i in range(20)]
    out = budget(plans, {p.name: CA for p in plans}, {CA: LE}, {CA: _ledger(280)}, NOW)
    assert out == plans


def test_the_deferral_names_when_the_oldest_order_leaves_the_window() -> None:
    # 298 placed: the oldest near the end of the window, the others recent. This run
    # takes the 2 left; one more fits when the oldest leaves, not the second oldest.
    oldest = NOW - timedelta(hours=2, minutes=50)
    ledger = Ledger((oldest,) + (NOW - timedelta(minutes=10),) * 297)
    plans = [_plan(f"s{i}.test") for i in range(3)]
    out = budget(plans, {p.name: CA for p in plans}, {CA: LE}, {CA: ledger}, NOW)
    assert "room for more from 2026-11-29 12:10 UTC" in (out[2].deferred or "")


def test_a_one_hour_window_is_named_as_such() -> None:
    plans = [_plan(f"s{i}.test") for i in range(2)]
    for window, named in ((timedelta(hours=1), "per hour;"), (timedelta(hours=2), "per 2 hours;"),
                          (timedelta(minutes=90), "per 5400 s;")):
        out = budget(plans, {p.name: CA for p in plans}, {CA: CaLimits(1.0, 1, window)}, {},
                     NOW)
        assert f"allows 1 new orders per account {named}" in (out[1].deferred or "")


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


def test_changes_in_turn_keep_every_order(tmp_path: Path) -> None:
    """Overlapping runs change the ledger under its lock: none loses another's orders.
    Each change waits a little between its read and its write, where a lost update
    would happen without the lock."""
    def add(at: datetime) -> Callable[[Ledger], Ledger]:
        def how(ledger: Ledger) -> Ledger:
            time.sleep(0.002)
            return ledger.with_orders([at], NOW, LE.window)
        return how

    def run(offset: int) -> None:
        for i in range(10):
            disk.change(tmp_path, add(NOW - timedelta(seconds=offset + i)))

    threads = [threading.Thread(target=run, args=(offset,)) for offset in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(disk.read(tmp_path).placed) == 20
    assert sorted(os.listdir(tmp_path)) == ["orders.json", "orders.lock"]   # all it touches


def test_a_full_ledger_reads_back(tmp_path: Path) -> None:
    full = Ledger(tuple(NOW - timedelta(seconds=i) for i in range(MAX_LEDGER)))
    disk.change(tmp_path, lambda _: full)
    assert (tmp_path / "orders.json").stat().st_size > 1 << 20
    assert disk.read(tmp_path) == full


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


def test_the_request_budget_spends_its_burst_then_its_refill(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact schedule at 10 requests/s (a burst of 2.5): what is there goes at once,
    a request short of a token waits just for the missing part, and time spent idle
    refills the bucket up to the burst."""
    clock = _Clock()
    monkeypatch.setattr(acme_client.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(acme_client.asyncio, "sleep", clock.sleep)
    stamps: list[float] = []

    async def scenario() -> None:
        bucket = RateBudget(10.0)
        for _ in range(4):
            await bucket.take()
            stamps.append(clock.now)
        clock.now += 0.25                      # idle: 2.5 tokens back, no more
        for _ in range(3):
            await bucket.take()
            stamps.append(clock.now)
        clock.now += 0.08                      # 0.8 of a token back
        await bucket.take()
        stamps.append(clock.now)

    asyncio.run(scenario())
    start = 1000.0
    assert stamps == pytest.approx([start, start, start + 0.05, start + 0.15,
                                    start + 0.40, start + 0.40, start + 0.45, start + 0.55])
