#!/usr/bin/env python3
"""Mutation testing of the modules that hold certfleet's promises: ``make mutate``.

Runs mutmut (configured in ``pyproject.toml`` under ``[tool.mutmut]``: which modules are
mutated, which fast unit tests may be run) and writes ``mutation/report.md``: per module
the mutants tried, killed, timed out, equivalent and surviving, then every surviving
mutant as a diff. mutmut records which tests call which function and runs, for each
mutant, only the tests that reach the mutated function, so a mutant of ``fsutil`` never
waits for the JWS tests.

A surviving mutant is either a missing test (write one) or cannot change what certfleet
does: then it is listed, with the reason, in ``mutation/equivalent.md``, and the report
counts it as equivalent. An entry there is a heading naming the function and a ``diff``
block holding the mutant's changed lines, exactly as the report prints them; entries are
matched by function and changed lines, not by mutmut's numbers, which move when the code
does. The exit status is 1 while any mutant survives that is not listed there.

    tools/mutate.py                 # fresh run of everything (what ``make mutate`` does)
    tools/mutate.py --again         # rerun only what survived last time (after new tests)
    tools/mutate.py --again 'certfleet.fsutil.*'   # ... and these mutants too
    tools/mutate.py --report-only   # rewrite the report from the last run
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
REPORT = ROOT / "mutation" / "report.md"
EQUIVALENT = ROOT / "mutation" / "equivalent.md"
KILLERS = ROOT / "mutation" / "killers.json"   # which tests killed each function's mutants
KILLS = MUTANTS / "kills.jsonl"                # appended by the children of this run
KEEP = 3                                       # killers remembered per function
CLASS_SEP = "ǁ"  # mutmut's separator in mangled method names: xǁClassǁmethod

DETECTED = {"killed": "killed", "caught by type check": "killed", "timeout": "timeout",
            "segfault": "killed"}  # a crash of the test process is a detection too


@dataclass(frozen=True)
class Mutant:
    name: str        # mutmut's key: certfleet.fsutil.x_write_new__mutmut_3
    status: str      # mutmut's status word
    module: str      # certfleet.fsutil
    function: str    # write_new, Store.current
    path: str        # src/certfleet/fsutil.py

    @property
    def mangled(self) -> str:
        return self.name.partition("__mutmut_")[0]


def split_name(name: str) -> tuple[str, str]:
    """(module, readable function) of a mutant key."""
    mangled = name.partition("__mutmut_")[0]
    module, _, func = mangled.rpartition(".")
    if func.startswith("x" + CLASS_SEP):
        _, cls, method = func.split(CLASS_SEP)
        return module, f"{cls}.{method}"
    return module, func.removeprefix("x_")


def changed_lines(diff: str) -> tuple[str, ...]:
    """The removed and added lines of a diff, stripped: what identifies a mutation."""
    return tuple(f"{line[0]}{line[1:].strip()}" for line in diff.splitlines()
                 if line.startswith(("+", "-")) and not line.startswith(("+++", "---")))


# -- running mutmut ---------------------------------------------------------------------------

def mutmut_env() -> dict[str, str]:
    env = dict(os.environ)
    # Subprocesses started by tests (a lock holder, ...) import the mutated code too.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(MUTANTS / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env["CERTFLEET_MUTATING"] = "1"   # tighter bounds on hung scenarios (tests/waits.py)
    env["CERTFLEET_MUTATION_KILLERS"] = str(KILLERS)  # tools/mutation_hooks.py: test order
    env["CERTFLEET_MUTATION_KILLS"] = str(KILLS)
    return env


def merged_killers(record: dict[str, list[str]], kills: list[str]) -> dict[str, list[str]]:
    """The record after a run: for each function whose mutants were killed this run, the
    tests that killed most of them (ties: the earlier kill); the other functions keep
    their entries from before."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for line in kills:
        try:
            kill = json.loads(line)
            counts[str(kill["function"])][str(kill["test"])] += 1
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a killed child
    merged = dict(record)
    for function, tests in counts.items():
        merged[function] = [test for test, _ in tests.most_common(KEEP)]
    return dict(sorted(merged.items()))


def save_killers() -> None:
    try:
        kills = KILLS.read_text().splitlines()
    except FileNotFoundError:
        return
    try:
        record = json.loads(KILLERS.read_text())
    except (OSError, ValueError):
        record = {}
    merged = merged_killers(record if isinstance(record, dict) else {}, kills)
    KILLERS.write_text(json.dumps(merged, indent=1, ensure_ascii=False) + "\n")
    KILLS.unlink()


def run_mutmut(jobs: int, names: list[str]) -> int:
    # The directory must exist before the interpreter starts: Python caches a missing
    # sys.path entry as "nothing here", and the original sources would be tested instead.
    (MUTANTS / "src").mkdir(parents=True, exist_ok=True)
    mutmut = Path(sys.executable).with_name("mutmut")
    argv = [str(mutmut) if mutmut.exists() else "mutmut", "run", "--max-children", str(jobs),
            *names]
    print("+", " ".join(argv), flush=True)
    return subprocess.call(argv, cwd=ROOT, env=mutmut_env())


# -- reading the results ----------------------------------------------------------------------

def load_results() -> list[Mutant]:
    from mutmut.stats import status_by_exit_code

    found: list[Mutant] = []
    for meta in sorted((MUTANTS / "src").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        source = str(meta.relative_to(MUTANTS)).removesuffix(".meta")
        for name, code in data["exit_code_by_key"].items():
            module, function = split_name(name)
            found.append(Mutant(name, status_by_exit_code[code], module, function, source))
    return found


def diff_of(mutant: Mutant) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(mutant.name, path=mutant.path)
    return "\n".join(line for line in diff.splitlines() if not line.startswith(("+++", "---")))


@dataclass(frozen=True)
class Equivalent:
    function: str                # module.function, as in the report's headings
    lines: tuple[str, ...]


def load_equivalents() -> list[Equivalent]:
    """Entries of equivalent.md: a ``### module.function`` heading, then ``diff`` blocks."""
    if not EQUIVALENT.exists():
        return []
    found: list[Equivalent] = []
    function = None
    for block in re.split(r"^(### .*|```diff\n(?:.*\n)*?```)$", EQUIVALENT.read_text(),
                          flags=re.M):
        if block.startswith("### "):
            function = block[4:].strip().strip("`").split()[0]
        elif block.startswith("```diff") and function:
            found.append(Equivalent(function, changed_lines(block.removeprefix("```diff"))))
    return found


def tests_by_module() -> dict[str, set[str]]:
    """Which test files mutmut found calling into each module (from its stats run)."""
    stats = MUTANTS / "mutmut-stats.json"
    result: dict[str, set[str]] = defaultdict(set)
    if not stats.exists():
        return result
    data = json.loads(stats.read_text())
    for mangled, tests in data.get("tests_by_mangled_function_name", {}).items():
        module = mangled.rpartition(".")[0]
        result[module].update(test.partition("::")[0] for test in tests)
    return result


def not_mutated(config_globs: list[str]) -> list[str]:
    """Functions mutmut leaves alone: decorated ones other than classmethod/staticmethod
    (properties, context managers). They are listed so that nobody believes them tested."""
    lines = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if not any(fnmatch.fnmatch(rel, glob) for glob in config_globs):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list:
                names = [ast.unparse(d) for d in node.decorator_list]
                if names not in (["classmethod"], ["staticmethod"]):
                    lines.append(f"{rel}:{node.lineno} `{node.name}` (@{', @'.join(names)})")
    return lines


# -- the report -------------------------------------------------------------------------------

def classify(mutants: list[Mutant], equivalents: list[Equivalent]) -> tuple[
        dict[str, Counter[str]], list[tuple[Mutant, str]], list[tuple[Mutant, str]],
        list[Equivalent]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[tuple[Mutant, str]] = []
    matched: list[tuple[Mutant, str]] = []
    used: set[Equivalent] = set()
    keyed = {(e.function, e.lines): e for e in equivalents}
    for mutant in mutants:
        row = counts[mutant.module]
        row["tried"] += 1
        kind = DETECTED.get(mutant.status)
        if kind is not None:
            row[kind] += 1
            continue
        diff = diff_of(mutant)
        entry = keyed.get((f"{mutant.module}.{mutant.function}", changed_lines(diff)))
        if entry is not None and mutant.status in ("survived", "no tests"):
            row["equivalent"] += 1
            matched.append((mutant, diff))
            used.add(entry)
        else:
            row["survived"] += 1
            row[f"survived: {mutant.status}"] += 1
            survivors.append((mutant, diff))
    stale = [e for e in equivalents if e not in used]
    return counts, survivors, matched, stale


def write_report(mutants: list[Mutant], wall: float | None) -> int:
    from mutmut.configuration import config

    equivalents = load_equivalents()
    counts, survivors, matched, stale = classify(mutants, equivalents)
    tests = tests_by_module()
    out = ["# Mutation testing report", "",
           "Written by `tools/mutate.py` (`make mutate`); not committed: run it again to see "
           "the current state. Reasoned equivalent mutants: `mutation/equivalent.md`.", ""]
    if wall is not None:
        out += [f"Wall time of the run: {wall / 60:.1f} min ({os.cpu_count()} cores).", ""]
    out += ["| module | tried | killed | timeout | equivalent | survived |",
            "|---|---:|---:|---:|---:|---:|"]
    total: Counter[str] = Counter()
    for module in sorted(counts):
        row = counts[module]
        total.update(row)
        out.append(f"| `{module}` | {row['tried']} | {row['killed']} | {row['timeout']} | "
                   f"{row['equivalent']} | {row['survived']} |")
    out.append(f"| **all** | {total['tried']} | {total['killed']} | {total['timeout']} | "
               f"{total['equivalent']} | {total['survived']} |")
    kinds = {k: v for k, v in total.items() if k.startswith("survived: ")}
    if kinds:
        out += ["", "Survivors by mutmut status: "
                + ", ".join(f"{k.removeprefix('survived: ')} {v}" for k, v in sorted(kinds.items()))
                + " (\"no tests\": no selected test reaches the function)."]
    out += ["", f"## Surviving mutants ({len(survivors)})", ""]
    if not survivors:
        out.append("None.")
    for mutant, diff in sorted(survivors, key=lambda s: s[0].name):
        out += [f"### {mutant.module}.{mutant.function}", "",
                f"`{mutant.name}` ({mutant.status})", "", "```diff", diff, "```", ""]
    if stale:
        out += ["", f"## Entries of equivalent.md that matched no survivor ({len(stale)})", "",
                "Killed by a test now, or the code changed: remove or update them.", ""]
        out += [f"- `{e.function}`: {' / '.join(e.lines)}" for e in stale]
    out += ["", f"## Equivalent mutants matched ({len(matched)})", ""]
    out += [f"- `{m.name}` ({m.module}.{m.function})" for m, _ in sorted(matched,
                                                                          key=lambda s: s[0].name)]
    out += ["", "## Tests mutmut ran per module", "",
            "mutmut runs, per mutant, the tests that called the mutated function during its "
            "stats run; these are the files they come from.", ""]
    for module in sorted(counts):
        files = ", ".join(f"`{t.removeprefix('mutants/')}`" for t in sorted(tests.get(module, ())))
        out.append(f"- `{module}`: {files or 'none'}")
    skipped = not_mutated(config().only_mutate)
    out += ["", f"## Functions mutmut does not mutate ({len(skipped)})", "",
            "mutmut 3 leaves decorated functions alone (but classmethods and staticmethods). "
            "Their behaviour is covered by the same tests, but no mutant checks that.", ""]
    out += [f"- {line}" for line in skipped]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(out) + "\n")
    print("\n".join(out[: out.index(f"## Surviving mutants ({len(survivors)})")]))
    print(f"{len(survivors)} surviving, {len(matched)} equivalent; report: "
          f"{REPORT.relative_to(ROOT)}")
    return 1 if survivors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--again", action="store_true",
                        help="keep the last run's mutants; rerun the survivors (and NAMES)")
    parser.add_argument("--report-only", action="store_true", help="only write the report")
    # Twice the cores: a mutant's tests wait (on sockets, timers, child processes) about as
    # much as they compute; with one child a core, a whole run used 1.3 of 2 cores.
    parser.add_argument("--jobs", type=int, default=2 * (os.cpu_count() or 2))
    parser.add_argument("names", nargs="*", help="mutant names or globs to (re)run")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    wall = None
    if not args.report_only:
        names = list(args.names)
        if args.again:
            names += [m.name for m in load_results() if m.status not in DETECTED]
            if not names:
                print("nothing to rerun")
            # Tests changed since: let mutmut find again which tests reach which function.
            (MUTANTS / "mutmut-stats.json").unlink(missing_ok=True)
        else:
            shutil.rmtree(MUTANTS, ignore_errors=True)
        start = time.monotonic()
        if not args.again or names:
            KILLS.unlink(missing_ok=True)
            code = run_mutmut(args.jobs, names)
            save_killers()
            if code != 0:
                print(f"mutmut exited with {code}", file=sys.stderr)
                return code
        wall = time.monotonic() - start
    return write_report(load_results(), wall)


if __name__ == "__main__":
    sys.exit(main())
