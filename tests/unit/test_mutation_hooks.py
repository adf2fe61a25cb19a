"""tools/mutation_hooks.py: under ``make mutate`` a test that hangs ends its process the way
mutmut's own timeout does, after its own bound, and mutmut's fork server freezes what it
holds for its children; neither happens outside mutmut."""

from __future__ import annotations

import importlib
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


def _tool(name: str) -> types.ModuleType:
    """A module of tools/ (not on the path of the tests)."""
    sys.path.insert(0, str(TOOLS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(TOOLS))


def _hooks() -> types.ModuleType:
    return _tool("mutation_hooks")


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


# -- the order of a mutant's tests, and the record of which test killed it -----------------

ORDER_DRIVER = """
import os, sys, pytest, mutation_hooks
sys.exit(pytest.main(["-q", "-x", "-p", "no:cacheprovider", "test_it.py"],
                     plugins=[mutation_hooks.Order(os.environ["MUTANT_UNDER_TEST"],
                                                  ["test_it.py"])]))
"""

ORDER_TESTS = """
def _ran(name):
    with open("ran", "a") as f:
        f.write(name + "\\n")
def test_a():
    _ran("a")
def test_b():
    _ran("b")
def test_c():
    _ran("c")
    assert False, "the killer"
"""


def _ordered(tmp_path: Path, record: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    (tmp_path / "test_it.py").write_text(ORDER_TESTS)
    (tmp_path / "killers.json").write_text(json.dumps(record))
    env = dict(os.environ, PYTHONPATH=str(TOOLS),
               MUTANT_UNDER_TEST="certfleet.plan.x_due__mutmut_3",
               CERTFLEET_MUTATION_KILLERS=str(tmp_path / "killers.json"),
               CERTFLEET_MUTATION_KILLS=str(tmp_path / "kills.jsonl"))
    done = subprocess.run([sys.executable, "-c", ORDER_DRIVER], cwd=tmp_path, env=env,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout
    kills = (tmp_path / "kills.jsonl").read_text().splitlines()
    return (tmp_path / "ran").read_text().split(), kills


def test_the_last_killer_of_the_function_runs_first(tmp_path: Path) -> None:
    ran, kills = _ordered(tmp_path, {"certfleet.plan.x_due": ["test_it.py::test_c"],
                                     "certfleet.plan.x_other": ["test_it.py::test_b"]})
    assert ran == ["c"]  # -x: the mutant is detected before the tests that cannot see it
    assert [json.loads(k) for k in kills] == [
        {"function": "certfleet.plan.x_due", "test": "test_it.py::test_c"}]


def test_without_a_record_the_order_is_mutmuts(tmp_path: Path) -> None:
    ran, kills = _ordered(tmp_path, {"certfleet.fsutil.x_due": ["test_it.py::test_c"]})
    assert ran == ["a", "b", "c"]
    assert len(kills) == 1


def test_likely_killers_are_the_functions_own_then_its_modules() -> None:
    record = {"m.x_f": ["t1", "t2"], "m.x_g": ["t2", "t3"], "m.sub.x_h": ["t4"],
              "other.x_f": ["t5"]}
    assert _hooks().likely_killers(record, "m.x_f") == [["t1", "t2"], ["t3"]]
    assert _hooks().likely_killers(record, "m.x_new") == [[], ["t1", "t2", "t3"]]
    assert _hooks().likely_killers(record, "n.x_f") == [[], []]


def test_the_other_cases_of_a_killer_follow_it() -> None:
    key = _hooks().ranking([["a.py::t_own[2]", "a.py::t_two"], ["a.py::t_mod[x]"]])
    tests = ["a.py::t_rest", "a.py::t_mod[y]", "a.py::t_own[1]", "a.py::t_mod[x]",
             "a.py::t_two", "a.py::t_own[2]", "a.py::t_own[3]", "a.py::t_other[1]"]
    assert sorted(tests, key=key) == [
        "a.py::t_own[2]", "a.py::t_two",     # the function's killers, as recorded
        "a.py::t_own[1]", "a.py::t_own[3]",  # their other cases, in the order given
        "a.py::t_mod[x]", "a.py::t_mod[y]",  # the module's killer, then its other cases
        "a.py::t_rest", "a.py::t_other[1]"]  # the rest, in the order given


@pytest.mark.parametrize(("args", "pairs"), [
    (["t/a.py::t_one", "t/a.py::t_two[1-x]", "t/b.py::t_two[2]"],
     {("t/a.py", "t_one"), ("t/a.py", "t_two"), ("t/b.py", "t_two")}),
    (["t/a.py", "t/b.py::t_x"], {("t/a.py", ""), ("t/b.py", "t_x")}),
    (["t/a.py::TestC::test_m"], set()),   # a class: nothing narrowed
    (["-k", "x", "t/a.py::t_one"], set()),  # an option: nothing narrowed
    (["t", "t/a.py::t_one"], set()),      # a directory: nothing narrowed
])
def test_the_functions_asked_for(args: list[str], pairs: set[tuple[str, str]]) -> None:
    assert _hooks().wanted(args) == pairs


NARROW_TESTS = """
import pytest
ran = []
@pytest.mark.parametrize("n", [1, 2, 3])
def test_p(n):
    ran.append(n)
def test_q():
    pass
def test_r():
    pass
class TestC:
    def test_m(self):
        pass
"""


def test_only_the_functions_asked_for_are_built(tmp_path: Path) -> None:
    """Narrowed collection runs exactly what pytest would have run by the same node ids."""
    (tmp_path / "test_n.py").write_text(NARROW_TESTS)
    driver = """
import json, os, sys, pytest, mutation_hooks
class Seen:
    def __init__(self): self.built = []
    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(self, collector, name, obj):  # built, before selection
        result = yield
        if isinstance(result, list):
            self.built += [item.nodeid for item in result]
        return result
    def pytest_runtest_logreport(self, report):
        if report.when == "call": self.built.append("ran " + report.nodeid)
args = sys.argv[1:]
seen = Seen()
code = pytest.main(["-q", "-p", "no:cacheprovider", *args],
                   plugins=[mutation_hooks.Order("certfleet.plan.x_due__mutmut_3", args), seen])
print(json.dumps(seen.built))
sys.exit(code)
"""
    def seen(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", driver, *args], cwd=tmp_path,
                              env=dict(os.environ, PYTHONPATH=str(TOOLS)),
                              capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout.splitlines()[-1])

    assert seen("test_n.py::test_p[2]", "test_n.py::test_r") == [  # not test_q
        "test_n.py::test_p[1]", "test_n.py::test_p[2]", "test_n.py::test_p[3]",
        "test_n.py::test_r", "ran test_n.py::test_p[2]", "ran test_n.py::test_r"]
    assert seen("test_n.py") == [
        "test_n.py::test_p[1]", "test_n.py::test_p[2]", "test_n.py::test_p[3]",
        "test_n.py::test_q", "test_n.py::test_r", "test_n.py::TestC::test_m",
        "ran test_n.py::test_p[1]", "ran test_n.py::test_p[2]", "ran test_n.py::test_p[3]",
        "ran test_n.py::test_q", "ran test_n.py::test_r", "ran test_n.py::TestC::test_m"]
    assert seen("test_n.py::test_q", "test_n.py::TestC::test_m")[-2:] == [
        "ran test_n.py::test_q", "ran test_n.py::TestC::test_m"]  # a class: not narrowed


def test_the_record_keeps_the_tests_that_killed_most() -> None:
    kills = [json.dumps({"function": "m.x_f", "test": t}) for t in
             ["t1", "t2", "t2", "t3", "t4", "t4", "t4"]]
    kills.append('{"function": "m.x_f", "te')  # cut short by a killed child
    merged = _tool("mutate").merged_killers({"m.x_f": ["old"], "m.x_g": ["kept"]}, kills)
    assert merged == {"m.x_f": ["t4", "t2", "t1"], "m.x_g": ["kept"]}
