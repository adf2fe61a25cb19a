"""The plan of a run: which certificates are due and why, which targets lack the current one.

Touches nothing: the stored state comes in as values and the current time is passed in.
This is the one place the "is it due?" decision is made, for ``run``, ``issue`` and
``--dry-run`` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from .gcpause import paused
from .layout import placement
from .protocol.frozen import frozen
from .protocol.renewal import due_reason, renewal_time
from .spec import CertSpec, JobConfig, Target
from .standing import Standing
from .store import Snapshot


@frozen
class CertPlan:
    """What a run will do for one certificate."""

    spec: CertSpec
    due: str | None                  # reason to issue now, None if not due
    renew_at: datetime | None        # when it becomes due (None: never issued)
    stale_targets: tuple[Target, ...]  # targets that do not have the current version
    renew_source: str = "lifetime"   # "ARI" when the CA's renewal window set renew_at
    serial: int | None = None        # the active version's serial when planned
    backoff: str | None = None       # "next attempt after ...: last error", when waiting
    blocked: str | None = None       # why it fails before any network: damage, no solver
    deferred: str | None = None      # due, but left to a later run: the CA's order limit

    @property
    def name(self) -> str:
        return self.spec.name


def stale_targets(spec: CertSpec, standing: Standing) -> tuple[Target, ...]:
    """Targets whose recorded deploy is not the current version (none if nothing is
    issued yet)."""
    if not standing.names:
        return ()
    deployed = standing.deployed
    return tuple(t for t in spec.targets if t.key not in deployed)


def plan_cert(spec: CertSpec, snap: Snapshot, now: datetime, *, force: bool = False,
              fraction: float = 1 / 3, unusable: str | None = None) -> CertPlan:
    """Decide for one certificate from its spec and its standing in the store.

    ``unusable`` says why its challenge cannot be answered as configured: then it is not
    ordered (the run fails it before asking any CA), whatever else holds.
    """
    held = snap.standing
    serial = held.serial if held.names else None
    if snap.damage is not None:
        return CertPlan(spec, None, None, (), serial=serial, blocked=snap.damage)
    waiting = None if force else held.waiting(now)
    if waiting is not None:
        note = (f"next attempt after {waiting:%Y-%m-%d %H:%M} UTC; last failure: "
                f"{held.last_error or ''}")
        return CertPlan(spec, None, waiting, stale_targets(spec, held), serial=serial,
                        backoff=note)
    if not held.names:
        return _checked(CertPlan(spec, "forced" if force else "new", None, ()), unusable)
    renew_at, source = renewal(held, fraction)
    reason = due_reason(
        wanted_names=spec.names, wanted_key_type=spec.key_label,
        current_names=held.names, current_key_type=held.key_type,
        not_before=held.time(held.not_before), not_after=held.time(held.not_after),
        revoked=held.revoked, now=now, forced=force, renew_at=renew_at,
    )
    plan = _planned(spec, reason, renew_at, stale_targets(spec, held), source, held.serial)
    return _checked(plan, unusable)


def _planned(spec: CertSpec, due: str | None, renew_at: datetime,
             stale: tuple[Target, ...], source: str, serial: int) -> CertPlan:
    """``CertPlan(spec, due, renew_at, stale, source, serial)``, the plan of every issued
    certificate, built without the frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field: a third of planning a certificate that is not due).
    The fields not given read their defaults from the class, as with ``__init__``."""
    plan = object.__new__(CertPlan)
    plan.__dict__.update(spec=spec, due=due, renew_at=renew_at, stale_targets=stale,
                         renew_source=source, serial=serial)
    return plan


def renewal(held: Standing, fraction: float) -> tuple[datetime, str]:
    """When the active version becomes due, and by which rule: RFC 9773's time chosen in
    the CA's window wins ("ARI"); the lifetime rule is the fallback ("lifetime"), and rules
    too when the CA's time is not before the certificate expires: a window after notAfter
    would leave it to be served expired."""
    if held.ari_chosen is not None and held.ari_chosen < held.not_after:
        return held.time(held.ari_chosen), "ARI"
    return renewal_time(held.time(held.not_before), held.time(held.not_after),
                        fraction), "lifetime"


def _checked(plan: CertPlan, unusable: str | None) -> CertPlan:
    if plan.due is None or unusable is None:
        return plan
    return replace(plan, blocked=f"cannot be ordered: {unusable}")


def make_plans(specs: Sequence[CertSpec], snaps: dict[str, Snapshot], job: JobConfig,
               now: datetime, unusable: Callable[[str], str | None], *,
               force: bool = False) -> list[CertPlan]:
    """Every certificate's plan; the key types of one certificate together."""
    verdicts: dict[str, str | None] = {}   # by challenge type: the same for every spec

    def verdict(challenge: str) -> str | None:
        if challenge not in verdicts:
            verdicts[challenge] = unusable(challenge)
        return verdicts[challenge]

    fraction = job.renew_fraction
    with paused():  # no reference cycle made here (gcpause.py)
        plans = [plan_cert(spec, snaps[spec.name], now, force=force, fraction=fraction,
                           unusable=verdict(spec.challenge)) for spec in specs]
        return together(plans)


def together(plans: Sequence[CertPlan]) -> list[CertPlan]:
    """The key types of one certificate are renewed as a group: if one is due, all are."""
    due_first: dict[str, str] = {}
    for plan in plans:
        if plan.due and not plan.blocked and plan.spec.names[0] not in due_first:
            due_first[plan.spec.names[0]] = plan.name
    return [plan if plan.due or plan.blocked or plan.spec.names[0] not in due_first
            or plan.backoff else replace(plan, due=f"renewed with {due_first[plan.spec.names[0]]}")
            for plan in plans]


def describe(plans: Sequence[CertPlan], job: JobConfig) -> list[str]:
    """The plan as lines for ``--dry-run``: what each certificate will get and why, and the
    real paths at every target it will be deployed to."""
    lines = []
    for plan in plans:
        if plan.blocked:
            lines.append(f"{plan.name}: will fail: {plan.blocked}")
            continue
        if plan.backoff:
            what = f"waiting: {plan.backoff}"
        elif plan.deferred:
            what = plan.deferred
        elif plan.due:
            what = f"will be ordered ({plan.due}; {plan.spec.challenge})"
        elif plan.renew_at:
            what = (f"not due until {plan.renew_at:%Y-%m-%d %H:%M} UTC ({plan.renew_source} "
                    "rule)" if plan.renew_source == "lifetime" else
                    f"not due until {plan.renew_at:%Y-%m-%d %H:%M} UTC (ARI window)")
        else:
            what = "nothing to do"
        lines.append(f"{plan.name}: {what}")
        targets = plan.spec.targets if plan.due else plan.stale_targets
        for target in targets:
            where = placement(target, job.host(target), plan.name)
            host = f"{target.host_label}:" if target.host else ""
            lines.append(f"  deploy to {host}{where.describe()}")
    return lines
