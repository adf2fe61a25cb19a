"""What ``certfleet status`` shows, as rows (for ``--json``) and as text. Reads the store
(opened read-only) and the job; touches nothing else.

Every certificate the store or the domains file knows gets a row, a damaged one included
(with what is wrong), so nothing is hidden. Text from the CA (explanations, errors) is
escaped before it is printed; JSON carries it as data.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .. import standing
from ..errors import StoreError, visible
from ..gcpause import paused
from ..layout import placement
from ..plan import renewal
from ..spec import CertSpec, JobConfig
from ..state import CertState
from ..store import CertStore, VersionMeta


def rows(store: CertStore, job: JobConfig | None) -> list[dict[str, Any]]:
    with paused():  # a row per certificate, and no reference cycle (gcpause.py)
        return _rows(store, job)


def _rows(store: CertStore, job: JobConfig | None) -> list[dict[str, Any]]:
    configured = {spec.name: spec for spec in job.certs} if job else {}
    fraction = job.renew_fraction if job else 1 / 3
    now = datetime.now(UTC)
    out = []
    for name in sorted(set(store.all_names()) | set(configured)):
        spec = configured.get(name)
        try:
            stored, state = store.current(name), store.load_state(name)
        except StoreError as exc:
            out.append({"name": name, "names": list(spec.names) if spec else [name],
                        "damaged": str(exc)})
            continue
        if stored is None and spec is None:
            continue  # a directory with nothing in it yet (an order never finished)
        row: dict[str, Any] = {"name": name,
                               "names": list(stored.meta.names if stored else spec.names)}  # type: ignore[union-attr]
        if stored is not None:
            row.update(_version(stored.meta, state, fraction))
        row.update(_record(state, now))
        row["targets"] = _targets(job, spec, state)
        out.append(row)
    return out


def _version(meta: VersionMeta, state: CertState, fraction: float) -> dict[str, Any]:
    renew_at, source = renewal(standing.of(meta, state), fraction)
    chosen = renew_at if source == "ARI" else None
    window = state.ari if state.ari is not None and state.ari.serial == f"{meta.serial:x}" \
        else None
    revocation = state.revocation
    return {
        "version": meta.version, "serial": f"{meta.serial:x}", "key_type": meta.key_type,
        "not_before": meta.not_before, "not_after": meta.not_after, "issuer": meta.issuer,
        "issued_at": meta.issued_at, "ca": meta.directory, "order": meta.order_url,
        "renew_at": renew_at.isoformat(),
        "revoked": state.is_revoked(meta.serial),
        "revocation": None if revocation is None or not state.is_revoked(meta.serial) else {
            "at": revocation.at.isoformat(), "confirmed": revocation.confirmed},
        "renewal": {
            "source": "ARI" if chosen else "lifetime",
            "window": [window.start.isoformat(), window.end.isoformat()]
            if chosen and window and window.start and window.end else None,
            "chosen": chosen.isoformat() if chosen else None,
            "explanation": window.explanation if chosen and window else None,
            "ari_error": window.error if window else None,
        },
    }


def _record(state: CertState, now: datetime) -> dict[str, Any]:
    last = state.last
    waiting = state.waiting_until(now)
    return {
        "last": None if last is None else {"at": last.at.isoformat(), "result": last.result,
                                           "error": last.error},
        "next_attempt": waiting.isoformat() if waiting else None,
        "failures": state.backoff.failures if state.backoff else 0,
        "order_in_flight": state.order.url if state.order else None,
    }


def _targets(job: JobConfig | None, spec: CertSpec | None,
             state: CertState) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for key, record in state.deploys.items():
        targets[key] = {"at": record.at.isoformat(), "serial": record.serial,
                        "version": record.version, "error": record.error}
    for target in spec.targets if spec and job else ():
        where = placement(target, job.host(target), spec.name)  # type: ignore[union-attr]
        entry = targets.setdefault(target.key, None) or {}
        host = f"{target.host_label}:" if target.host else ""
        targets[target.key] = {**entry, "paths": f"{host}{where.describe()}"}
    return targets


def as_json(table: list[dict[str, Any]]) -> str:
    return json.dumps(table, indent=2)


def as_text(table: list[dict[str, Any]]) -> list[str]:
    if not table:
        return ["no certificates"]
    lines: list[str] = []
    for row in table:
        lines += _row_text(row)
    return lines


def _row_text(row: dict[str, Any]) -> list[str]:
    names = " ".join(row["names"])
    if "damaged" in row:
        return [f"{row['name']}: DAMAGED: {visible(row['damaged'])}"]
    lines = []
    if "not_after" in row:
        flag = ", REVOKED" if row["revoked"] else ""
        renewal = row["renewal"]
        source = ("ARI window " + " to ".join(w[:16] for w in renewal["window"])
                  if renewal["window"] else "lifetime rule")
        lines.append(f"{row['name']}: {names}; expires {row['not_after'][:10]}, renew at "
                     f"{row['renew_at'][:16]} ({source}); version {row['version']}, "
                     f"{row['key_type']}{flag}")
        if renewal["explanation"]:
            lines.append(f"  the CA explains: {visible(renewal['explanation'])}")
    else:
        lines.append(f"{row['name']}: {names}; not issued yet")
    last = row.get("last")
    if last:
        error = f": {visible(last['error'])}" if last.get("error") else ""
        lines.append(f"  last run {last['at'][:16]}: {last['result']}{error}")
    if row.get("next_attempt"):
        lines.append(f"  next attempt after {row['next_attempt'][:16]} "
                     f"({row['failures']} failure(s) in a row)")
    for key, record in sorted(row["targets"].items()):
        lines.append(_target_text(key, record))
    return lines


def _target_text(key: str, record: dict[str, Any]) -> str:
    shown = visible(record.get("paths") or key)
    if record.get("at") is None:
        return f"  {shown}: never deployed"
    if record.get("error"):
        return f"  {shown}: failed {record['at'][:16]}: {visible(record['error'])}"
    return (f"  {shown}: version {record['version']} (serial {record['serial']}) deployed "
            f"{record['at'][:16]}")


def as_table(table: list[dict[str, Any]]) -> list[str]:
    """One row per certificate, for a terminal: name, expiry, renewal, last result,
    targets that have the active version."""
    rows: list[tuple[str, ...]] = [("NAME", "EXPIRES", "RENEW AT", "LAST", "TARGETS", "NOTE")]
    for row in table:
        rows.append(_table_row(row))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)),
                       r[-1]]).rstrip() for r in rows]


def _table_row(row: dict[str, Any]) -> tuple[str, ...]:
    name = visible(row["name"])
    if "damaged" in row:
        return (name, "-", "-", "-", "-", "DAMAGED (certfleet status shows why)")
    targets = row["targets"].values()
    current = sum(1 for t in targets if t and t.get("serial") == row.get("serial")
                  and not t.get("error"))
    last = row.get("last") or {}
    note = ""
    if row.get("revoked"):
        note = "REVOKED"
    elif row.get("next_attempt"):
        note = f"retry after {row['next_attempt'][5:16].replace('T', ' ')}"
    elif last.get("error"):
        note = visible(last["error"])[:60]
    if "not_after" not in row:
        return (name, "not issued", "-", last.get("result", "-"), f"0/{len(targets)}", note)
    renew = row["renew_at"][:10] + (" ARI" if row["renewal"]["source"] == "ARI" else "")
    return (name, row["not_after"][:10], renew, last.get("result", "-"),
            f"{current}/{len(targets)}", note)
