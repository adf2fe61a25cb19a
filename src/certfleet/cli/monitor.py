"""``certfleet monitor``: a monitoring plugin (Nagios/Icinga: exit 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN; one status line with perfdata). Reads the store (read-only) and,
with ``--probe``, what each target serves over TLS; prints one line.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from ..config.sources import job_from
from ..errors import CertfleetError, visible
from ..monitor import UNKNOWN, Verdict, judge
from ..spec import CertSpec, JobConfig
from . import output

__all__ = ["UNKNOWN", "monitor"]

# Without --probe, monitor reads the store as `status` does: asyncio and the TLS client
# are imported by the probes when they run.


def monitor(args: argparse.Namespace) -> int:
    """Never raises: whatever goes wrong is UNKNOWN, as the plugin conventions ask."""
    try:
        job = job_from(vars(args), need_domains=True)
        verdict = _judge(job, args)
    except CertfleetError as exc:
        output.say(f"CERTFLEET UNKNOWN - {visible(str(exc).splitlines()[0])}")
        return UNKNOWN
    output.say(verdict.line())
    return verdict.code


def _judge(job: JobConfig, args: argparse.Namespace) -> Verdict:
    from ..store import open_store

    store = open_store(job, create=False)
    specs = list(job.certs)
    snaps = store.snapshot([s.name for s in specs])
    served = _probe(job, specs, snaps) if args.probe else None
    return judge(specs, snaps, datetime.now(UTC), fraction=job.renew_fraction,
                 critical_share=args.critical, critical_days=args.critical_days,
                 served=served)


def _probe(job: JobConfig, specs: list[CertSpec],
           snaps: dict[str, Any]) -> dict[tuple[str, str], str | None]:
    """What every target of an issued certificate serves, asked all at once."""
    import asyncio

    from ..deploy.probe import key_kind, serving

    checks = []
    for spec in specs:
        meta = snaps[spec.name].meta
        for target in spec.targets if meta is not None else ():
            probe = job.host(target).probe
            address = (probe.address if probe and probe.address
                       else target.host or "127.0.0.1")
            port = probe.port if probe else 443
            checks.append(((spec.name, target.key), (
                address, port, spec.names[0], meta.serial, key_kind(meta.key_type))))

    async def ask() -> list[str | None]:
        return list(await asyncio.gather(*(serving(*check) for _, check in checks)))

    answers = asyncio.run(ask())
    return {key: answer for (key, _), answer in zip(checks, answers, strict=True)}
