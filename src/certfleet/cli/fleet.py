"""``run``, ``deploy`` and ``status``: the domains file's certificates. Parses and prints;
the work is ``fleet``'s, the input ``config``'s, the status rows ``cli.status``'s.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config.sources import job_from
from ..report import EXIT_CHANGED, EXIT_FAILED, EXIT_NOTHING, Outcome, exit_code, summary
from . import output

# `status` reads the store and prints: asyncio and everything that talks to a CA or a target
# are imported by `run` and `deploy` when they run.


class _Lines:
    """Each certificate's line as it is done; with ``quiet``, only what changed or failed,
    and the summary only after such a line. On a terminal, a progress line on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.printed, self.flushing = quiet, False, False
        self.progress = output.ProgressLine() if output.ProgressLine.wanted() else None

    def __call__(self, outcome: Outcome) -> None:
        if not self.quiet or outcome.changed or outcome.failed:
            if self.progress is not None:
                self.progress.clear()
            output.say(outcome.line(), flush=False)
            self.printed = True
            self._flush_soon()

    def _flush_soon(self) -> None:
        """Flush once the run's task yields: the lines of a burst (every certificate found
        not due, at once) go out in one write, a line on its own goes out at once."""
        if self.flushing:
            return
        import asyncio  # loaded already: the lines come from a run's event loop

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            output.flush()
            return
        self.flushing = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flushing = False
        output.flush()

    def finish(self, outcomes: list[Outcome]) -> int:
        if self.progress is not None:
            self.progress.clear()
        if self.printed or not self.quiet:
            output.say(summary(outcomes))
        return exit_code(outcomes)


def run(args: argparse.Namespace) -> int:
    code, quiet = _replayed(args)  # before importing what only a full run needs
    if code is not None:
        return code
    import asyncio

    from .. import fleet, plan
    from ..store import open_store

    job = job_from(vars(args), need_domains=True)
    specs = fleet.select(job, args.names)
    if args.dry_run:
        store = open_store(job, create=False) \
            if job.state_dir.exists() or job.store.shared else None
        plans = _dry_plans(job, specs, store, args.force)
        for line in plan.describe(plans, job):
            output.say(line)
        # The exit code the run would have: 1 something would fail (a certificate still
        # backing off counts as failed in the run too), 0 something would be done, 2
        # nothing to do.
        if any(p.blocked or p.backoff for p in plans):
            return EXIT_FAILED
        return EXIT_CHANGED if any(p.due or p.stale_targets for p in plans) else EXIT_NOTHING
    lines = _Lines(args.quiet)
    output.more_open_files()
    outcomes = asyncio.run(fleet.run(job, specs, force=args.force, emit=lines,
                                     whole=not args.names, progress=lines.progress,
                                     quiet=quiet))
    return lines.finish(outcomes)


def _replayed(args: argparse.Namespace) -> tuple[int | None, Any]:
    """A plain ``run`` (no names, no ``--force``, no ``-v``) whose last run found nothing
    to do and whose inputs and certificates have not changed since: that run's lines again,
    and its exit code (``quietrun``). Else None, and the inputs for this run to record."""
    import os

    from .. import quietrun
    from ..config.sources import config_path

    if args.names or args.force or args.dry_run or args.verbose:
        return None, None
    from ..errors import ConfigError

    try:
        base = job_from(vars(args), need_domains=True, with_certs=False)
    except ConfigError:
        return None, None  # the full job says what is wrong, with the domains file's faults
    if not quietrun.eligible(base) or not base.state_dir.is_dir():
        return None, None
    given = quietrun.inputs(vars(args), os.environ,
                            [config_path(vars(args), os.environ), base.domains_file])
    if given is None:
        return None, None
    found = _replay(base, given)
    if found is None:
        return None, given
    if not args.quiet:
        output.say("\n".join(found[0] + [found[1]]))
    return EXIT_NOTHING, given


def _replay(base: Any, given: Any) -> tuple[list[str], str] | None:
    import contextlib
    from datetime import UTC, datetime

    from .. import quietrun
    from ..errors import CertfleetError
    from ..store import open_store

    try:
        with contextlib.closing(open_store(base, create=False)) as store, \
                store.whole_fleet():
            if store.killed_runs():
                return None  # the full run sweeps what they left first
            return quietrun.replay(store.root, given, datetime.now(UTC), store.read_clock())
    except (OSError, CertfleetError):
        return None  # the full run meets it again, and says so in its own words


def _dry_plans(job: Any, specs: Any, store: Any, force: bool) -> Any:
    """The plan from what is on disk, without asking any CA (no ARI refresh, no clock)."""
    from datetime import UTC, datetime

    from ..plan import make_plans
    from ..solvers.choose import unusable
    from ..state import CertState
    from ..store import Snapshot

    snaps = store.snapshot([s.name for s in specs]) if store is not None else \
        {s.name: Snapshot(None, CertState()) for s in specs}
    from ..fleet import within_limits

    now = datetime.now(UTC)
    plans = make_plans(specs, snaps, job, now, lambda c: unusable(job, c), force=force)
    return within_limits(job, store, plans, now)


def deploy(args: argparse.Namespace) -> int:
    import asyncio

    from .. import fleet

    job = job_from(vars(args), need_domains=True)
    specs = fleet.select(job, args.names)
    lines = _Lines(args.quiet)
    outcomes = asyncio.run(fleet.run(job, specs, deploy_only=True, emit=lines,
                                     progress=lines.progress))
    return lines.finish(outcomes)


def status(args: argparse.Namespace) -> int:
    from ..config.sources import config_path
    from ..store import open_store
    from . import status as status_view

    configured = config_path(vars(args), _env()) is not None or args.domains is not None
    job = job_from(vars(args), need_domains=False)
    store = open_store(job, create=False)
    rows = status_view.rows(store, job if configured else None)
    table = args.table or (not args.lines and sys.stdout.isatty())
    if args.json:
        output.say(status_view.as_json(rows))
    else:  # one write, not one a line: the table is whole before anything is printed
        shown = (status_view.as_table(rows) if table and rows else
                 status_view.as_text(rows))
        output.say("\n".join(shown))
    # A damaged certificate needs a person: say so in the exit code too.
    return EXIT_FAILED if any("damaged" in row for row in rows) else 0


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
