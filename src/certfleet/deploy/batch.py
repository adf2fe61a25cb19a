"""Deploy many certificates to many targets: one connection per host, reload once per host.

Touches remote hosts and local target directories through the transports. Takes plain
values (file contents already read from the store) and returns one result per
(certificate, target), so the caller records them; nothing here touches the state.
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
    try:
        async with transport:
            installed = await _install_all(jobs, transport, errors)
            settings = jobs[0].settings
            if installed and settings.reload:
                try:
                    await transport.run(settings.reload)
                except DeployError as exc:
                    for i in installed:
                        errors[i] = f"files in place, reload failed: {exc}"
                    installed = []
            await _probe_all(jobs, installed, transport, errors)
    except DeployError as exc:
        for i in range(len(jobs)):
            errors.setdefault(i, str(exc))
    except Exception as exc:  # a fault of certfleet's own must not stop the other hosts
        log.debug("deploy to %s", jobs[0].target.host_label or "local", exc_info=True)
        for i in range(len(jobs)):
            errors.setdefault(i, f"unexpected error: {type(exc).__name__}: "
                                 f"{safe_text(str(exc))}")
    return [DeployResult(job.cert, job.target, errors.get(i), job.serial, job.version)
            for i, job in enumerate(jobs)]


async def _install_all(
    jobs: list[DeployJob], transport: Transport, errors: dict[int, str]
) -> list[int]:
    installed = []
    for i, job in enumerate(jobs):
        try:
            await transport.install(job.placement, job.files, job.settings)
            installed.append(i)
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
