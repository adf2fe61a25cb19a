"""The monitoring-plugin verdict (Nagios/Icinga conventions) on the stored certificates.

Touches nothing: snapshots and, optionally, what each target serves come in as values. A
certificate is CRITICAL when it is expired, revoked, damaged, or nearer its end than the
critical share of its lifetime (or ``critical_days``); WARNING when it was never issued,
its renewal keeps failing, it is past its renewal time by more than a day, a target lacks
its active version, or a target serves something else (an old certificate, nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import standing
from .errors import visible
from .plan import renewal
from .report import certificates
from .spec import CertSpec
from .store import Snapshot

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
LATE = timedelta(days=1)   # past its renewal time by this much: renewal is not happening


@dataclass
class Verdict:
    code: int = OK
    problems: list[tuple[int, str]] = field(default_factory=list)
    certificates: int = 0
    min_days_left: float | None = None

    def add(self, code: int, text: str) -> None:
        self.problems.append((code, text))
        self.code = max(self.code, code)

    def line(self) -> str:
        """One status line, then perfdata after ``|``."""
        worst = sorted(self.problems, key=lambda p: -p[0])
        counts = [sum(1 for c, _ in self.problems if c == k) for k in (CRITICAL, WARNING)]
        if worst:
            head = (f"{counts[0]} critical, {counts[1]} warning of "
                    f"{certificates(self.certificates)}: "
                    + "; ".join(visible(t) for _, t in worst[:5]))
            if len(worst) > 5:
                head += f"; and {len(worst) - 5} more"
        else:
            head = certificates(self.certificates)
            if self.min_days_left is not None:
                head += f", the first to expire in {self.min_days_left:.1f} days"
        perf = (f"certificates={self.certificates} critical={counts[0]} warning={counts[1]}")
        if self.min_days_left is not None:
            perf += f" min_days_left={self.min_days_left:.2f}"
        return f"CERTFLEET {STATES[self.code]} - {head} | {perf}"


def judge(specs: Sequence[CertSpec], snaps: Mapping[str, Snapshot], now: datetime, *,
          fraction: float, critical_share: float = 0.1, critical_days: float | None = None,
          served: Mapping[tuple[str, str], str | None] | None = None) -> Verdict:
    """The verdict over ``specs``; ``served[(name, target key)]`` is None when the target
    serves the active version, else what it serves (when targets were probed)."""
    verdict = Verdict(certificates=len(specs))
    for spec in specs:
        snap = snaps[spec.name]
        name = spec.name
        meta, state = snap.meta, snap.state  # first: from the index, reading them finds damage
        if snap.damage is not None:
            verdict.add(CRITICAL, f"{name} damaged: {snap.damage}")
            continue
        if meta is None:
            verdict.add(WARNING, f"{name} not issued yet")
            continue
        left = meta.not_after_dt - now
        days = left.total_seconds() / 86400
        verdict.min_days_left = days if verdict.min_days_left is None \
            else min(verdict.min_days_left, days)
        lifetime = meta.not_after_dt - meta.not_before_dt
        limit = timedelta(days=critical_days) if critical_days is not None \
            else lifetime * critical_share
        if left <= timedelta(0):
            verdict.add(CRITICAL, f"{name} expired {-days:.1f} days ago")
        elif state.is_revoked(meta.serial):
            verdict.add(CRITICAL, f"{name} is revoked")
        elif left < limit:
            verdict.add(CRITICAL, f"{name} expires in {days:.1f} days")
        elif state.backoff is not None:
            verdict.add(WARNING, f"{name} renewal failing ({state.backoff.failures} in a "
                        f"row): {state.backoff.error}")
        elif state.last is not None and state.last.error is not None:  # before the CA
            verdict.add(WARNING, f"{name} last run failed: {state.last.error}")
        elif now - renewal(standing.of(meta, state), fraction)[0] > LATE:
            verdict.add(WARNING, f"{name} past its renewal time and not renewed")
        for target in spec.targets:
            if state.deployed_serial(target.key) != f"{meta.serial:x}":
                verdict.add(WARNING, f"{name} at {target.key} lacks the active version")
            elif served is not None and served.get((name, target.key)) is not None:
                verdict.add(WARNING, f"{name} at {target.key} serves "
                            f"{served[(name, target.key)]}, not the active version")
    return verdict
