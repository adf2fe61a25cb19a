"""Runs that overlap or die holding a certificate's lock.

Two plain runs started at once are covered by
tests/integration/test_fleet.py::test_two_runs_at_once_order_each_certificate_once; these
add what it does not:

* a run killed with SIGKILL while it holds a certificate's lock (in the middle of a
  deliberately slow http-01 validation): the kernel drops the flock, so the next run does
  not wait for it, issues the certificate, and the orders stay bounded;
* an overlapping ``run --force NAME`` that renews a certificate while an earlier run,
  slowed by another certificate's validation, has yet to deploy the version it issued:
  whichever run deploys last, the target must end up with the current version (or at
  least be known not to have it, so the next run fixes it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from certfleet.store import LOCK_WAIT
from tests.integration.conftest import webroot_server
from tests.integration.fleet_helpers import orders_seen, write_config

pytestmark = pytest.mark.integration

RUN_TIMEOUT = 120.0


@pytest.fixture
def lab(pebble_lab_factory: Any) -> Any:
    return pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0", "PEBBLE_VA_NOSLEEP": "1"},
                              config={"retryAfter": {"authz": 0, "order": 0}})


@dataclass
class SlowWebroot:
    """What the delaying webroot server does: which Host names it holds back and for how
    long, and which validation requests it has seen (by Host)."""

    delays: dict[str, float] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def slow_webroot_server(directory: Path, port: int) -> Iterator[SlowWebroot]:
    """The Work host's web server for http-01 tokens in ``directory``, answering requests
    for the names in ``delays`` only after that many seconds (what a slow or congested
    path to the Work host looks like to the CA)."""
    control = SlowWebroot()

    def hold_back(host: str) -> None:
        control.seen.append(host)
        control.arrived.set()
        time.sleep(control.delays.get(host, 0.0))

    with webroot_server(directory, port, before=hold_back):
        try:
            yield control
        finally:
            control.delays.clear()


def _setup(tmp_path: Path, lab: Any, lines: list[str]) -> tuple[Path, Path]:
    webroot = tmp_path / "webroot"
    webroot.mkdir()
    domains = tmp_path / "domains.txt"
    domains.write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                          sections={"challenge": {"webroot": str(webroot)}})
    return config, webroot


def _cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "certfleet", "run", "--config", str(config), *args]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CERTFLEET_")}


def _lock_is_held(state: Path, name: str) -> bool:
    """Whether some process holds the certificate's flock (tried without waiting)."""
    fd = os.open(state / "certs" / name / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def test_run_killed_holding_a_lock_does_not_block_the_next(lab: Any, tmp_path: Path) -> None:
    name = "stale-lock.example.com"
    config, webroot = _setup(tmp_path, lab, [name, "other.example.com"])
    state = tmp_path / "state"
    with slow_webroot_server(webroot, lab.http_port) as server:
        server.delays[name] = 30.0
        first = subprocess.Popen(_cmd(config), stdout=subprocess.PIPE, text=True, env=_env())
        try:
            assert server.arrived.wait(60), "the CA never came to validate"
            _wait_for(lambda: name in server.seen, 30, f"validation of {name}")
            assert first.poll() is None
            assert _lock_is_held(state, name), "the run validating it should hold its lock"
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
        assert first.returncode == -signal.SIGKILL
        # No process holds it any more: the kernel released the flock with the process.
        assert (state / "certs" / name / "lock").exists()
        assert not _lock_is_held(state, name)
        killed_orders = orders_seen(lab)
        assert 1 <= killed_orders <= 2  # at most both certificates were ordered

        server.delays.clear()
        assert RUN_TIMEOUT < LOCK_WAIT
        try:
            second = subprocess.run(_cmd(config), capture_output=True, text=True, env=_env(),
                                    timeout=RUN_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            # A run that took the dead run's lock for held would wait LOCK_WAIT (900 s)
            # for it; RUN_TIMEOUT (120 s, some 20 times this run under load) ends that.
            pytest.fail(f"the next run waited for the killed run's lock: {exc.stdout!r}")
    print(second.stdout, second.stderr, "webroot after:", sorted(os.listdir(webroot)))
    assert second.returncode == 0, second.stdout
    lines = second.stdout.splitlines()  # in the order the certificates finish
    assert any(line.startswith(f"{name}: issued (expires ") for line in lines), second.stdout
    assert (state / "certs" / name / "current").is_symlink()
    assert not (state / "certs" / name / "pending").exists()
    # The killed run's order was either resumed or lost; never more than one new order
    # per certificate in the second run.
    assert orders_seen(lab) <= killed_orders + 2
    issued = {line.split(":")[0] for line in lines if ": issued (" in line}
    assert issued == {name, "other.example.com"} - _already_issued(second.stdout)


def _already_issued(stdout: str) -> set[str]:
    return {line.split(":")[0] for line in stdout.splitlines() if ": not due until" in line}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serial_of(pem_path: Path) -> int:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem_path.read_bytes()).serial_number


def test_overlapping_forced_renewal_leaves_the_target_current(lab: Any,
                                                              tmp_path: Path) -> None:
    """Run A issues ``fast`` and is then held up by ``slow``'s validation; meanwhile
    ``run --force fast`` (B) renews ``fast`` and deploys the new version. A deploys after
    B: whatever it writes, when both are done and one more plain run has passed, the
    target must hold the current version."""
    fast, slow = "fast.example.com", "slow.example.com"
    target = tmp_path / "target" / fast  # a directory of its own: the files go right in
    target.mkdir(parents=True)
    config, webroot = _setup(tmp_path, lab, [f"{fast}|{target}", slow])
    state = tmp_path / "state"
    with slow_webroot_server(webroot, lab.http_port) as server:
        server.delays[slow] = 12.0
        run_a = subprocess.Popen(_cmd(config), stdout=subprocess.PIPE, text=True, env=_env())
        try:
            _wait_for((state / "certs" / fast / "current").is_symlink, 60,
                      f"run A to issue {fast}")
            run_b = subprocess.run(_cmd(config, "--force", fast), capture_output=True,
                                   text=True, env=_env(), timeout=RUN_TIMEOUT, check=False)
            a_still_running = run_a.poll() is None
            out_a, _ = run_a.communicate(timeout=RUN_TIMEOUT)
        finally:
            run_a.kill()
            run_a.wait()
        print("run A:", out_a, "run B:", run_b.stdout, run_b.stderr, sep="\n")
        assert a_still_running, "run A finished before run B: no overlap to test"
        assert run_b.returncode == 0, run_b.stdout
        assert run_b.stdout.startswith(f"{fast}: renewed (expires "), run_b.stdout
        assert f"{fast}: issued (expires " in out_a, out_a

        current = state / "certs" / fast / "current"
        record = json.loads((state / "certs" / fast / "state.json").read_text())
        recorded = record["deploy"][str(target)]
        on_target = _serial_of(target / "cert.pem")
        after_ab = (f"after runs A and B, state.json records {recorded} for {target}; the "
                    f"target holds serial {on_target:x}; the current version is "
                    f"{os.readlink(current)} with serial {_serial_of(current / 'cert.pem'):x}")

        run_c = subprocess.run(_cmd(config), capture_output=True, text=True, env=_env(),
                               timeout=RUN_TIMEOUT, check=False)
    print("run C:", run_c.stdout, after_ab, sep="\n")
    assert re.search(rf"^{re.escape(fast)}: ", run_c.stdout, re.MULTILINE)
    assert not [p for p in os.listdir(target) if p.startswith(".certfleet-tmp-")]
    for pem in ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"):
        assert _sha(target / pem) == _sha(current / pem), (
            f"{target}/{pem} is not the current version after one more plain run; "
            f"{after_ab}; run C: {run_c.stdout!r}")
    # What the state says about the target must be true of the target.
    assert recorded.get("error") or int(recorded["serial"], 16) == on_target, after_ab
