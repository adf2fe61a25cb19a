"""Deploy many certificates to many targets: one connection per host, reload once per host.

Touches remote hosts and local target directories through the transports. Takes plain
values (file contents already read from the store) and returns one result per
(certificate, target), so the caller records them; nothing here touches the state.

Each remote host's deploy, from the connection to the last probe, ends by
``host_deadline``: each exchange with a host is bounded on its own, but a host answering
every request just in time (or listing thousands of leftovers to remove) would otherwise
hold the run, and the fleet lock with it, as long as it liked. Past the deadline, that
host's targets fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import DeployError, safe_text
from ..layout import Placement
from ..protocol.frozen import frozen
from ..spec import HostSettings, Target
from . import DeployFile, Transport
from .local import LocalTransport
from .probe import expect_serial, key_kind

log = logging.getLogger(__name__)
HOSTS_AT_ONCE = 8
# A host's deploy may last HOST_TIME, plus CERT_TIME for each of its targets. Over a slow
# WAN (300 ms round trips) a legitimate host needs, for a target, some 20 s for its 60-odd
# SFTP requests (the checks; four files created, written, read back, renamed) and 30 s more
# if its directory lists sftp_sweep.MAX_LISTED names, then its probe (at most 21 s); once,
# seconds for the connection and the ID look-ups, and the reload (at most
# ssh.COMMAND_TIMEOUT, 120 s). A host answering every request just inside OP_TIMEOUT (30 s)
# would otherwise hold the run half an hour a target.
HOST_TIME = 180.0
CERT_TIME = 90.0


def host_deadline(targets: int) -> float:
    """How long the deploy to one host, with ``targets`` (certificate, target) pairs, may last."""
    return HOST_TIME + CERT_TIME * targets


@frozen
class DeployJob:
    """One certificate's files for one target."""

    cert: str
    target: Target
    files: tuple[DeployFile, ...]
    serial: int
    settings: HostSettings
    version: int
    placement: Placement
    key_type: str = ""    # ec256, rsa2048...: which certificate the probe asks for


@frozen
class DeployResult:
    cert: str
    target: Target
    error: str | None = None
    serial: int = 0       # what was deployed (or attempted)
    version: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


TransportFactory = Callable[[DeployJob], Transport]
OnResult = Callable[[DeployResult], None]


def default_transport(
    ssh_config: Sequence[Path] = (), known_hosts: Path | None = None
) -> TransportFactory:
    def make(job: DeployJob) -> Transport:
        if job.target.is_local:
            return LocalTransport()
        from .ssh import SshTransport  # noqa: PLC0415 - asyncssh: a quarter second to import

        return SshTransport(job.target, job.settings, ssh_config=ssh_config,
                            known_hosts=known_hosts)
    return make


async def deploy_all(jobs: Sequence[DeployJob], transport: TransportFactory,
                     on_result: OnResult | None = None) -> list[DeployResult]:
    """Deploy every job; hosts in parallel, each host's files then one reload, then probes.
    ``on_result`` hears each result as soon as its host is done."""
    groups: dict[tuple[str, str], list[DeployJob]] = {}
    for job in jobs:
        user = job.target.user or job.settings.user or ""
        groups.setdefault((job.target.host_key, user), []).append(job)
    limit = asyncio.Semaphore(HOSTS_AT_ONCE)

    async def one_host(host_jobs: list[DeployJob]) -> list[DeployResult]:
        async with limit:
            results = await _deploy_host(host_jobs, transport(host_jobs[0]))
        if on_result is not None:
            for result in results:
                on_result(result)
        return results

    per_host = await asyncio.gather(*(one_host(g) for g in groups.values()))
    return [result for results in per_host for result in results]


async def _deploy_host(jobs: list[DeployJob], transport: Transport) -> list[DeployResult]:
    errors: dict[int, str] = {}
    placed: list[int] = []  # as each target's files are in place, for the deadline's message
    # Local targets are written by a thread that a deadline could not stop: only a remote
    # host can be slow on purpose, and the local reload is bounded on its own.
    limit = None if jobs[0].target.is_local else host_deadline(len(jobs))
    deadline = asyncio.timeout(limit)
    try:
        async with deadline, transport:
            installed = await _install_all(jobs, transport, errors, placed)
            settings = jobs[0].settings
            if installed and settings.reload:
                try:
                    await transport.run(settings.reload)
                except DeployError as exc:
                    for i in installed:
                        errors[i] = f"files in place, reload failed: {exc}"
                    installed = []
            await _probe_all(jobs, installed, transport, errors)
    except Exception as exc:  # a fault of certfleet's own must not stop the other hosts
        late = None if limit is None or not deadline.expired() else \
            f"{transport.label}: the deploy to this host did not end within {limit:g} s; stopped"
        _host_failed(jobs, errors, exc, late, placed)
    return [DeployResult(job.cert, job.target, errors.get(i), job.serial, job.version)
            for i, job in enumerate(jobs)]


def _host_failed(jobs: list[DeployJob], errors: dict[int, str], exc: Exception,
                 late: str | None, placed: list[int]) -> None:
    """Every target of the host not failed already fails: with ``late`` if the host's
    deadline ended its deploy (saying so of the targets ``placed``), else with ``exc``."""
    if late is not None:
        for i in range(len(jobs)):
            errors.setdefault(i, f"files in place, then {late}" if i in placed else late)
    elif isinstance(exc, DeployError):
        for i in range(len(jobs)):
            errors.setdefault(i, str(exc))
    else:
        log.debug("deploy to %s", jobs[0].target.host_label or "local", exc_info=True)
        for i in range(len(jobs)):
            errors.setdefault(i, f"unexpected error: {type(exc).__name__}: "
                                 f"{safe_text(str(exc))}")


async def _install_all(
    jobs: list[DeployJob], transport: Transport, errors: dict[int, str], placed: list[int]
) -> list[int]:
    installed = []
    for i, job in enumerate(jobs):
        try:
            await transport.install(job.placement, job.files, job.settings)
            installed.append(i)
            placed.append(i)
            log.info("%s: files in place at %s", job.cert, job.target.key)
        except DeployError as exc:
            errors[i] = str(exc)
    return installed


async def _probe_all(
    jobs: list[DeployJob], installed: list[int], transport: Transport, errors: dict[int, str]
) -> None:
    for i in installed:
        probe = jobs[i].settings.probe
        if probe is None:
            continue
        address = probe.address or transport.peer_address() or jobs[i].target.host_key
        name = jobs[i].cert.partition("+")[0]  # NAME+rsa2048: the name is NAME's
        try:
            await expect_serial(address, probe.port, name, jobs[i].serial,
                                kind=key_kind(jobs[i].key_type))
        except DeployError as exc:
            errors[i] = str(exc)
