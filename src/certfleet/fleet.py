"""The batch job behind ``run``, ``issue`` and ``deploy``, in the order a run goes.

Wires the roles and touches nothing itself. A run: sweeps what a killed run left, checks
the clock against the CA's, refreshes renewal windows, plans every certificate, opens the
account at each CA that several of them order from, issues the due ones concurrently (each
under its own lock, so overlapping runs never order the same certificate twice, and its
result recorded under that lock: a success in the write that ends its order), then deploys
to every target that lacks the current version (``fleet_deploy``). A failure of one
certificate never stops the others; each certificate's line is reported as soon as it is
done.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from . import alerts, clockcheck, fleet_deploy, quietrun, ratelimits
from .errors import AcmeProblem, CertfleetError, ClaimedElsewhere, ConfigError, is_ca_fault
from .gcpause import importing
from .plan import CertPlan, make_plans
from .protocol import ari
from .quietrun import Inputs
from .ratelimits import Ledger
from .report import Outcome, Progress, Report
from .solvers.choose import make_solver, unusable
from .spec import CertSpec, JobConfig
from .state import CertState
from .store import CertStore, Snapshot, StoredCert, VersionMeta, open_store

if TYPE_CHECKING:
    from .ca import CaSessions
    from .deploy.batch import TransportFactory
    from .solvers import Solver

# The CA client, crypto, SSH and solver modules are imported where they are first needed:
# a run where nothing is due (the common cron case) never pays for importing them.

log = logging.getLogger(__name__)


def select(job: JobConfig, names: Sequence[str]) -> list[CertSpec]:
    """The certificates a run covers: all, or those named on the command line (a name
    selects every key type of its certificate)."""
    if not names:
        return list(job.certs)
    # As the domains file has them: WWW.Example.COM, bücher.example and a trailing dot
    # name the certificate the file lists as www.example.com, xn--bcher-kva.example.
    spelled = {raw: _as_listed(raw) for raw in names}
    wanted = set(spelled.values())
    chosen = [spec for spec in job.certs
              if spec.name in wanted or wanted.intersection(spec.names)]
    found = {n for spec in chosen for n in (*spec.names, spec.name)}
    unknown = [raw for raw, name in spelled.items() if name not in found]
    if unknown:
        raise ConfigError(f"not in the domains file: {', '.join(unknown)}")
    return chosen


def _as_listed(raw: str) -> str:
    from .names import normalize_identifier

    try:
        return normalize_identifier(raw)
    except ConfigError:
        return raw  # no name at all: "not in the domains file" says so, as written


async def run(job: JobConfig, specs: Sequence[CertSpec], *, force: bool = False,
              deploy_only: bool = False, transport: TransportFactory | None = None,
              emit: Callable[[Outcome], None] | None = None,
              store: CertStore | None = None, whole: bool = False,
              progress: Callable[[Progress], None] | None = None,
              quiet: Inputs | None = None) -> list[Outcome]:
    """The whole job for ``specs``; one outcome per certificate, in their order.

    ``whole``: this is a run over the whole fleet (cron's); a second one while another
    holds the fleet stops at once with ``FleetBusy`` instead of waiting its turn on every
    certificate. ``quiet``: what the job was made from; a whole run that turns out to have
    nothing to do is recorded for the next one to replay (``quietrun``).
    """
    from .ca import CaSessions  # the CA client (ssl, framing): not for `run --dry-run`

    if store is None:
        with contextlib.closing(open_store(job)) as opened:
            return await run(job, specs, force=force, deploy_only=deploy_only,
                             transport=transport, emit=emit, store=opened, whole=whole,
                             progress=progress, quiet=quiet)
    report = Report([spec.name for spec in specs], emit, progress)
    started = datetime.now(UTC)
    with store.whole_fleet() if whole else contextlib.nullcontext(), \
            store.running() as crashed:
        # Sweep: a killed run may have left half-uploaded files in local targets.
        if crashed:
            fleet_deploy.sweep_local(job, specs)
        recording = quiet is not None and whole and not (force or deploy_only or store.shared)
        # Before the snapshot: a change between the two is then seen as a change.
        seen = quietrun.marks(store.root, [s.name for s in specs]) if recording else []
        planned_ns = time.time_ns()
        async with CaSessions(job, store) as cas:
            plans, snaps = await _plan(cas, store, job, specs, force, deploy_only, report)
            if not deploy_only:
                await issue_due(cas, store, job, plans, report, force)
            asked = cas.asked
        await fleet_deploy.deploy(store, job, plans, report, everything=deploy_only,
                                  transport=transport)
        outcomes = report.finish()
        # Record and tell: the metrics file, the expiry alarm, the notifications.
        await alerts.after_run(store, job, specs, outcomes, started)
        if recording and not asked and quiet is not None:
            _record_quiet(store, job, quiet, specs, seen, planned_ns, plans, snaps, outcomes)
    return outcomes


def _record_quiet(store: CertStore, job: JobConfig, given: Inputs, specs: Sequence[CertSpec],
                  seen: list[int], planned_ns: int, plans: Sequence[CertPlan],
                  snaps: dict[str, Snapshot], outcomes: Sequence[Outcome]) -> None:
    clock = store.read_clock()
    stored = any(s.standing.names for s in snaps.values())
    until = quietrun.quiet_until(plans, snaps, outcomes, clock,
                                 check_clock=job.max_clock_skew > 0 and stored)
    if until is not None:
        quietrun.keep(store.root, given, names=[s.name for s in specs], seen=seen,
                      planned_ns=planned_ns, until=until, outcomes=outcomes, clock=clock)


async def _plan(cas: CaSessions, store: CertStore, job: JobConfig, specs: Sequence[CertSpec],
                force: bool, deploy_only: bool, report: Report,
                ) -> tuple[list[CertPlan], dict[str, Snapshot]]:
    """The plan, made offline first: what cannot be done (damaged state, no way to answer
    a challenge) is reported before any network. Then, where the CA has a say, the clock
    and the renewal windows, and the plan again."""
    now = datetime.now(UTC)
    snaps = store.snapshot([spec.name for spec in specs])
    plans = _planned(job, specs, snaps, force and not deploy_only, orders=not deploy_only)
    if not deploy_only:
        stored = any(s.standing.names and s.damage is None for s in snaps.values())
        ordering = any(p.due and not p.blocked for p in plans)
        # Clock: compared daily (or when it went back) while certificates are kept, since
        # "not due" is decided by it too; and always before anything is ordered.
        if job.max_clock_skew > 0 and (
                ordering or (stored and clockcheck.check_needed(store, now))):
            await clockcheck.compare(lambda: cas.client(job.directory), store,
                                     job.max_clock_skew)
        # Windows: the CA's renewal information (RFC 9773) where it is due for a refresh.
        refreshed = await refresh_windows(cas, store, snaps)
        if refreshed is not snaps:
            snaps = refreshed
            plans = _planned(job, specs, refreshed, force)
        plans = within_limits(job, store, plans, now)
    for plan in plans:
        outcome = report[plan.name]
        outcome.renew_at, outcome.targets = plan.renew_at, len(plan.spec.targets)
        # `deploy` orders nothing: a renewal's back-off is not its failure.
        outcome.error = plan.blocked or (None if deploy_only else plan.backoff)
        outcome.waiting = plan.backoff is not None and not deploy_only
        if plan.deferred:
            outcome.result, outcome.note = "deferred", plan.deferred
        elif deploy_only and plan.serial is None and outcome.error is None:
            outcome.note = "not issued yet: nothing to deploy"
        issues_later = not deploy_only and plan.due and not plan.blocked
        deploys_later = bool(plan.stale_targets) or (deploy_only and bool(plan.spec.targets))
        if not issues_later and not deploys_later:
            report.done(plan.name)
    return plans, snaps


def _planned(job: JobConfig, specs: Sequence[CertSpec], snaps: dict[str, Snapshot],
             force: bool, *, orders: bool = True) -> list[CertPlan]:
    """The plans; ``orders=False`` (``deploy``): how a challenge would be answered is not
    asked, since nothing is ordered."""
    return make_plans(specs, snaps, job, datetime.now(UTC),
                      (lambda c: unusable(job, c)) if orders else (lambda c: None),
                      force=force)


def within_limits(job: JobConfig, store: CertStore | None, plans: Sequence[CertPlan],
                  now: datetime) -> list[CertPlan]:
    """The plans with what exceeds a CA's new-order limit deferred (``ratelimits``)."""
    ca_of = {p.name: job.cas(p.spec)[0] for p in plans if p.due and not p.blocked}
    urls = set(ca_of.values())
    ledgers = {url: store.order_ledger(url) for url in urls} if store is not None else {}
    limits = {url: found for url in urls if (found := job.limits(url)) is not None}
    return ratelimits.budget(plans, ca_of, limits, ledgers, now)


async def refresh_windows(cas: CaSessions, store: CertStore,
                          snaps: dict[str, Snapshot]) -> dict[str, Snapshot]:
    """Ask each certificate's CA for renewal windows (RFC 9773) whose Retry-After has
    passed. A certificate without an authority key identifier has no ARI certificate ID and
    keeps the lifetime rule."""
    now = datetime.now(UTC)
    stale: dict[str, list[tuple[str, VersionMeta]]] = {}
    for name, snap in snaps.items():
        if snap.damage is None and snap.standing.ari_due(now) and (meta := snap.meta):
            stale.setdefault(meta.directory, []).append((name, meta))
    if not stale:
        return snaps
    from . import renewal_info

    for url, certs in stale.items():
        try:
            await renewal_info.refresh(await cas.client(url), store, certs)
        except CertfleetError as exc:  # the lifetime rule stays in charge; planning goes on
            log.warning("renewal information from %s: %s", url, exc)
    return {**snaps, **store.snapshot([name for certs in stale.values() for name, _ in certs])}


async def issue_due(cas: CaSessions, store: CertStore, job: JobConfig,
                    plans: Sequence[CertPlan], report: Report, force: bool) -> None:
    """Issue every due certificate, as many at once as the job allows."""
    due = [p for p in plans if p.due and not p.blocked]
    if not due:
        return
    gate = asyncio.Semaphore(job.concurrency)
    async with contextlib.AsyncExitStack() as solvers_open:
        solvers: dict[str, Solver] = {}
        for challenge in sorted({p.spec.challenge for p in due}):
            try:  # a challenge type that cannot be set up fails only its own certificates
                solvers[challenge] = await solvers_open.enter_async_context(
                    make_solver(job, challenge, store.challenge_dir(), store.tokens))
            except CertfleetError as exc:
                for plan in (p for p in due if p.spec.challenge == challenge):
                    report[plan.name].error = str(exc)
                    await _failed_unasked(store, plan.name, str(exc))
                    report.done(plan.name)

        async def one(plan: CertPlan) -> None:
            async with gate:
                report.working(plan.name)
                await _issue_one(cas, store, job, plan, solvers[plan.spec.challenge], force,
                                 report[plan.name])
            if not (report[plan.name].stored and plan.spec.targets) and not plan.stale_targets:
                report.done(plan.name)

        ordering = [p for p in due if p.spec.challenge in solvers]
        if store.shared:  # hosts sharing the store start at different certificates
            random.shuffle(ordering)
        await _open_accounts(cas, job, ordering)
        with _orders_counted(cas, store, job, ordering):
            await asyncio.gather(*(one(p) for p in ordering))
    log.info("%d requests to the CA", cas.requests)


async def _failed_unasked(store: CertStore, name: str, error: str) -> None:
    """A due certificate that could not be ordered for a reason of this host (its challenge
    could not be set up: the port taken, the webroot gone) is recorded as failed, so that
    ``status`` and ``monitor`` do not go on showing the last success; the CA was not
    asked, so no back-off."""
    attempt = partial(CertState.after_attempt, now=datetime.now(UTC), result="failed",
                      error=error)
    try:
        async with store.locked(name, skip_if_claimed=True):
            await asyncio.to_thread(store.update_state, name, attempt)
    except CertfleetError as exc:  # the lock or the record itself: the report says it
        log.warning("%s: cannot record the failure: %s", name, exc)


async def _open_accounts(cas: CaSessions, job: JobConfig, plans: Sequence[CertPlan]) -> None:
    """The account at each CA that two or more certificates of the run order from, opened
    before they start. Its answers are the first timings of the CA's round trip, which
    sizes the nonces in flight, and an event loop busy with the other certificates'
    start-up (each one's lock, its records) read them 25 to 200 ms late. A lone certificate
    has nothing to wait behind, and keeps its own checks before any word to the CA. A CA
    that fails here is tried once more by the first certificate; the others share that
    failure (``CaSessions.session``) and move on to their next CA."""
    async def open_one(url: str) -> None:
        with contextlib.suppress(CertfleetError):
            await cas.session(url)

    counted = collections.Counter(job.cas(p.spec)[0] for p in plans)
    await asyncio.gather(*(open_one(url) for url, count in counted.items() if count > 1))


@contextlib.contextmanager
def _orders_counted(cas: CaSessions, store: CertStore, job: JobConfig,
                    plans: Sequence[CertPlan]) -> Iterator[None]:
    """Reserve the run's new orders in each limited CA's ledger before ordering (so that an
    overlapping run counts them), and record the orders placed instead when it ends. A run
    killed meanwhile leaves its reservation: counted, as the orders may have been placed."""
    start = datetime.now(UTC)
    reserved: dict[str, list[datetime]] = {}
    for plan in plans:
        reserved.setdefault(job.cas(plan.spec)[0], []).append(start)
    limited = {url: limits.window for url in {*reserved, *job.ca_limits}
               if (limits := job.limits(url)) is not None and limits.new_orders is not None}
    reserved = {url: times for url, times in reserved.items() if url in limited}
    for url, times in reserved.items():
        store.change_order_ledger(url, partial(_reserve, times, start, limited[url]))
    try:
        yield
    finally:
        end = datetime.now(UTC)
        placed = cas.orders_placed()
        for url in {*reserved, *placed}.intersection(limited):
            settle = partial(_settle, reserved.get(url, []), [end] * placed.get(url, 0),
                             end, limited[url])
            try:
                store.change_order_ledger(url, settle)
            except CertfleetError as exc:  # the CA still enforces its limit
                log.warning("%s: cannot record the orders placed: %s", url, exc)


def _reserve(times: list[datetime], now: datetime, window: timedelta,
             ledger: Ledger) -> Ledger:
    return ledger.with_orders(times, now, window)


def _settle(reserved: list[datetime], placed: list[datetime], now: datetime,
            window: timedelta, ledger: Ledger) -> Ledger:
    return ledger.without(reserved).with_orders(placed, now, window)


async def _issue_one(cas: CaSessions, store: CertStore, job: JobConfig, plan: CertPlan,
                     solver: Solver, force: bool, outcome: Outcome) -> None:
    spec = plan.spec
    try:
        async with store.locked(spec.name, skip_if_claimed=True):
            # Another run may have renewed it while this one waited for the lock: then the
            # active serial is no longer the one planned with, and the plan is made again.
            # In a shared store another host may also have tried and failed (its back-off
            # is in the record now), so there the plan is always made again.
            current = store.current(spec.name)
            if store.shared or (current.meta.serial if current else None) != plan.serial:
                plan = make_plans([spec], store.snapshot([spec.name]), job, datetime.now(UTC),
                                  lambda c: None, force=force)[0]
            if plan.due is None:
                outcome.renew_at = plan.renew_at
                return
            log.info("%s: issuing (%s)", spec.name, plan.due)
            outcome.attempted = True
            result = "renewed" if current is not None else "issued"
            try:
                # A success is recorded with the order's end, in the same write.
                outcome.stored = await _issue_at_cas(cas, job, store, spec, solver, current,
                                                     partial(_succeeded, result))
                outcome.result = result
                return
            except CertfleetError as exc:
                outcome.error = str(exc)
                cause = exc if isinstance(exc, AcmeProblem) else exc.__cause__
                if isinstance(cause, AcmeProblem):
                    outcome.retry_after = cause.retry_after
            # Record the failure, and how long to leave the certificate alone.
            attempt = partial(CertState.after_attempt, now=datetime.now(UTC),
                              result=outcome.result, error=outcome.error, asked_ca=True,
                              retry_after=outcome.retry_after)
            await asyncio.to_thread(store.update_state, spec.name, attempt)
    except ClaimedElsewhere as exc:  # another Work host is on it: its run reports it
        outcome.note = str(exc)
    except CertfleetError as exc:  # the lock or the record itself failed
        outcome.error = outcome.error or str(exc)


def _succeeded(result: str, state: CertState) -> CertState:
    return state.after_attempt(datetime.now(UTC), result, asked_ca=True)


async def _issue_at_cas(cas: CaSessions, job: JobConfig, store: CertStore, spec: CertSpec,
                        solver: Solver, current: StoredCert | None,
                        outcome: Callable[[CertState], CertState]) -> StoredCert:
    """Issue at the certificate's CA; when that fails for reasons of the CA, at the next."""
    with importing():  # the first time: long-lived objects (gcpause.py)
        from . import issuance, preflight

    cas_to_try = job.cas(spec)
    failures: list[str] = []
    for i, url in enumerate(cas_to_try):
        try:
            session = await cas.session(url)
            if i == 0:  # the load balancers do not depend on the CA: probe once
                await preflight.before_order(job, spec, solver, session.key.thumbprint)
            replaces = None
            if current is not None and current.meta.aki and current.meta.directory == url:
                replaces = ari.cert_id(bytes.fromhex(current.meta.aki), current.meta.serial)
            return await issuance.issue(session, store, spec, solver, replaces=replaces,
                                        outcome=outcome)
        except CertfleetError as exc:
            if not is_ca_fault(exc) or i == len(cas_to_try) - 1:
                if failures:
                    raise CertfleetError("; ".join([*failures, f"{url}: {exc}"])) from exc
                raise
            failures.append(f"{url}: {exc}")
            log.warning("%s: %s failed (%s); trying %s", spec.name, url, exc, cas_to_try[i + 1])
    raise AssertionError("unreachable")
