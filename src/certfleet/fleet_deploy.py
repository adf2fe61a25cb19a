"""The deploy step of a run: what each target lacks, handed over, and recorded.

Wires ``store`` (the active version, the state record) and ``deploy`` (the transports);
touches nothing itself. It holds the lock of every certificate it deploys, taken in name
order (so two runs never wait on each other in a circle), and decides under those locks
what each target lacks: a run that renewed a certificate meanwhile is waited for, and its
newer version is the one deployed. Until its result is recorded, a target counts as not
deployed, so a run killed midway deploys there again next time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .errors import CertfleetError
from .layout import placement
from .plan import CertPlan
from .report import Report
from .spec import PEM_NAMES, CertSpec, JobConfig, Target
from .store import CertStore, StoredCert

if TYPE_CHECKING:
    from .deploy import DeployFile
    from .deploy.batch import DeployJob, DeployResult, TransportFactory

log = logging.getLogger(__name__)


def sweep_local(job: JobConfig, specs: Sequence[CertSpec]) -> None:
    """Remove what a killed run left half-uploaded in local target directories."""
    from .deploy.local import sweep_leftovers

    folders = {placement(t, job.host(t), spec.name).directory
               for spec in specs for t in spec.targets if t.is_local}
    folders |= {t.path for spec in specs for t in spec.targets if t.is_local}
    for folder in sorted(folders):
        sweep_leftovers(folder)


def _wanted(plans: Sequence[CertPlan], report: Report, everything: bool) -> list[CertPlan]:
    return [p for p in plans if p.spec.targets and p.name in report.outcomes
            and (everything or report[p.name].stored is not None or p.stale_targets)]


async def deploy(store: CertStore, job: JobConfig, plans: Sequence[CertPlan], report: Report, *,
                 everything: bool, transport: TransportFactory | None = None) -> None:
    """Deploy what each planned certificate's targets lack (``everything``: all targets)."""
    wanted = _wanted(plans, report, everything)
    if not wanted:
        return
    async with contextlib.AsyncExitStack() as held:
        jobs: list[DeployJob] = []
        for plan in sorted(wanted, key=lambda p: p.name):
            try:
                await held.enter_async_context(store.locked(plan.name))
                jobs += _jobs(store, job, plan, everything)
            except CertfleetError as exc:
                report[plan.name].error = report[plan.name].error or str(exc)
        if not jobs:
            return
        from .deploy.batch import default_transport, deploy_all

        now = datetime.now(UTC)
        waiting: dict[str, int] = {}
        for job_ in jobs:
            waiting[job_.cert] = waiting.get(job_.cert, 0) + 1
        for plan in wanted:
            if plan.name in waiting:
                _mark(store, plan, [j.target.key for j in jobs if j.cert == plan.name], now)

        def record(result: DeployResult) -> None:
            _record(store, result)
            report[result.cert].deployed.append(result)
            waiting[result.cert] -= 1
            if waiting[result.cert] == 0:
                report.done(result.cert)

        factory = transport or default_transport(job.ssh_config, job.known_hosts)
        await deploy_all(jobs, factory, record)


def _jobs(store: CertStore, job: JobConfig, plan: CertPlan, everything: bool) -> list[DeployJob]:
    """Under the lock: the targets of ``plan`` that lack the active version (all of them
    after ``everything`` or a renewal), with the files to send."""
    # The active version, not necessarily the one this run issued: an overlapping run may
    # have activated a newer one meanwhile.
    stored = store.current(plan.name)
    if stored is None:
        return []
    state = store.load_state(plan.name)
    serial = f"{stored.meta.serial:x}"
    targets = [t for t in plan.spec.targets
               if everything or state.deployed_serial(t.key) != serial]
    return [_job(store, job, stored, plan.name, t) for t in targets]


def _job(store: CertStore, job: JobConfig, stored: StoredCert, name: str,
         target: Target) -> DeployJob:
    from .deploy import DeployFile
    from .deploy.batch import DeployJob

    settings = job.host(target)
    where = placement(target, settings, name)
    files: list[DeployFile] = []
    for pem, file_name in where.files:
        if pem == "privkey.pem" and stored.meta.key_type == "csr":
            continue  # the operator's own CSR: certfleet has no key to send
        mode = settings.key_mode if pem == "privkey.pem" else settings.mode
        files.append(DeployFile(file_name, store.read_file(stored, pem), mode))
    assert set(dict(where.files)) <= set(PEM_NAMES)
    return DeployJob(name, target, tuple(files), stored.meta.serial, settings,
                     stored.meta.version, where, stored.meta.key_type)


def _mark(store: CertStore, plan: CertPlan, keys: list[str], now: datetime) -> None:
    """Before anything is sent: these targets count as not deployed until recorded, and
    records of targets no longer in the domains file go."""
    configured = [t.key for t in plan.spec.targets]
    store.update_state(plan.name, lambda s: s.forget_targets(configured).deploying(keys, now))


def _record(store: CertStore, result: DeployResult) -> None:
    now = datetime.now(UTC)
    try:
        if result.ok:
            store.update_state(result.cert, lambda s: s.deployed(
                result.target.key, now, result.serial, result.version))
        else:
            store.update_state(result.cert, lambda s: s.deploy_failed(
                result.target.key, now, result.error or "failed"))
    except CertfleetError as exc:
        log.warning("%s: cannot record the deploy to %s: %s", result.cert,
                    result.target.key, exc)
