"""A failing certificate is left alone for a growing while; --force overrides; success clears."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .fleet_helpers import orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration


def test_backoff_after_failures(pebble_lab_factory: Any, tmp_path: Path) -> None:
    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    lab.add_a("flaky.example.com", "127.0.0.2")
    domains = tmp_path / "domains.txt"
    domains.write_text("flaky.example.com\nfine.example.com\n")
    config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains)
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    assert out.splitlines()[0].startswith("flaky.example.com: failed: flaky.example.com: "
                                          "validation failed")
    state = json.loads((tmp_path / "state" / "certs" / "flaky.example.com" /
                        "state.json").read_text())
    first = state["backoff"]
    assert first["failures"] == 1
    wait = datetime.fromisoformat(first["until"]) - datetime.now(UTC)
    assert 200 < wait.total_seconds() <= 300
    orders = orders_seen(lab)

    # cron, a minute later: the failing certificate is not retried, and says until when.
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    assert out.splitlines()[0].startswith("flaky.example.com: failed: next attempt after ")
    assert "last failure: flaky.example.com: validation failed" in out
    assert out.splitlines()[1].startswith("fine.example.com: not due until ")
    assert orders_seen(lab) == orders

    # --force overrides the wait; a second failure doubles down on it.
    rc, out = run_cli("run", "--config", str(config), "--force", "flaky.example.com")
    assert rc == 1
    assert orders_seen(lab) == orders + 1
    second = json.loads((tmp_path / "state" / "certs" / "flaky.example.com" /
                         "state.json").read_text())["backoff"]
    assert second["failures"] == 2
    assert datetime.fromisoformat(second["until"]) - datetime.now(UTC) > \
        datetime.fromisoformat(first["until"]) - datetime.now(UTC)

    # Fixed, and forced once more: success clears the backoff.
    lab.clear_a("flaky.example.com")
    rc, out = run_cli("run", "--config", str(config), "--force", "flaky.example.com")
    assert rc == 0, out
    state = json.loads((tmp_path / "state" / "certs" / "flaky.example.com" /
                        "state.json").read_text())
    assert "backoff" not in state
    assert state["last"]["result"] == "issued"
