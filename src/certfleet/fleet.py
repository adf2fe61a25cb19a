"""The batch job behind ``certfleet run`` and ``certfleet deploy``.

Wires the roles and touches nothing itself: plan every certificate, issue the due ones
concurrently (one account, a bounded number in flight, each under its own lock so that
overlapping runs never order the same certificate twice), then deploy to every target that
lacks the current version, one connection and one reload per host, and report one outcome
per certificate. A failure of one certificate never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import clockcheck
from . import plan as planning
from .errors import (
    AcmeProblem,
    CertfleetError,
    ChallengeError,
    ConfigError,
    StoreError,
    is_ca_fault,
)
from .names import storage_name
from .plan import CertPlan
from .protocol import ari, backoff
from .spec import PEM_NAMES, CertSpec, HostSettings, JobConfig
from .store import Store, StoredCert, VersionMeta

if TYPE_CHECKING:
    from .acme_client import AcmeClient
    from .deploy import DeployFile
    from .deploy.batch import DeployJob, DeployResult, TransportFactory
    from .issue import Session
    from .solvers import Solver

# The CA client, crypto, SSH and solver modules are imported where they are first needed:
# a run where nothing is due (the common cron case) never pays for importing them.

log = logging.getLogger(__name__)
LOCK_WAIT = 900.0


@dataclass
class Outcome:
    """What happened to one certificate in this run."""

    name: str
    result: str = "not due"          # issued | renewed | not due | failed
    error: str | None = None
    stored: StoredCert | None = None
    renew_at: datetime | None = None
    deployed: list[DeployResult] = field(default_factory=list)
    targets: int = 0
    attempted: bool = False          # the CA was (or would have been) asked this run
    waiting: bool = False            # left alone: an earlier failure's backoff runs
    retry_after: float | None = None  # the CA's Retry-After on the failure, if any

    @property
    def failed(self) -> bool:
        return self.error is not None or any(not d.ok for d in self.deployed)

    @property
    def changed(self) -> bool:
        return self.result in ("issued", "renewed") or any(d.ok for d in self.deployed)

    def line(self) -> str:
        if self.error is not None:
            text = f"{self.name}: failed: {self.error}"
        elif self.result in ("issued", "renewed") and self.stored is not None:
            text = f"{self.name}: {self.result} (expires {self.stored.meta.not_after[:10]})"
        elif self.renew_at is not None:
            text = f"{self.name}: not due until {self.renew_at:%Y-%m-%d}"
        else:
            text = f"{self.name}: {self.result}"
        if self.deployed:
            ok = sum(d.ok for d in self.deployed)
            text += f", deployed to {ok}/{len(self.deployed)} targets"
            for bad in (d for d in self.deployed if not d.ok):
                text += f"; {bad.target.key}: {bad.error}"
        return text


def select(job: JobConfig, names: Sequence[str]) -> list[CertSpec]:
    """The certificates a run covers: all, or those named on the command line (a name
    selects every key type of its certificate)."""
    if not names:
        return list(job.certs)
    wanted = set(names)
    chosen = [spec for spec in job.certs
              if spec.name in wanted or wanted.intersection(spec.names)]
    found = {n for spec in chosen for n in (*spec.names, spec.name)}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ConfigError(f"not in the domains file: {', '.join(unknown)}")
    return chosen


Known = dict[str, tuple["VersionMeta | None", dict[str, Any]]]


async def compare_clock(sessions: Sessions, store: Store, job: JobConfig) -> None:
    await clockcheck.compare(lambda: sessions.client(job.directory), store,
                             job.max_clock_skew)


async def refresh_windows(sessions: Sessions, store: Store,
                          specs: Sequence[CertSpec]) -> Known:
    """Ask each certificate's CA for renewal windows (RFC 9773) whose Retry-After has
    passed. A certificate without an authority key identifier has no ARI certificate ID and
    keeps the lifetime rule."""
    now = datetime.now(UTC)
    known = store.snapshot([spec.name for spec in specs])
    stale: dict[str, list[tuple[str, VersionMeta]]] = {}
    for name, (meta, state) in known.items():
        if meta is not None and meta.aki and ari.fetch_due(state.get("ari"), meta.serial, now):
            stale.setdefault(meta.directory, []).append((name, meta))
    if not stale:
        return known
    from . import renewal_info

    for url, certs in stale.items():
        try:
            await renewal_info.refresh(await sessions.client(url), store, certs)
        except CertfleetError as exc:  # the lifetime rule stays in charge; planning goes on
            log.warning("renewal information from %s: %s", url, exc)
    return {**known, **store.snapshot([name for certs in stale.values() for name, _ in certs])}


def make_plans(store: Store, specs: Sequence[CertSpec], job: JobConfig, *,
               force: bool = False, known: Known | None = None) -> list[CertPlan]:
    now = datetime.now(UTC)
    if known is None:
        known = store.snapshot([spec.name for spec in specs])
    plans = [planning.plan_cert(spec, *known[spec.name], now, force=force,
                                fraction=job.renew_fraction) for spec in specs]
    return planning.together(plans)


def make_solver(job: JobConfig, challenge: str, store: Store) -> Solver:
    """The solver for one challenge type, as configured; ``ConfigError`` if it is not."""
    from .solvers.http_server import HttpServerSolver, parse_listen
    from .solvers.token_dir import StatelessSolver, TokenDirSolver
    from .solvers.webroot import WebrootSolver

    how = job.challenges
    if challenge == "http-01":
        mode = how.http_mode
        if mode == "listen" and how.http_listen:
            return HttpServerSolver(*parse_listen(how.http_listen))
        if mode == "webroot" and how.webroot:
            return WebrootSolver(how.webroot)
        if mode == "serve":
            return TokenDirSolver(store.challenge_dir())
        if mode == "stateless":
            return StatelessSolver()
        raise ConfigError("no way to answer http-01: set [challenge] mode, webroot or "
                          "http_listen in certfleet.toml, or pass --webroot / --http-listen")
    if challenge == "dns-01":
        return _dns_solver(job)
    if challenge == "tls-alpn-01":
        from .solvers.tls_alpn import TlsAlpnSolver

        if not how.tls_alpn_listen:
            raise ConfigError("tls-alpn-01 needs [challenge] tls_alpn_listen = \"HOST:443\"")
        return TlsAlpnSolver(*parse_listen(how.tls_alpn_listen))
    raise ConfigError(f"challenge {challenge} is not configured")


def _dns_solver(job: JobConfig) -> Solver:
    from .solvers.dns_common import parse_server

    dns = job.dns
    if dns is None:
        raise ConfigError("dns-01 needs a [dns] section (rfc2136 or hook) in certfleet.toml")
    nameservers = [parse_server(n, dns.ns_port) for n in dns.nameservers] or None
    if dns.method == "hook":
        from .solvers.dns_hook import HookSolver

        return HookSolver(dns.hook, timeout=dns.hook_timeout, nameservers=nameservers,
                          delay=dns.hook_delay, propagation_timeout=dns.propagation_timeout)
    from .solvers.dns_rfc2136 import RFC2136Solver

    if not (dns.server and dns.tsig_key_name and dns.tsig_secret):
        raise ConfigError("[dns] rfc2136 needs server, tsig_key_name and a TSIG secret")
    return RFC2136Solver(parse_server(dns.server), dns.tsig_key_name, dns.tsig_secret,
                         dns.tsig_algorithm, nameservers=nameservers, ns_port=dns.ns_port,
                         propagation_timeout=dns.propagation_timeout)


@contextlib.asynccontextmanager
async def cert_lock(store: Store, name: str, wait: float = LOCK_WAIT) -> AsyncIterator[None]:
    """The certificate's lock, waited for without blocking the other certificates."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while (fd := store.try_lock(name)) is None:
        if loop.time() > deadline:
            raise StoreError(f"{name}: still locked by another run after {wait:.0f}s")
        await asyncio.sleep(0.2)
    try:
        yield
    finally:
        store.unlock(fd)


async def _preflight(job: JobConfig, spec: CertSpec, solver: Solver, thumbprint: str) -> None:
    """Fail the certificate, before any order, if a load balancer cannot serve its tokens."""
    from . import preflight

    names = [n for n in spec.names if not n.startswith("*.")]
    if spec.challenge != "http-01" or not job.lb.addresses or not job.lb.preflight or not names:
        return
    results = await preflight.probe(names, solver, thumbprint, job.lb.endpoints(), job.lb.port)
    failed = [r for r in results if not r.ok]
    if failed:
        raise ChallengeError("preflight (CA not asked): "
                             + "; ".join(f"{r.lb} for {r.name}: {r.error}" for r in failed))


async def _issue_one(sessions: Sessions, store: Store, job: JobConfig, plan: CertPlan,
                     solvers: Mapping[str, Solver], force: bool, outcome: Outcome) -> None:
    spec = plan.spec
    async with cert_lock(store, spec.name):
        # Another run may have renewed it while this one waited for the lock: then the
        # active serial is no longer the one planned with, and the plan is made again.
        current = store.current(spec.name)
        fresh = plan
        if (current.meta.serial if current else None) != plan.serial:
            fresh = make_plans(store, [spec], job, force=force)[0]
        if fresh.due is None:
            outcome.renew_at = fresh.renew_at
            return
        solver = solvers.get(spec.challenge)
        if solver is None:
            raise ConfigError(f"{spec.source}: challenge {spec.challenge} is not configured")
        log.info("%s: issuing (%s)", spec.name, fresh.due)
        outcome.attempted = True
        outcome.stored = await _issue_at_cas(sessions, store, job, spec, solver, current)
        outcome.result = "renewed" if current is not None else "issued"


async def _issue_at_cas(sessions: Sessions, store: Store, job: JobConfig, spec: CertSpec,
                        solver: Solver, current: StoredCert | None) -> StoredCert:
    """Issue at the certificate's CA; when that fails for reasons of the CA, at the next."""
    from .issue import issue

    cas = job.cas(spec)
    failures: list[str] = []
    for i, url in enumerate(cas):
        try:
            session = await sessions.session(url)
            if i == 0:  # the load balancers do not depend on the CA: probe once
                await _preflight(job, spec, solver, session.key.thumbprint)
            replaces = None
            if current is not None and current.meta.aki and current.meta.directory == url:
                replaces = ari.cert_id(bytes.fromhex(current.meta.aki), current.meta.serial)
            return await issue(session, store, spec.names, spec.key_type, solver,
                               spec.reuse_key, profile=spec.profile, replaces=replaces,
                               preferred_chain=spec.preferred_chain, store_as=spec.name)
        except CertfleetError as exc:
            if not is_ca_fault(exc) or i == len(cas) - 1:
                if failures:
                    raise CertfleetError("; ".join([*failures, f"{url}: {exc}"])) from exc
                raise
            failures.append(f"{url}: {exc}")
            log.warning("%s: %s failed (%s); trying %s", spec.name, url, exc, cas[i + 1])
    raise AssertionError("unreachable")


class Sessions:
    """One client and one account per CA, made when first needed and closed with the run."""

    def __init__(self, job: JobConfig, store: Store, stack: contextlib.AsyncExitStack) -> None:
        self.job, self.store, self.stack = job, store, stack
        self._clients: dict[str, AcmeClient] = {}
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def client(self, url: str) -> AcmeClient:
        if url not in self._clients:
            from .acme_client import AcmeClient

            job = self.job
            self._clients[url] = await self.stack.enter_async_context(AcmeClient(
                url, ca_bundle=job.ca_bundle, allow_http=job.allow_http,
                connections=max(4, job.concurrency)))
        return self._clients[url]

    async def session(self, url: str) -> Session:
        """The account at ``url``, looked up or registered once even when many wait."""
        from .account_ops import eab_settings
        from .issue import open_account

        async with self._locks.setdefault(url, asyncio.Lock()):
            if url not in self._sessions:
                # External account binding belongs to the primary CA's account.
                eab = eab_settings(self.job) if url == self.job.directory else None
                self._sessions[url] = await open_account(
                    await self.client(url), self.store, self.job.account_key_type,
                    self.job.contact, eab=eab)
        return self._sessions[url]

    @property
    def requests(self) -> int:
        return sum(client.total_requests for client in self._clients.values())


async def issue_due(sessions: Sessions, store: Store, job: JobConfig,
                    plans: Sequence[CertPlan], outcomes: dict[str, Outcome],
                    force: bool) -> None:
    due = [p for p in plans if p.due]
    if not due:
        return
    gate = asyncio.Semaphore(job.concurrency)
    solvers: dict[str, Solver] = {}
    for challenge in sorted({p.spec.challenge for p in due}):
        try:  # a challenge type that cannot be set up fails only its own certificates
            solvers[challenge] = await sessions.stack.enter_async_context(
                make_solver(job, challenge, store))
        except CertfleetError as exc:
            for plan in (p for p in due if p.spec.challenge == challenge):
                outcomes[plan.name].error = str(exc)

    async def one(plan: CertPlan) -> None:
        async with gate:
            try:
                await _issue_one(sessions, store, job, plan, solvers, force,
                                 outcomes[plan.name])
            except CertfleetError as exc:
                outcomes[plan.name].error = str(exc)
                cause = exc if isinstance(exc, AcmeProblem) else exc.__cause__
                if isinstance(cause, AcmeProblem):
                    outcomes[plan.name].retry_after = cause.retry_after

    await asyncio.gather(*(one(p) for p in due if outcomes[p.name].error is None))
    log.info("%d requests to the CA", sessions.requests)


def _files(store: Store, stored: StoredCert, settings: HostSettings,
           name: str) -> tuple[DeployFile, ...]:
    from .deploy import DeployFile

    return tuple(
        DeployFile(settings.file_name(pem, name), store.read_file(stored, pem),
                   settings.key_mode if pem == "privkey.pem" else settings.mode)
        for pem in PEM_NAMES
    )


def deploy_jobs(store: Store, job: JobConfig, plans: Sequence[CertPlan],
                outcomes: dict[str, Outcome], everything: bool) -> list[DeployJob]:
    """What to deploy: every target (``deploy``), else those without the current version."""
    jobs = []
    for plan in plans:
        outcome = outcomes[plan.name]
        if not plan.spec.targets:
            continue  # a failed renewal still lets a target that lacks it get the current one
        # The active version, not necessarily the one this run issued: an overlapping run
        # may have activated a newer one meanwhile.
        stored = store.current(plan.name)
        if stored is None:
            continue
        fresh = outcome.stored is not None or everything
        for target in plan.spec.targets if fresh else plan.stale_targets:
            from .deploy.batch import DeployJob

            settings = job.host(target)
            files = _files(store, stored, settings, storage_name(plan.name))
            jobs.append(DeployJob(plan.name, target, files, stored.meta.serial, settings,
                                  stored.meta.version))
    return jobs


def mark_in_progress(store: Store, jobs: Sequence[DeployJob]) -> None:
    now = datetime.now(UTC).isoformat()
    for name in {job.cert for job in jobs}:
        state = store.read_state(name)
        for job in (j for j in jobs if j.cert == name):
            state.setdefault("deploy", {})[job.target.key] = {
                "at": now, "error": "interrupted while deploying"}
        store.write_state(name, state)


def record_deploys(store: Store, results: Sequence[DeployResult],
                   outcomes: dict[str, Outcome]) -> None:
    now = datetime.now(UTC).isoformat()
    for result in results:
        outcomes[result.cert].deployed.append(result)
        state = store.read_state(result.cert)
        record: dict[str, Any] = {"at": now}
        if result.ok:
            record.update(serial=f"{result.serial:x}", version=result.version)
        else:
            record["error"] = result.error
        state.setdefault("deploy", {})[result.target.key] = record
        store.write_state(result.cert, state)


def record_results(store: Store, outcomes: dict[str, Outcome]) -> None:
    """The last result of each certificate that did something, and its backoff: a failed
    attempt makes the next one wait; a success clears the wait."""
    now = datetime.now(UTC)
    for outcome in outcomes.values():
        if outcome.waiting or (outcome.error is None and outcome.result == "not due"):
            continue
        state = store.read_state(outcome.name)
        state["last"] = {"at": now.isoformat(),
                         "result": "failed" if outcome.error else outcome.result,
                         "error": outcome.error}
        if outcome.error is not None and outcome.attempted:
            state["backoff"] = backoff.after_failure(state.get("backoff"), now, outcome.error,
                                                     outcome.retry_after)
        else:
            state.pop("backoff", None)
        store.write_state(outcome.name, state)


async def run(job: JobConfig, *, names: Sequence[str] = (), force: bool = False,
              deploy_only: bool = False, transport: TransportFactory | None = None,
              ) -> list[Outcome]:
    """The whole job; returns one outcome per selected certificate, in file order."""
    store = Store(job.state_dir)
    specs = select(job, names)
    with store.running() as crashed:
        if crashed:  # a killed run may have left half-uploaded files in local targets
            from .deploy.local import sweep_leftovers

            for target in {t for spec in specs for t in spec.targets if t.is_local}:
                sweep_leftovers(target.path)
        return await _run(job, store, specs, force, deploy_only, transport)


async def _run(job: JobConfig, store: Store, specs: Sequence[CertSpec], force: bool,
               deploy_only: bool, transport: TransportFactory | None) -> list[Outcome]:
    async with contextlib.AsyncExitStack() as stack:
        # Clients are made only when a CA must be asked: a run with nothing due never even
        # imports the network stack.
        sessions = Sessions(job, store, stack)
        checking = not deploy_only and bool(specs) and job.max_clock_skew > 0
        if checking and clockcheck.check_needed(store, datetime.now(UTC)):
            await compare_clock(sessions, store, job)
            checking = False
        known = None if deploy_only else await refresh_windows(sessions, store, specs)
        plans = make_plans(store, specs, job, force=force and not deploy_only, known=known)
        if checking and any(p.due for p in plans):
            await compare_clock(sessions, store, job)  # before anything is ordered
        outcomes = {p.name: Outcome(p.name, renew_at=p.renew_at, targets=len(p.spec.targets),
                                    error=p.backoff, waiting=p.backoff is not None)
                    for p in plans}
        if not deploy_only and any(p.due for p in plans):
            await issue_due(sessions, store, job, plans, outcomes, force)
    jobs = deploy_jobs(store, job, plans, outcomes, everything=deploy_only)
    if jobs:
        from .deploy.batch import default_transport, deploy_all

        # Until its result is recorded, a target counts as not deployed: if this run is
        # killed midway, the next one deploys there again (and sweeps what it left).
        mark_in_progress(store, jobs)
        factory = transport or default_transport(job.ssh_config, job.known_hosts)
        record_deploys(store, await deploy_all(jobs, factory), outcomes)
    record_results(store, outcomes)
    return [outcomes[p.name] for p in plans]


def summary(outcomes: Sequence[Outcome]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = "failed" if outcome.error else outcome.result
        counts[key] = counts.get(key, 0) + 1
    parts = [f"{n} {k}" for k, n in sorted(counts.items())]
    deployed = [d for o in outcomes for d in o.deployed]
    if deployed:
        parts.append(f"deployed {sum(d.ok for d in deployed)}/{len(deployed)} targets")
    return f"{len(outcomes)} certificates: " + ", ".join(parts)


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """acme-client's: 1 if anything failed, 0 if anything changed, 2 if nothing to do."""
    if any(o.failed for o in outcomes):
        return 1
    return 0 if any(o.changed for o in outcomes) else 2
