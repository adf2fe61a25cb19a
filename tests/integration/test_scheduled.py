"""What a scheduled run needs: silence when there is nothing to do, and a second run over
the whole fleet stepping aside at once."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli import run_main

from .fleet_helpers import write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def config(pebble: Any, tmp_path: Path) -> Path:
    domains = tmp_path / "domains.txt"
    domains.write_text("quiet1.example.com\nquiet2.example.com\n")
    return write_config(tmp_path / "certfleet.toml", pebble, tmp_path / "state", domains)


def test_quiet_prints_only_what_changed_or_failed(config: Path) -> None:
    rc, out, err = run_main(["run", "--quiet", "--config", str(config)])
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(": issued (expires " in line for line in lines[:2]), out
    assert lines[-1] == "2 certificates: 2 issued"
    rc, out, err = run_main(["run", "--quiet", "--config", str(config)])
    assert (rc, out, err) == (2, "", "")  # nothing to do: nothing for cron to mail
    rc, out, _ = run_main(["run", "-q", "--force", "--config", str(config),
                           "quiet2.example.com"])
    assert rc == 0
    assert out.startswith("quiet2.example.com: renewed (expires ")
    assert "quiet1" not in out


def test_a_second_run_over_the_whole_fleet_steps_aside(config: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    fd = os.open(state / "fleet.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        started = time.monotonic()
        rc, out, err = run_main(["run", "--config", str(config)])
        # At once, not after waiting on anything: a run that waited for the lock would wait
        # until this test lets go (never), or a lock wait like LOCK_WAIT (900 s). Stepping
        # aside takes well under a second; 120 s is only slack for a loaded machine.
        assert time.monotonic() - started < 120
        assert (rc, out) == (1, "")
        assert err == ("certfleet: another certfleet run (pid 4242) is working on the whole "
                       "fleet; this one stops and changes nothing\n")
        assert not (state / "certs" / "quiet1.example.com").exists()
        # A run for named certificates goes on: the per-certificate locks keep it safe.
        rc, out, err = run_main(["run", "--config", str(config), "quiet1.example.com"])
        assert rc == 0, out + err
    finally:
        os.close(fd)
    rc, out, _ = run_main(["run", "--config", str(config)])
    assert rc == 0, out
