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

from .errors import CertfleetError, CertificateError
from .layout import placement
from .plan import CertPlan
from .report import Report
from .spec import PEM_NAMES, CertSpec, JobConfig, Target
from .store import CertStore, StoredCert

if TYPE_CHECKING:
    from .deploy import DeployFile
    from .deploy.batch import DeployJob, DeployResult, TransportFactory
    from .keytypes import PublicKey

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
            if plan.name not in waiting:
                continue
            try:
                _mark(store, plan, [j.target.key for j in jobs if j.cert == plan.name], now)
            except CertfleetError as exc:  # its record cannot be written: it alone is left
                report[plan.name].error = report[plan.name].error or str(exc)
                jobs = [j for j in jobs if j.cert != plan.name]
                del waiting[plan.name]
        if not jobs:
            return

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
    if not targets:
        return []
    pems = _checked_files(store, stored)
    return [_job(job, stored, pems, plan.name, t) for t in targets]


def _checked_files(store: CertStore, stored: StoredCert) -> dict[str, bytes]:
    """The active version's files as they read now, checked together before any is sent:
    the key is the certificate's, each certificate signed by the next, ``fullchain.pem``
    is ``cert.pem`` then ``chain.pem``, and the serial is the version's. A file damaged
    on disk since it was written (emptied, cut short, replaced) must never overwrite the
    good copy a target holds."""
    from . import certs, keytypes

    csr = stored.meta.key_type == "csr"  # the operator's own CSR: certfleet has no key
    pems = {pem: store.read_file(stored, pem) for pem in PEM_NAMES
            if not (csr and pem == "privkey.pem")}
    where = str(stored.file("cert.pem").parent)  # the version's directory
    public = _leaf_key(pems["cert.pem"], f"{where}/cert.pem") if csr \
        else keytypes.load_pem(pems["privkey.pem"], f"{where}/privkey.pem").public_key()
    bundle = certs.verify_kept(pems["cert.pem"], pems["chain.pem"], pems["fullchain.pem"],
                               public, where)
    if bundle.serial != stored.meta.serial:
        raise CertificateError(f"{where}/cert.pem: serial {bundle.serial:x}, not the "
                               f"version's {stored.meta.serial:x}")
    return pems


def _leaf_key(pem: bytes, where: str) -> PublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from . import certs

    key = certs.load_leaf(pem, where).public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CertificateError(f"{where}: neither an RSA nor an EC key")
    return key


def _job(job: JobConfig, stored: StoredCert, pems: dict[str, bytes], name: str,
         target: Target) -> DeployJob:
    from .deploy import DeployFile
    from .deploy.batch import DeployJob

    settings = job.host(target)
    where = placement(target, settings, name)
    files: list[DeployFile] = []
    for pem, file_name in where.files:
        if pem not in pems:
            continue  # the key of a version made from the operator's CSR
        mode = settings.key_mode if pem == "privkey.pem" else settings.mode
        files.append(DeployFile(file_name, pems[pem], mode))
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
