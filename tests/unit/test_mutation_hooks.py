"""tools/mutation_hooks.py: under ``make mutate`` a test that hangs ends its process the way
mutmut's own timeout does, after its own bound, and mutmut's fork server freezes what it
holds for its children; neither happens outside mutmut."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"

# Run in a child: the bound, when it fires, ends the whole process.
DRIVER = """
import sys, pytest, mutation_hooks
mutation_hooks.SLACK = 0.5
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "test_it.py"],
                     plugins=[mutation_hooks.Bound()]))
"""

TESTS = """
import time
def test_quick():
    pass
def test_slow():
    time.sleep(float(open("sleep").read()))
"""


def _hooks() -> types.ModuleType:
    sys.path.insert(0, str(TOOLS))
    try:
        import mutation_hooks
    finally:
        sys.path.remove(str(TOOLS))
    return mutation_hooks


def _run(tmp_path: Path, sleep: float, recorded: float) -> int:
    (tmp_path / "test_it.py").write_text(TESTS)
    (tmp_path / "sleep").write_text(str(sleep))
    (tmp_path / "mutmut-stats.json").write_text(json.dumps(
        {"duration_by_test": {"test_it.py::test_quick": 0.0, "test_it.py::test_slow": recorded}}))
    env = dict(os.environ, PYTHONPATH=str(TOOLS),
               MUTANT_UNDER_TEST="certfleet.plan.x_due__mutmut_3")
    done = subprocess.run([sys.executable, "-c", DRIVER], cwd=tmp_path, env=env,
                          capture_output=True, timeout=60, check=False)
    return done.returncode


def test_a_test_past_its_bound_ends_as_mutmut_times_out(tmp_path: Path) -> None:
    # bound = 0.5 s + 10 x 0.05 s = 1 s; the test would sleep 30 s
    assert _run(tmp_path, 30, 0.05) == -signal.SIGXCPU


def test_the_bound_grows_with_the_time_the_test_took(tmp_path: Path) -> None:
    # bound = 0.5 s + 10 x 0.3 s = 3.5 s; the test sleeps 1.5 s and passes
    assert _run(tmp_path, 1.5, 0.3) == 0


@pytest.mark.parametrize(("mutant", "armed"), [
    ("", False), ("stats", False), ("fail", False), ("list_all_tests", False),
    ("certfleet.deploy.ssh.xǁSshTransportǁ_exec__mutmut_7", True)])
def test_armed_only_in_a_mutant_run(monkeypatch: pytest.MonkeyPatch, mutant: str,
                                    armed: bool) -> None:
    monkeypatch.setenv("MUTANT_UNDER_TEST", mutant)
    assert _hooks().active() is armed


@pytest.mark.parametrize(("collect_only", "mutmut_loaded", "mutant", "frozen"), [
    (True, True, "", True),            # mutmut's fork server, warmed up
    (True, True, "list_all_tests", True),
    (True, False, "", False),          # someone's pytest --collect-only
    (False, True, "", False),          # mutmut's run of the unmutated tests
    (True, True, "certfleet.plan.x_due__mutmut_3", False)])
def test_frozen_only_in_mutmuts_fork_server(monkeypatch: pytest.MonkeyPatch,
                                            collect_only: bool, mutmut_loaded: bool,
                                            mutant: str, frozen: bool) -> None:
    mutation_hooks = _hooks()
    calls: list[str] = []
    monkeypatch.setattr(mutation_hooks.gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setenv("MUTANT_UNDER_TEST", mutant)
    if mutmut_loaded:
        monkeypatch.setitem(sys.modules, "mutmut", types.ModuleType("mutmut"))
    else:
        monkeypatch.delitem(sys.modules, "mutmut", raising=False)
    config = types.SimpleNamespace(option=types.SimpleNamespace(collectonly=collect_only))
    mutation_hooks.collected(config)  # type: ignore[arg-type]
    assert calls == (["freeze"] if frozen else [])
