"""The plan of a run: which certificates are due and why, which targets lack the current one.

Touches nothing: the stored state comes in as values and the current time is passed in.
This is the one place the "is it due?" decision is made, for ``run``, ``issue`` and
``--dry-run`` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from .layout import placement
from .protocol import ari
from .protocol.renewal import due_reason, renewal_time
from .spec import CertSpec, JobConfig, Target
from .state import CertState
from .store import Snapshot, VersionMeta


@dataclass(frozen=True)
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


def stale_targets(spec: CertSpec, meta: VersionMeta | None,
                  state: CertState) -> tuple[Target, ...]:
    """Targets whose recorded deploy is not the current version (all of them if none)."""
    if meta is None:
        return ()
    current = f"{meta.serial:x}"
    return tuple(t for t in spec.targets if state.deployed_serial(t.key) != current)


def plan_cert(spec: CertSpec, snap: Snapshot, now: datetime, *, force: bool = False,
              fraction: float = 1 / 3, unusable: str | None = None) -> CertPlan:
    """Decide for one certificate from its spec and what the store holds of it.

    ``unusable`` says why its challenge cannot be answered as configured: then it is not
    ordered (the run fails it before asking any CA), whatever else holds.
    """
    meta, state = snap.meta, snap.state
    serial = meta.serial if meta else None
    if snap.damage is not None:
        return CertPlan(spec, None, None, (), serial=serial, blocked=snap.damage)
    waiting = None if force else state.waiting_until(now)
    if waiting is not None:
        last = state.backoff.error if state.backoff else ""
        note = f"next attempt after {waiting:%Y-%m-%d %H:%M} UTC; last failure: {last}"
        return CertPlan(spec, None, waiting, stale_targets(spec, meta, state),
                        serial=serial, backoff=note)
    if meta is None:
        return _checked(CertPlan(spec, "forced" if force else "new", None, ()), unusable)
    renew_at, source = renewal(meta, state, fraction)
    reason = due_reason(
        wanted_names=spec.names, wanted_key_type=spec.key_label,
        current_names=meta.names, current_key_type=meta.key_type,
        not_before=meta.not_before_dt, not_after=meta.not_after_dt,
        revoked=state.is_revoked(meta.serial), now=now, forced=force, renew_at=renew_at,
    )
    plan = CertPlan(spec, reason, renew_at, stale_targets(spec, meta, state), source,
                    meta.serial)
    return _checked(plan, unusable)


def renewal(meta: VersionMeta, state: CertState, fraction: float) -> tuple[datetime, str]:
    """When the active version becomes due, and by which rule: RFC 9773's time chosen in
    the CA's window wins ("ARI"); the lifetime rule is the fallback ("lifetime")."""
    chosen = ari.chosen_time(state.ari, meta.serial)
    if chosen is not None:
        return chosen, "ARI"
    return renewal_time(meta.not_before_dt, meta.not_after_dt, fraction), "lifetime"


def _checked(plan: CertPlan, unusable: str | None) -> CertPlan:
    if plan.due is None or unusable is None:
        return plan
    return replace(plan, blocked=f"cannot be ordered: {unusable}")


def make_plans(specs: Sequence[CertSpec], snaps: dict[str, Snapshot], job: JobConfig,
               now: datetime, unusable: Callable[[str], str | None], *,
               force: bool = False) -> list[CertPlan]:
    """Every certificate's plan; the key types of one certificate together."""
    plans = [plan_cert(spec, snaps[spec.name], now, force=force, fraction=job.renew_fraction,
                       unusable=unusable(spec.challenge)) for spec in specs]
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
