"""The plumbing the figures of bench/figures.py share: sizes, one Pebble at a time, the
measured line of each figure, account registration, the issuing runs (made once and read by
several figures), states of stored certificates after a warm-up run, and the profile."""

from __future__ import annotations

import argparse
import contextlib
import pstats
import re
import statistics
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from _lab import (
    NO_RETRY_AFTER,
    PEBBLE_DEFAULT_RETRY_AFTER,
    BenchError,
    Budget,
    Proc,
    TimedOut,
    Tree,
    lab_config,
    log_size,
    pebble,
    read_from,
    run_proc,
    write_domains,
)
from _report import Result
from _state import note, stored_state
from pebble_lab import LabError, LabUnavailable, PebbleLab

RA = PEBBLE_DEFAULT_RETRY_AFTER
CACHE_FROM = 10_000  # smaller states are built afresh in seconds


@dataclass(frozen=True)
class Sizes:
    fleets: tuple[int, int]      # figure 1: the N-runs held to 2x and 5x the 1-run
    one_runs: int                # 1-certificate runs (median)
    issue_runs: int
    version_runs: int
    status_certs: int
    status_runs: int
    noop: tuple[tuple[int, int, float], ...]  # stored certificates, runs, target seconds
    rss_certs: int


FULL = Sizes((50, 500), 3, 7, 11, 1000, 7, ((10_000, 5, 0.5), (100_000, 3, 5.0)), 1000)
QUICK = Sizes((5, 20), 1, 3, 5, 200, 3, ((1000, 3, 0.5), (2000, 2, 5.0)), 20)


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], unit: str = "s") -> str:
    form = "{:.0f} ms" if unit == "ms" else "{:.3f} s"
    return f"median of {len(values)}, min {form.format(min(values))}, " \
           f"max {form.format(max(values))}"


class Bench:
    """What the figures share: the tree, one Pebble at a time, the issuing runs."""

    def __init__(self, tree: Tree, args: argparse.Namespace, sizes: Sizes, tmp: Path) -> None:
        self.tree, self.args, self.sizes, self.tmp = tree, args, sizes, tmp
        self.results: list[Result] = []
        self._lab: tuple[tuple[int, int], PebbleLab, contextlib.ExitStack] | None = None
        self._runs: dict[tuple[int, int, int], Proc | Exception] = {}
        self._dirs = 0

    # -- plumbing ------------------------------------------------------------------------

    def work(self, what: str) -> Path:
        self._dirs += 1
        path = self.tmp / f"{what}-{self._dirs}"
        path.mkdir()
        return path

    def setup_budget(self) -> Budget:
        """For unmeasured steps: bounded all the same."""
        return Budget(self.args.timeout)

    def lab(self, retry_after: dict[str, int] | None = None) -> PebbleLab:
        """A Pebble sending ``retry_after`` (None: whichever is running)."""
        if self._lab is not None and (retry_after is None or self._lab[0] == (
                retry_after["authz"], retry_after["order"])):
            return self._lab[1]
        self.close_lab()
        retry_after = retry_after or NO_RETRY_AFTER
        stack = contextlib.ExitStack()
        lab = stack.enter_context(pebble(self.work("pebble"), retry_after))
        self._lab = ((retry_after["authz"], retry_after["order"]), lab, stack)
        return lab

    def close_lab(self) -> None:
        if self._lab is not None:
            self._lab[2].close()
            self._lab = None

    def measure(self, key: str, label: str, unit: str, target: float | None, op: str,
                fn: Callable[[Budget], tuple[float, str]]) -> Result:
        result = Result(key, label, unit, target, op)
        budget = Budget(self.args.timeout)
        try:
            result.value, result.detail = fn(budget)
        except TimedOut as exc:
            result.timed_out = exc.spent
        except (BenchError, LabError, LabUnavailable) as exc:
            result.error = str(exc)
        except Exception as exc:  # a fault of the bench itself: the other figures go on
            traceback.print_exc()
            result.error = f"{exc.__class__.__name__}: {exc}"
        self.results.append(result)
        print(result.line(), flush=True)
        return result

    def register(self, config: Path, work: Path) -> None:
        """Register the account (not measured); a tree without `account register` gets
        it by issuing a throwaway name."""
        args = ("--config", str(config))
        if self.tree.cli("account", "register", *args, cwd=work,
                         budget=self.setup_budget()).returncode != 0:
            self.tree.cli("issue", f"account-{work.name}.bench.example", *args, cwd=work,
                          budget=self.setup_budget()).expect(0)

    def fresh_run(self, count: int, retry_after: dict[str, int], budget: Budget,
                  argv: list[str] | None = None, state: Path | None = None) -> Proc:
        """`certfleet run -v` ordering ``count`` new certificates with a registered
        account (``argv``: the command to run instead of ``python -m certfleet``;
        ``state``: the state directory, when not beside the rest of the run's files)."""
        lab = self.lab(retry_after)
        work = self.work(f"run{count}")
        domains = write_domains(work / "domains.txt",
                                [f"{work.name}-{i}.bench.example" for i in range(count)])
        config = lab_config(work / "certfleet.toml", lab, state or work / "state", domains)
        self.register(config, work)
        note(f"certfleet run: {count} new certificates, Pebble Retry-After "
             f"{retry_after['authz']} s/{retry_after['order']} s" + (" (profiled)" if argv else ""))
        command = [*(argv or self.tree.argv()), "run", "-v", "--config", str(config)]
        start = log_size(lab.pebble_log)  # what Pebble logs from here on is this run's
        proc = run_proc(command, env=self.tree.env, cwd=work, budget=budget).expect(0)
        proc.ca_log = read_from(lab.pebble_log, start)
        return proc

    def issuing_run(self, count: int, retry_after: dict[str, int], budget: Budget) -> Proc:
        """``fresh_run``, once per size: figures 1, 3 and 6 read the same run."""
        key = (count, retry_after["authz"], retry_after["order"])
        if key not in self._runs:
            try:
                self._runs[key] = self.fresh_run(count, retry_after, budget)
            except (TimedOut, BenchError) as exc:
                self._runs[key] = exc
                raise
        found = self._runs[key]
        if isinstance(found, Exception):
            raise found
        return found

    @contextlib.contextmanager
    def prepared(self, count: int) -> Iterator[tuple[Path, Path, Proc, Path]]:
        """A config over ``count`` stored certificates, nothing due, after two unmeasured
        `run`s, as cron's earlier runs would have made them: the first builds the planning
        index and compares the clock with the local Pebble, the second (nothing to ask)
        records the quiet run that later runs of a tree with ``quietrun`` replay."""
        work = self.work(f"stored{count}")
        cache = None if self.args.cache == "none" or count < CACHE_FROM \
            else Path(self.args.cache)
        with stored_state(self.tree, count, cache) as state:
            domains = work / "domains.txt"
            domains.write_text("".join(f"site{i}.bench.example www.site{i}.bench.example\n"
                                       for i in range(count)))
            config = lab_config(work / "certfleet.toml", self.lab(), state, domains)
            note(f"warm-up run over {count} stored certificates (not measured)")
            first = self.tree.cli("run", "--config", str(config), cwd=work,
                                  budget=self.setup_budget()).expect(2)
            self.tree.cli("run", "--config", str(config), cwd=work,
                          budget=self.setup_budget()).expect(2)
            yield config, work, first, state

    def profile(self, count: int) -> None:
        out = Path(self.args.profile).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        argv = [self.tree.python, "-m", "cProfile", "-o", str(out), "-m", "certfleet"]
        try:
            proc = self.fresh_run(count, RA, self.setup_budget(), argv)
        except (TimedOut, BenchError, LabError) as exc:
            print(f"profile: not made: {exc}")
            return
        print(f"\nprofile of `certfleet run` ordering {count} certificates under cProfile "
              f"({proc.wall:.1f} s wall, {proc.cpu:.1f} s CPU): {out}")
        print("(cProfile's clock is wall time: waits that block the event loop, such as "
              "fsync, count; waits on the CA in epoll do too)")
        stats = pstats.Stats(str(out), stream=sys.stdout)
        # By cumulative time, everything else is the chain main -> asyncio.run -> epoll.
        print(f"--- top 20 by cumulative time, functions in {self.tree.src}")
        stats.sort_stats("cumulative").print_stats("^" + re.escape(f"{self.tree.src}/"), 20)
        print("--- top 20 by own time (tottime), all functions")
        stats.sort_stats("tottime").print_stats(20)
