"""A CA's limits against real Pebble: the new-order budget across runs, and the request
rate a run keeps to."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .fleet_helpers import by_name, orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration


def _ca(lab: Any, **values: Any) -> dict[str, Any]:
    return {"directory": lab.directory_url, "ca_bundle": str(lab.ca_bundle), **values}


def _ledger(state: Path) -> list[datetime]:
    (account,) = (state / "accounts").iterdir()
    data = json.loads((account / "orders.json").read_text())
    return [datetime.fromisoformat(t) for t in data["placed"]]


def test_new_orders_beyond_the_limit_wait_for_a_later_run(pebble_lab_factory: Any,
                                                           tmp_path: Path) -> None:
    lab = pebble_lab_factory()
    domains = tmp_path / "domains.txt"
    domains.write_text("a.limit.example\nb.limit.example\nc.limit.example\n")
    config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                          sections={"ca": _ca(lab, new_order_limit=2, new_order_window=3600)})

    # The plan says so before anything is ordered.
    rc, out = run_cli("run", "--dry-run", "--config", str(config))
    assert rc == 0
    lines = by_name(out)
    assert "will be ordered" in lines["a.limit.example"]
    assert "will be ordered" in lines["b.limit.example"]
    assert lines["c.limit.example"].startswith(
        "c.limit.example: deferred: ")
    assert "allows 2 new orders per account per hour; " \
        "3 are due and 2 left now" in lines["c.limit.example"]

    before = datetime.now(UTC)
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    lines = by_name(out)
    assert lines["a.limit.example"].startswith("a.limit.example: issued")
    assert lines["b.limit.example"].startswith("b.limit.example: issued")
    assert "deferred: " in lines["c.limit.example"]
    assert "1 deferred" in lines[""]
    assert "2 issued" in lines[""]
    assert orders_seen(lab) == 2
    placed = _ledger(tmp_path / "state")
    assert len(placed) == 2
    assert all(before <= t <= datetime.now(UTC) for t in placed)

    # cron again: nothing left in the window, so nothing is ordered; the time named is
    # when the first order leaves the window.
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 2, out
    assert orders_seen(lab) == 2
    room = re.search(r"room for more from (\S+ \S+) UTC", by_name(out)["c.limit.example"])
    assert room is not None
    when = datetime.strptime(room.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs(when - (min(placed) + timedelta(hours=1))) < timedelta(minutes=1)

    # The window passes (the ledger says so): the last one is ordered.
    aged = {"placed": [(t - timedelta(hours=2)).isoformat() for t in placed]}
    (account,) = (tmp_path / "state" / "accounts").iterdir()
    (account / "orders.json").write_text(json.dumps(aged))
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert by_name(out)["c.limit.example"].startswith("c.limit.example: issued")
    assert orders_seen(lab) == 3
    assert len(_ledger(tmp_path / "state")) == 1  # the aged ones left the window


def test_a_run_keeps_to_the_request_rate(pebble_lab_factory: Any, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """Two requests a second: a run of N requests cannot take less than (N - 1) / 2
    seconds (the bucket holds one). A lower bound only: a slow machine passes too."""
    lab = pebble_lab_factory(env={"PEBBLE_VA_NOSLEEP": "1"},
                             config={"retryAfter": {"authz": 0, "order": 0}})
    domains = tmp_path / "domains.txt"
    domains.write_text("rate.example\n")
    config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                          sections={"ca": _ca(lab, request_rate=2)})
    start = time.monotonic()
    rc, out = run_cli("run", "-v", "--config", str(config))
    elapsed = time.monotonic() - start
    assert rc == 0, out
    found = re.search(r"(\d+) requests to the CA", caplog.text)
    assert found is not None, caplog.text
    requests = int(found.group(1))
    assert requests >= 7
    assert elapsed >= (requests - 1) / 2
