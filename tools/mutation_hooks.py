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
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

STATS = Path("mutmut-stats.json")  # mutmut runs the tests in mutants/, where it keeps this
FACTOR = 10.0
SLACK = 5.0


def active() -> bool:
    """Whether this process runs the tests of one mutant."""
    return "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")


_READ: dict[str, float] = {}  # the tests' times, read once in the fork server


def collected(config: pytest.Config) -> None:
    """At the end of a session: in mutmut's fork server, after it collected the tests,
    read the tests' times and freeze what it holds for the children it will fork."""
    if config.option.collectonly and "mutmut" in sys.modules and not active():
        _READ.update(_times())
        gc.collect()
        gc.freeze()


def _times() -> dict[str, float]:
    try:
        record = json.loads(STATS.read_text())
    except (OSError, ValueError):
        return {}
    times = record.get("duration_by_test", {})
    return {str(k): float(v) for k, v in times.items()} if isinstance(times, dict) else {}


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
