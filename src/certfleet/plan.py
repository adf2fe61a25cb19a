"""The plan of a run: which certificates are due and why, which targets lack the current one.

Touches nothing: the stored state comes in as values and the current time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .protocol import ari, backoff
from .protocol.renewal import due_reason, renewal_time
from .spec import CertSpec, Target
from .store import VersionMeta


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

    @property
    def name(self) -> str:
        return self.spec.name


def deployed_serial(state: Mapping[str, Any], target: Target) -> str | None:
    """The serial (hex) recorded as successfully deployed to ``target``, if any."""
    record = state.get("deploy", {}).get(target.key)
    if isinstance(record, dict) and not record.get("error"):
        serial = record.get("serial")
        return serial if isinstance(serial, str) else None
    return None


def stale_targets(spec: CertSpec, meta: VersionMeta | None,
                  state: Mapping[str, Any]) -> tuple[Target, ...]:
    """Targets whose recorded deploy is not the current version (all of them if none)."""
    if meta is None:
        return ()
    current = f"{meta.serial:x}"
    return tuple(t for t in spec.targets if deployed_serial(state, t) != current)


def plan_cert(
    spec: CertSpec, meta: VersionMeta | None, state: Mapping[str, Any], now: datetime, *,
    force: bool = False, fraction: float = 1 / 3,
) -> CertPlan:
    """Decide for one certificate from its spec, its active version and its state record."""
    waiting = None if force else backoff.waiting_until(state.get("backoff"), now)
    if waiting is not None:
        last = state.get("backoff", {}).get("error", "")
        note = f"next attempt after {waiting:%Y-%m-%d %H:%M} UTC; last failure: {last}"
        return CertPlan(spec, None, waiting, stale_targets(spec, meta, state),
                        serial=meta.serial if meta else None, backoff=note)
    if meta is None:
        return CertPlan(spec, "forced" if force else "new", None, (), serial=None)
    not_before, not_after = meta.not_before_dt, meta.not_after_dt
    # RFC 9773: a time chosen inside the CA's window wins; the lifetime rule is the fallback.
    chosen = ari.chosen_time(state.get("ari"), meta.serial)
    renew_at = chosen or renewal_time(not_before, not_after, fraction)
    reason = due_reason(
        wanted_names=spec.names, wanted_key_type=spec.key_type.value,
        current_names=meta.names, current_key_type=meta.key_type,
        not_before=not_before, not_after=not_after,
        revoked=state.get("revoked_serial") == f"{meta.serial:x}",
        now=now, forced=force, renew_at=renew_at,
    )
    return CertPlan(spec, reason, renew_at, stale_targets(spec, meta, state),
                    "ARI" if chosen else "lifetime", meta.serial)


def describe(plans: Sequence[CertPlan]) -> list[str]:
    """The plan as lines for ``--dry-run``."""
    lines = []
    for plan in plans:
        if plan.due:
            what = f"issue ({plan.due})"
        elif plan.renew_at:
            what = f"not due until {plan.renew_at:%Y-%m-%d}"
        else:
            what = "nothing to do"
        if plan.stale_targets and not plan.due:
            what += "; deploy to " + " ".join(t.key for t in plan.stale_targets)
        elif plan.due and plan.spec.targets:
            what += f"; then deploy to {len(plan.spec.targets)} target(s)"
        lines.append(f"{plan.name}: {what}")
    return lines


def together(plans: Sequence[CertPlan]) -> list[CertPlan]:
    """The key types of one certificate are renewed as a group: if one is due, all are."""
    due_first: dict[str, str] = {}
    for plan in plans:
        if plan.due and plan.spec.names[0] not in due_first:
            due_first[plan.spec.names[0]] = plan.name
    return [plan if plan.due or plan.spec.names[0] not in due_first
            else replace(plan, due=f"renewed with {due_first[plan.spec.names[0]]}")
            for plan in plans]
