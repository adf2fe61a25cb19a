"""A run that found nothing to do, kept so that the next one can say so at once:
``STATE/quiet-run.json``. Touches that file; reads the job's input files and the
certificate directories' mtimes.

A run over the whole fleet in which every certificate was found not due, no target lacked
its certificate, nothing had failed before and no CA was asked, records the lines it
printed, what it was made from, and until when the same run would decide the same. The next
``run`` made from the same inputs prints those lines instead of reading and planning every
certificate again: with 10,000 certificates, reading the domains file, the index and
planning are most of a run that does nothing.

What a plan is made from, and so what the record is checked against:
- the command's options, the ``CERTFLEET_*`` environment, the bytes of certfleet.toml and of
  the domains file (a digest of them all: ``Inputs``);
- each certificate directory's mtime: every change of a certificate's state renames a file
  in its directory (``index.py`` relies on the same), so any issue, deploy record, ARI
  window, failure or revocation since is seen; a directory changed within two seconds of
  the run is not trusted, as in the index;
- ``clock.json``, the last comparison of the clock with the CA's;
- the time: not before the record was made (a clock set back), and before the earliest
  moment anything changes on its own: a renewal time, an expiry, an ARI window to fetch
  again, the daily clock comparison.
Anything else differs and the run is made in full (and records again if it is quiet). The
file is a cache: deleting it, or a damaged one, costs time, never correctness. Runs that
write more than their lines (a metrics file) or share their store with other Work hosts
neither record nor replay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__, fsutil
from . import plan as planning
from .clockcheck import next_check
from .errors import CertfleetError
from .names import storage_name
from .plan import CertPlan
from .protocol import renewal
from .protocol.frozen import frozen
from .report import Outcome, summary
from .spec import JobConfig
from .store import Snapshot
from .store.index import RACY_NS  # a change within the same timestamp tick goes unseen

FORMAT = 1
NAME = "quiet-run.json"
LIMIT = 1 << 30                 # ~100 bytes a certificate
MAX_INPUT = 1 << 26             # the domains file's own limit is far below


@frozen
class Inputs:
    """What a run's job is made from: the options and environment as given, the files
    read, and the digest of all of them as read when the run began."""

    key: str
    options: tuple[tuple[str, Any], ...]
    environ: tuple[tuple[str, str], ...]
    files: tuple[Path, ...]

    def digest_now(self) -> str | None:
        """The digest of the same inputs as they are now (the files read again)."""
        return _digest(self.options, self.environ, self.files)


def eligible(job: JobConfig) -> bool:
    """Whether this job's quiet runs may be recorded and replayed."""
    return not job.store.shared and job.metrics_textfile is None \
        and job.domains_file is not None


def inputs(options: Mapping[str, Any], environ: Mapping[str, str],
           files: Sequence[Path | None]) -> Inputs | None:
    """A command's inputs: its options (but ``quiet``, which only the printing obeys), its
    ``CERTFLEET_*`` environment and its input files; None if a file cannot be read (the
    full run says why)."""
    plain = tuple(sorted((k, v) for k, v in options.items() if k != "quiet" and (
        v is None or isinstance(v, str | int | float | bool | list | tuple))))
    env = tuple(sorted((k, v) for k, v in environ.items() if k.startswith("CERTFLEET_")))
    kept = tuple(path for path in files if path is not None)
    key = _digest(plain, env, kept)
    return None if key is None else Inputs(key, plain, env, kept)


def _digest(options: tuple[tuple[str, Any], ...], environ: tuple[tuple[str, str], ...],
            files: tuple[Path, ...]) -> str | None:
    digest = hashlib.sha256(f"certfleet {__version__} quiet-run {FORMAT}\n".encode())
    # The code that decides too: a checkout updated in place keeps its version number.
    code = [os.stat(module.__file__).st_mtime_ns for module in (planning, renewal, sys.modules[
        __name__]) if module.__file__]
    digest.update(repr((options, environ, code)).encode())
    for path in files:
        try:
            data = fsutil.read_trusted(path, MAX_INPUT)
        except (OSError, CertfleetError):
            return None
        digest.update(f"\n{os.path.abspath(path)} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def marks(root: Path, names: Sequence[str]) -> list[int]:
    """Each certificate directory's mtime in nanoseconds; -1 if it is missing or unreadable."""
    certs, stat = f"{root}/certs/", os.stat   # once per certificate of the fleet
    found = []
    for name in names:
        try:
            found.append(stat(certs + storage_name(name)).st_mtime_ns)
        except OSError:
            found.append(-1)
    return found


def quiet_until(plans: Sequence[CertPlan], snaps: Mapping[str, Snapshot],
                outcomes: Sequence[Outcome], clock: dict[str, Any], check_clock: bool,
                ) -> float | None:
    """Until when (a POSIX time) a run that decided this would decide it again, or None if
    it was not quiet: something due, blocked, deferred, waiting or failed, a target to
    deploy to, a certificate whose renewal failed before (its expiry alarm may go off), or
    a certificate never issued."""
    until = float("inf")
    for plan in plans:
        held = snaps[plan.name].standing
        if plan.due or plan.blocked or plan.deferred or plan.backoff or plan.stale_targets \
                or plan.renew_at is None or snaps[plan.name].damage is not None \
                or held.failures or held.waiting_until is not None:
            return None
        until = min(until, plan.renew_at.timestamp(), held.not_after)
        if held.has_aki:
            if held.ari_fetch_at is None:
                return None
            until = min(until, held.ari_fetch_at)
    if any(o.failed or o.changed or o.result != "not due" or o.note for o in outcomes):
        return None
    if check_clock:
        due = next_check(clock)
        if due is None:
            return None
        until = min(until, due.timestamp())
    return until


def keep(root: Path, given: Inputs, *, names: Sequence[str], seen: Sequence[int],
         planned_ns: int, until: float, outcomes: Sequence[Outcome],
         clock: dict[str, Any]) -> None:
    """Record a quiet run (``quiet_until`` said until when), unless a certificate directory
    changed too close to when it was planned, or an input file changed during the run."""
    if any(mark < 0 or mark >= planned_ns - RACY_NS for mark in seen):
        return
    if given.digest_now() != given.key or until <= planned_ns / 1e9:
        return
    record = {"format": FORMAT, "key": given.key, "made": planned_ns / 1e9, "until": until,
              "clock": clock, "names": list(names), "marks": list(seen),
              "lines": [o.line() for o in outcomes], "summary": summary(outcomes)}
    with contextlib.suppress(CertfleetError):  # a cache that cannot be written is no fault
        fsutil.write_atomic(root / NAME, json.dumps(record, separators=(",", ":")).encode(),
                            mode=0o600)


def replay(root: Path, given: Inputs, now: datetime,
           clock: dict[str, Any]) -> tuple[list[str], str] | None:
    """The lines and the summary of the recorded quiet run, if it holds for ``given`` now."""
    try:
        record = json.loads(fsutil.read_small(root / NAME, LIMIT))
    except (FileNotFoundError, CertfleetError, ValueError, RecursionError):
        return None
    try:
        if record["format"] != FORMAT or record["key"] != given.key \
                or not record["made"] <= now.timestamp() < record["until"] \
                or record["clock"] != clock:
            return None
        names, lines, last = record["names"], record["lines"], record["summary"]
        if not (_strings(names) and _strings(lines) and isinstance(last, str)
                and len(lines) == len(names)):
            return None
        if marks(root, names) != record["marks"]:
            return None
    except (TypeError, KeyError):
        return None
    return lines, last


def _strings(items: object) -> bool:
    return isinstance(items, list) and all(type(item) is str for item in items)
