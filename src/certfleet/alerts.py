"""The end of a run: the expiry alarm, the notifications and the metrics file.

Wires ``store`` (records, under each certificate's lock), ``notify`` and ``metrics``;
touches nothing itself. A failure here is logged, never turned into the run's failure: the
certificates' own results are what the run reports.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from . import metrics, notify
from .errors import CertfleetError
from .report import Expiring, Outcome
from .spec import CertSpec, JobConfig
from .standing import Standing
from .state import CertState
from .store import CertStore

log = logging.getLogger(__name__)


def expiring(store: CertStore, job: JobConfig, specs: Sequence[CertSpec],
             now: datetime) -> list[Expiring]:
    """Certificates whose renewal keeps failing with less than ``expiry_alarm`` of their
    lifetime left and whose alarm has not gone off today; each is marked as alarmed."""
    found: list[Expiring] = []
    share = job.notify.expiry_alarm
    for name, snap in store.snapshot([s.name for s in specs]).items():
        held = snap.standing
        if not held.names or not held.failures or not _may_alarm(held, now):
            continue
        lifetime = held.not_after - held.not_before
        if held.not_after - now.timestamp() > lifetime * share:
            continue
        if not store.try_lock(name):
            continue  # another run holds it: the alarm is that run's to raise
        try:
            store.update_state(name, lambda s: s.alarmed(now))
        except CertfleetError as exc:
            log.warning("%s: cannot record the expiry alarm: %s", name, exc)
            continue
        finally:
            store.unlock(name)
        found.append(Expiring(name, held.time(held.not_after), held.failures,
                              held.last_error or ""))
    return found


def _may_alarm(held: Standing, now: datetime) -> bool:
    return held.alarm_at is None or CertState(alarm_at=held.time(held.alarm_at)).may_alarm(now)


async def after_run(store: CertStore, job: JobConfig, specs: Sequence[CertSpec],
                    outcomes: Sequence[Outcome], started: datetime) -> None:
    finished = datetime.now(UTC)
    if job.metrics_textfile is not None:
        try:
            metrics.write(job.metrics_textfile, store, job, outcomes, started, finished)
        except CertfleetError as exc:
            log.warning("metrics: %s", exc)
    if not job.notify.configured:
        return
    report = notify.document(outcomes, expiring(store, job, specs, finished), started,
                             finished)
    for problem in await notify.tell(job.notify, report):
        log.warning("%s", problem)
