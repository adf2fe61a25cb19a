"""What the test process does differently under ``make mutate``: pytest hooks, registered
by tests/conftest.py; they touch nothing outside the process.

mutmut imports and collects the tests once, in a fork server, then forks one child per
mutant, which runs pytest on the tests that reach the mutated function.

The fork server, once the tests are collected, moves every object it holds into the
garbage collector's permanent generation (``gc.freeze``). Each child's pytest runs two
full collections as it ends; without this they walk, and so copy out of the shared pages,
every module object the fork server loaded: 0.3 s of CPU a mutant where its tests take a
tenth of that.

In a child, each test is bounded. mutmut stops a mutant's run after a multiple of the time
*all* its tests took on the unmutated code, so a mutant that makes one fast test hang held
a worker for a minute (the SSH transport's ``_exec`` 66 s, an HTTP read loop 58 s). Here a
test gets 10 times its own time in mutmut's record of the unmutated run, plus 5 s for a
loaded machine. A test past its bound ends the process with SIGXCPU, the signal mutmut's
own timeout sends, so the mutant is reported as mutmut would report it (timed out, which
counts as detected), only sooner. The slowest test of the selection takes 3.3 s alone,
and ``make mutate`` runs two children a core: a test that passes is never near its bound.

In a child, the tests that killed mutants of the same function in the last run go first,
then the other cases of those parametrized tests, then the same for the other functions of
the module, the rest in mutmut's order, fastest first. mutmut stops a mutant's tests at the
first failure, so a mutant is detected by its likely killer instead of after every faster
test that cannot see it; a mutant that survives still runs every test, so the verdicts are
those of any order. The record is ``mutation/killers.json``, rewritten by tools/mutate.py
from the kills each child appends to the file named by ``CERTFLEET_MUTATION_KILLS``.

In a child, too, pytest builds items only for the test functions mutmut named: given
``FILE::NAME`` it would otherwise build (parametrize, resolve fixtures for) every test of
``FILE`` and then deselect all but one, most of a child's collection time.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

STATS = Path("mutmut-stats.json")  # mutmut runs the tests in mutants/, where it keeps this
FACTOR = 10.0
SLACK = 5.0
KILLERS = "CERTFLEET_MUTATION_KILLERS"  # the last run's record: function -> tests, read
KILLS = "CERTFLEET_MUTATION_KILLS"      # this run's kills, one JSON line each, appended


def active() -> bool:
    """Whether this process runs the tests of one mutant."""
    return "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")


_READ: dict[str, float] = {}  # the tests' times, read once in the fork server
_KILLERS: dict[str, list[str]] = {}  # the last run's killers, read once there too


def collected(config: pytest.Config) -> None:
    """At the end of a session: in mutmut's fork server, after it collected the tests,
    read the tests' times and freeze what it holds for the children it will fork."""
    if config.option.collectonly and "mutmut" in sys.modules and not active():
        _READ.update(_times())
        _KILLERS.update(_killers())
        gc.collect()
        gc.freeze()


def _times() -> dict[str, float]:
    try:
        record = json.loads(STATS.read_text())
    except (OSError, ValueError):
        return {}
    times = record.get("duration_by_test", {})
    return {str(k): float(v) for k, v in times.items()} if isinstance(times, dict) else {}


def _killers() -> dict[str, list[str]]:
    try:
        record = json.loads(Path(os.environ[KILLERS]).read_text())
    except (KeyError, OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {str(k): [str(t) for t in v] for k, v in record.items() if isinstance(v, list)}


def _over(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGXCPU)


class Bound:
    """Arms a one-shot timer around each test's setup, call and teardown."""

    def __init__(self) -> None:
        self.times = _READ or _times()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item,
                                nextitem: pytest.Item | None) -> Generator[None, Any, None]:
        bound = SLACK + FACTOR * self.times.get(item.nodeid, 1.0)
        previous = signal.signal(signal.SIGALRM, _over)
        signal.setitimer(signal.ITIMER_REAL, bound)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def function_of(mutant: str) -> str:
    """mutmut's mangled function name of a mutant: certfleet.plan.x_due__mutmut_3 ->
    certfleet.plan.x_due."""
    return mutant.partition("__mutmut_")[0]


def likely_killers(record: dict[str, list[str]], function: str) -> list[list[str]]:
    """The tests to run first for a mutant of ``function``, in tiers: its own killers, then
    the killers of the other functions of its module; a test is in its first tier only."""
    module = function.rpartition(".")[0]
    own = list(dict.fromkeys(record.get(function, [])))
    others = [t for f, tests in sorted(record.items())
              if f != function and f.rpartition(".")[0] == module for t in tests]
    return [own, [t for t in dict.fromkeys(others) if t not in own]]


def ranking(tiers: list[list[str]]) -> Callable[[str], tuple[int, int]]:
    """The sort key of a test id: within each tier, the tests named, then the other cases
    of the same test function (another parameter of a parametrized killer kills the next
    mutant of the function more often than an unrelated test); the rest last."""
    exact: dict[str, tuple[int, int]] = {}
    kin: dict[str, tuple[int, int]] = {}
    for level, tests in enumerate(tiers):
        for i, test in enumerate(tests):
            exact.setdefault(test, (2 * level, i))
            kin.setdefault(test.partition("[")[0], (2 * level + 1, i))
    last = (2 * len(tiers), 0)

    def key(test: str) -> tuple[int, int]:
        return exact.get(test) or kin.get(test.partition("[")[0], last)

    return key


def wanted(args: list[str]) -> set[tuple[str, str]]:
    """The (module, function) pairs named by node ids: FILE::NAME[1] -> (FILE, NAME); a
    bare test file -> (FILE, ""), everything in it. Empty when anything else is named (an
    option, a directory, a class): then nothing is narrowed."""
    pairs: set[tuple[str, str]] = set()
    for arg in args:
        path, _, rest = arg.partition("::")
        function = rest.partition("[")[0]
        if arg.startswith("-") or not path.endswith(".py") or "::" in function:
            return set()
        pairs.add((path, function))
    return pairs


class Order:
    """Puts a mutant's likely killers first and records which test killed it."""

    def __init__(self, mutant: str, args: list[str]) -> None:
        self.function = function_of(mutant)
        self.key = ranking(likely_killers(_KILLERS or _killers(), self.function))
        self.wanted = wanted(args)

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makeitem(self, collector: pytest.Collector, name: str,
                                  obj: object) -> list[pytest.Item] | None:
        """Nothing for a test function not asked for: pytest would build its items, with
        their parameters and fixtures, only to deselect them by name."""
        if not self.wanted or not isinstance(collector, pytest.Module) \
                or not callable(obj) or isinstance(obj, type):
            return None  # a class's tests are left to pytest: the ids never name them
        if (collector.nodeid, name) in self.wanted or (collector.nodeid, "") in self.wanted:
            return None
        return []

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(key=lambda item: self.key(item.nodeid))  # stable: mutmut's order within

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        log = os.environ.get(KILLS)
        if not report.failed or not log:
            return
        line = json.dumps({"function": self.function, "test": report.nodeid}) + "\n"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one short write: lines of children never interleave
        finally:
            os.close(fd)
