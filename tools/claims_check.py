#!/usr/bin/env python3
"""Each row of SECURITY.md's promise table, shown guarded: take its mechanism out, and the
tests the row names fail.

The mutations are in ``tools/claims_rows.py``: one or more per row, each a minimal edit of
a file under ``src/certfleet/`` and the row's tests that must notice it. The working tree is
copied (without ``.git``) to temporary directories, one per job, and never changed itself.
The tests of every mutation first run there unchanged and must pass (a kill would prove
nothing otherwise); then each mutation in turn is applied to a copy, its tests run
(``CI=true``, ``PYTHONPATH`` the copy's ``src``, so processes the tests start import the
mutated code too; ``-x``: the first failure is enough), and the file is restored.

Killed: a test failed, or the run outlived three times its unchanged duration plus half a
minute (a bound taken out can make a test wait forever). Survived: every test passed, and
the row's claim is not shown. Writes ``mutation/claims.md`` when every row is run; the exit
status is 1 if a mutation survived or could not be run.

    tools/claims_check.py                 # every row; rewrites mutation/claims.md
    tools/claims_check.py --promise 9     # the rows of promise 9 only
    tools/claims_check.py --list          # the mutations and their tests
    tools/claims_check.py --jobs 1        # one mutation at a time (default: two)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from claims_rows import ROWS, Mutation, Row

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "mutation" / "claims.md"
SKIP = shutil.ignore_patterns(".git", "mutants", ".venv", "__pycache__", ".mypy_cache",
                              ".ruff_cache", ".pytest_cache", "dist", "build", "demo-state",
                              ".cache", ".hypothesis")
FAILED = re.compile(r"^(?:FAILED|ERROR) tests/(.+?)(?: - .*)?$", re.M)


@dataclass(frozen=True)
class Outcome:
    verdict: str        # killed, survived, error, not run
    detail: str         # which test failed, or why nothing was shown
    seconds: float


class Tree:
    """A copy of the working tree, where the mutations are applied and the tests run."""

    def __init__(self, base: Path) -> None:
        self.root = base / "tree"
        shutil.copytree(ROOT, self.root, symlinks=True, ignore=SKIP)  # makes ``base`` too
        # The test components (Pebble, ...) and the bench's states: gigabytes, read only.
        (self.root / ".cache").symlink_to(ROOT / ".cache")
        self.base = base
        self.runs = 0
        self.env = {**os.environ, "CI": "true", "PYTHONDONTWRITEBYTECODE": "1",
                    "PYTHONPATH": os.pathsep.join([str(self.root / "src"), str(self.root)])}
        found = subprocess.run(
            [sys.executable, "-c", "import certfleet; print(certfleet.__file__)"],
            env=self.env, cwd=self.root, capture_output=True, text=True, check=True,
        ).stdout.strip()
        if not found.startswith(str(self.root)):  # the mutations would never be seen
            raise SystemExit(f"certfleet is imported from {found}, not from the copy")

    def pytest(self, tests: list[str], timeout: float,
               junit: Path | None = None) -> tuple[int | None, str, float]:
        """(exit status, or None if it ran out of time; output; seconds). With ``junit``
        (the unchanged run) every test runs; else the first failure ends the run."""
        self.runs += 1
        argv = [sys.executable, "-m", "pytest", "-q", *([] if junit else ["-x"]),
                "-p", "no:cacheprovider",
                f"--basetemp={self.base / f'bt-{self.runs}'}",
                *([f"--junitxml={junit}"] if junit else []),
                *(f"tests/{test}" for test in tests)]
        started = time.monotonic()
        with subprocess.Popen(argv, cwd=self.root, env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) as proc:
            try:
                out, _ = proc.communicate(timeout=timeout)
                status: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                out = _stop(proc)
                status = None
        return status, out, time.monotonic() - started

    def apply(self, mutation: Mutation) -> bytes:
        """Apply the edits; the file's original bytes, to restore it."""
        path = self.root / "src" / "certfleet" / mutation.path
        original = path.read_bytes()
        text = original.decode()
        for old, new in mutation.edits:
            if text.count(old) != 1:
                raise ValueError(f"{mutation.path}: the text to replace occurs "
                                 f"{text.count(old)} times, not once: {old.strip()[:60]!r}")
            text = text.replace(old, new)
        path.write_text(text)
        return original

    def restore(self, mutation: Mutation, original: bytes) -> None:
        (self.root / "src" / "certfleet" / mutation.path).write_bytes(original)


def _stop(proc: subprocess.Popen[str]) -> str:
    """Interrupt pytest as Ctrl-C would (its fixtures stop the labs they started), then
    kill whatever of its session is left."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        out = ""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return out


def baseline(tree: Tree, tests: list[str]) -> tuple[dict[str, float], set[str], str]:
    """Run tests once unchanged: seconds per test id, the ids that failed, the output."""
    junit = tree.base / f"baseline-{tree.runs}.xml"
    status, out, _ = tree.pytest(tests, timeout=3600, junit=junit)
    times: dict[str, float] = {}
    failed: set[str] = set()
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            module = case.get("classname", "").replace(".", "/").removeprefix("tests/")
            test_id = f"{module}.py::{case.get('name', '')}"
            times[test_id] = float(case.get("time", "0"))
            if case.find("failure") is not None or case.find("error") is not None:
                failed.add(test_id)
    if status not in (0, 1) and not failed:
        failed |= {f"{test} (pytest exit status {status})" for test in tests}
    return times, failed, out


def _covers(test: str, test_id: str) -> bool:
    """Whether ``test`` (a file, or file::function) selects the test ``test_id``."""
    return test_id == test or test_id.startswith(
        (f"{test}::", f"{test}[") if "::" in test else (f"{test}::",))


def check(tree: Tree, mutation: Mutation, times: dict[str, float],
          failed: set[str]) -> Outcome:
    broken = sorted(t for t in failed
                    if any(_covers(test, t.partition(" ")[0]) for test in mutation.tests))
    if broken:
        return Outcome("not run", "fails unchanged: " + ", ".join(broken), 0)
    spent = sum(s for t, s in times.items() if any(_covers(test, t) for test in mutation.tests))
    try:
        original = tree.apply(mutation)
    except ValueError as exc:
        return Outcome("error", str(exc), 0)
    try:
        status, out, seconds = tree.pytest(list(mutation.tests), timeout=30 + 3 * spent)
    finally:
        tree.restore(mutation, original)
    if status is None:
        return Outcome("killed", "no end within the time limit: a test hung", seconds)
    if status == 1:
        first = FAILED.search(out)
        return Outcome("killed", f"`{_short(first[1])}`" if first else "a test failed", seconds)
    if status == 0:
        return Outcome("survived", "every test passed", seconds)
    tail = " ".join(out.strip().splitlines()[-3:])
    return Outcome("error", f"pytest exit status {status}: {tail}", seconds)


def _short(test_id: str) -> str:
    """A failing test's id, its parameters cut if they are long."""
    name, bracket, params = test_id.partition("[")
    return test_id if len(params) <= 60 else f"{name}{bracket}{params[:56]}...]"


def run_all(todo: list[tuple[Row, Mutation]], base: Path,
            jobs: int) -> list[tuple[Row, Mutation, Outcome]]:
    """The unchanged run, then every mutation, on ``jobs`` copies of the tree at once (a
    test file's tests stay in one unchanged run: they share its fixtures)."""
    trees: queue.Queue[Tree] = queue.Queue()
    for number in range(jobs):
        trees.put(Tree(base / str(number)))
    files: dict[str, list[str]] = {}
    for test in sorted({test for _, mutation in todo for test in mutation.tests}):
        files.setdefault(test.partition("::")[0], []).append(test)
    groups: list[list[str]] = [[] for _ in range(jobs)]
    for number, file in enumerate(sorted(files)):
        groups[number % jobs] += files[file]
    print(f"unchanged: {sum(map(len, groups))} test ids", flush=True)

    def unchanged(group: list[str]) -> tuple[dict[str, float], set[str], str]:
        tree = trees.get()
        try:
            return baseline(tree, group) if group else ({}, set(), "")
        finally:
            trees.put(tree)

    def mutated(item: tuple[Row, Mutation]) -> tuple[Row, Mutation, Outcome]:
        row, mutation = item
        tree = trees.get()
        try:
            outcome = check(tree, mutation, times, failed)
        finally:
            trees.put(tree)
        print(f"{outcome.verdict:>8} {outcome.seconds:6.1f}s  {row.promise} "
              f"{mutation.what} ({mutation.path}): {outcome.detail}", flush=True)
        return row, mutation, outcome

    with ThreadPoolExecutor(jobs) as pool:
        times: dict[str, float] = {}
        failed: set[str] = set()
        for more_times, more_failed, out in pool.map(unchanged, groups):
            times |= more_times
            failed |= more_failed
            if more_failed:
                print(out[-4000:], "failing unchanged:", *sorted(more_failed), sep="\n",
                      flush=True)
        return list(pool.map(mutated, todo))


def report(results: list[tuple[Row, Mutation, Outcome]]) -> str:
    killed = sum(1 for *_, o in results if o.verdict == "killed")
    lines = [
        "# The promise table, checked by mutation",
        "",
        "Written by `tools/claims_check.py` (do not edit by hand). For each row of the table",
        "in SECURITY.md, each mechanism listed here was taken out of a copy of the source",
        "(the edits are in `tools/claims_rows.py`) and the row's tests were run against it:",
        "killed means a test failed (the one named, the first to fail), survived means every",
        "test passed and the row's claim would not be shown.",
        "",
        f"{len(results)} mutations over {len({(r.promise, r.title) for r, _, _ in results})} "
        f"rows: {killed} killed, {len(results) - killed} not.",
        "",
        "| # | row | mechanism taken out | file | tests run | result |",
        "|---|---|---|---|---|---|",
    ]
    for row, mutation, outcome in results:
        tests = ", ".join(f"`{t}`" for t in mutation.tests)
        cells = [str(row.promise), row.title, mutation.what, f"`{mutation.path}`", tests,
                 f"{outcome.verdict}: {outcome.detail}"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--promise", type=int, action="append",
                        help="only the rows of this promise (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and stop")
    parser.add_argument("--jobs", type=int, default=2,
                        help="mutations run at once, each on its own copy (default 2)")
    args = parser.parse_args(argv)
    rows = [row for row in ROWS if not args.promise or row.promise in args.promise]
    todo = [(row, mutation) for row in rows for mutation in row.mutations]
    if args.list:
        for row, mutation in todo:
            print(f"{row.promise} {row.title}: {mutation.what} ({mutation.path})")
            for test in mutation.tests:
                print(f"    {test}")
        return 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="claims-") as base:
        results = run_all(todo, Path(base), max(1, args.jobs))
    if not args.promise:
        REPORT.write_text(report(results))
    bad = [r for r in results if r[2].verdict != "killed"]
    print(f"{len(results) - len(bad)}/{len(results)} killed in "
          f"{time.monotonic() - started:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
