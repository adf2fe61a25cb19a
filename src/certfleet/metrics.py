"""The Prometheus textfile after each run (for node_exporter's textfile collector).

Touches the one file it writes, atomically (temp → fsync → rename, mode 0644), so the
collector never reads half of it. Every certificate the configuration names or the store
keeps is described, not only those this run touched:

    certfleet_certificate_not_after_seconds{name}       when it expires
    certfleet_certificate_renew_at_seconds{name}        when it is due (ARI or lifetime rule)
    certfleet_certificate_last_issued_seconds{name}     its last successful issuance
    certfleet_certificate_failures{name}                failed attempts in a row
    certfleet_certificate_damaged{name}                 1 if its stored state cannot be read
    certfleet_target_current{name,target}               1 if the target has the active version
    certfleet_run_{started,finished,duration}_seconds   this run
    certfleet_run_certificates{result}                  this run's certificates by result
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from . import fsutil
from .plan import renewal
from .report import Outcome
from .spec import JobConfig
from .store import CertStore

HELP = {
    "certfleet_certificate_not_after_seconds": ("gauge", "When the active version expires."),
    "certfleet_certificate_renew_at_seconds": ("gauge", "When the certificate is due."),
    "certfleet_certificate_last_issued_seconds": ("gauge", "When the active version was issued."),
    "certfleet_certificate_failures": ("gauge", "Failed attempts in a row."),
    "certfleet_certificate_damaged": ("gauge", "1 if the stored state cannot be read."),
    "certfleet_target_current": ("gauge", "1 if the target has the active version."),
    "certfleet_run_started_seconds": ("gauge", "When the last run started."),
    "certfleet_run_finished_seconds": ("gauge", "When the last run finished."),
    "certfleet_run_duration_seconds": ("gauge", "How long the last run took."),
    "certfleet_run_certificates": ("gauge", "The last run's certificates by result."),
}


def label(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _lines(store: CertStore, job: JobConfig, outcomes: Sequence[Outcome], started: datetime,
           finished: datetime) -> Iterator[tuple[str, str, float]]:
    specs = {spec.name: spec for spec in job.certs}
    names = sorted(set(specs) | set(store.all_names()))
    for name, snap in store.snapshot(names).items():
        who = f'name="{label(name)}"'
        yield "certfleet_certificate_damaged", who, float(snap.damage is not None)
        held = snap.standing
        yield "certfleet_certificate_failures", who, float(held.failures)
        if not held.names:
            continue
        yield "certfleet_certificate_not_after_seconds", who, held.not_after
        yield ("certfleet_certificate_renew_at_seconds", who,
               renewal(held, job.renew_fraction)[0].timestamp())
        yield "certfleet_certificate_last_issued_seconds", who, held.issued_at
        for target in specs[name].targets if name in specs else ():
            yield ("certfleet_target_current", f'{who},target="{label(target.key)}"',
                   float(target.key in held.deployed))
    yield "certfleet_run_started_seconds", "", started.timestamp()
    yield "certfleet_run_finished_seconds", "", finished.timestamp()
    yield "certfleet_run_duration_seconds", "", (finished - started).total_seconds()
    counts: dict[str, int] = {}
    for outcome in outcomes:
        result = "failed" if outcome.failed else outcome.result
        counts[result] = counts.get(result, 0) + 1
    for result, count in sorted(counts.items()):
        yield "certfleet_run_certificates", f'result="{label(result)}"', float(count)


def render(store: CertStore, job: JobConfig, outcomes: Sequence[Outcome], started: datetime,
           finished: datetime) -> str:
    by_metric: dict[str, list[str]] = {}
    for metric, labels, value in _lines(store, job, outcomes, started, finished):
        sample = f"{metric}{{{labels}}}" if labels else metric
        by_metric.setdefault(metric, []).append(f"{sample} {value:.17g}")
    out = []
    for metric, samples in by_metric.items():
        kind, text = HELP[metric]
        out += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}", *samples]
    return "\n".join(out) + "\n"


def write(path: Path, store: CertStore, job: JobConfig, outcomes: Sequence[Outcome],
          started: datetime, finished: datetime) -> None:
    text = render(store, job, outcomes, started, finished)
    fsutil.write_atomic(path, text.encode(), mode=0o644)
