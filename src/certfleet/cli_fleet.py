"""The fleet commands: ``run``, ``deploy`` and ``status``. Touches stdout and nothing else;
the work is done by ``fleet``, the input read by ``config``.

Precedence for every setting: command line, then environment (CERTFLEET_*), then
certfleet.toml, then built-in defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .protocol import ari
from .spec import JobConfig
from .store import Store

DEFAULT_CONFIG = Path("/etc/certfleet/certfleet.toml")
_ENV = {"state_dir": "CERTFLEET_STATE_DIR", "directory": "CERTFLEET_DIRECTORY",
        "ca_bundle": "CERTFLEET_CA_BUNDLE"}


def job_parser() -> argparse.ArgumentParser:
    """Options of every command that reads certfleet.toml and the domains file."""
    job = argparse.ArgumentParser(add_help=False)
    job.add_argument("--config", type=Path, help="certfleet.toml (env CERTFLEET_CONFIG; "
                     f"default {DEFAULT_CONFIG} if present)")
    job.add_argument("--domains", type=Path, help="the domains file (overrides the config)")
    job.add_argument("--webroot", type=Path, metavar="DIR", help="http-01 token directory")
    job.add_argument("--http-listen", metavar="HOST:PORT", help="built-in http-01 responder")
    job.add_argument("--concurrency", type=int, help="certificates in flight at once")
    return job


def add_arguments(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register run, deploy and status on the main parser's subcommands."""
    job = job_parser()
    p = sub.add_parser("run", parents=[common, job],
                       help="renew what is due in the domains file and deploy it")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    p.add_argument("--force", action="store_true", help="renew even if not due")

    p = sub.add_parser("deploy", parents=[common, job],
                       help="push the current certificates to all their targets")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")

    p = sub.add_parser("status", parents=[common, job], help="certificates and deploy state")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def config_path(args: argparse.Namespace) -> Path | None:
    if args.config:
        return Path(args.config)
    if os.environ.get("CERTFLEET_CONFIG"):
        return Path(os.environ["CERTFLEET_CONFIG"])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def load(args: argparse.Namespace, need_domains: bool = True) -> JobConfig:
    from .config import load_job

    overrides: dict[str, Any] = {}
    for key in ("state_dir", "directory", "ca_bundle", "webroot", "http_listen", "concurrency"):
        value = getattr(args, key, None)
        if value is None and key in _ENV and os.environ.get(_ENV[key]):
            value = os.environ[_ENV[key]]
        if value is not None:
            overrides[key] = Path(value) if key in ("state_dir", "ca_bundle", "webroot") \
                else value
    if args.insecure_http:
        overrides["allow_http"] = True
    config = config_path(args)
    if config is None and args.domains is None and need_domains:
        raise ConfigError(f"no configuration: pass --config FILE or --domains FILE "
                          f"(or create {DEFAULT_CONFIG})")
    return load_job(config, domains_path=args.domains, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    from . import fleet, plan

    job = load(args)
    if args.dry_run:
        store = Store(job.state_dir)
        plans = fleet.make_plans(store, fleet.select(job, args.names), job, force=args.force)
        for line in plan.describe(plans):
            print(line)
        return 0
    outcomes = asyncio.run(fleet.run(job, names=args.names, force=args.force))
    return _report(outcomes)


def deploy(args: argparse.Namespace) -> int:
    from . import fleet

    job = load(args)
    outcomes = asyncio.run(fleet.run(job, names=args.names, deploy_only=True))
    return _report(outcomes)


def _report(outcomes: list[Any]) -> int:
    from . import fleet

    for outcome in outcomes:
        print(outcome.line())
    print(fleet.summary(outcomes))
    return fleet.exit_code(outcomes)


def status(args: argparse.Namespace) -> int:
    from .protocol.renewal import renewal_time

    job: JobConfig | None = None
    if config_path(args) is not None or args.domains is not None:
        job = load(args)
    state_dir = job.state_dir if job else Path(
        args.state_dir or os.environ.get("CERTFLEET_STATE_DIR", "/var/lib/certfleet"))
    store = Store(state_dir)
    fraction = job.renew_fraction if job else 1 / 3
    configured = {spec.name: spec for spec in job.certs} if job else {}
    rows: list[dict[str, Any]] = []
    stored_all = {s.name: s for s in store.all_current()}
    for name in sorted(set(stored_all) | set(configured)):
        stored = stored_all.get(name)
        state = store.read_state(name) if stored or name in configured else {}
        row: dict[str, Any] = {"name": name, "names": list(stored.meta.names) if stored
                               else list(configured[name].names)}
        if stored:
            meta = stored.meta
            window = state.get("ari") or {}
            chosen = ari.chosen_time(window, meta.serial)
            renew_at = chosen or renewal_time(meta.not_before_dt, meta.not_after_dt, fraction)
            row.update(version=meta.version, serial=f"{meta.serial:x}", key_type=meta.key_type,
                       not_after=meta.not_after, renew_at=renew_at.isoformat(),
                       revoked=state.get("revoked_serial") == f"{meta.serial:x}",
                       renewal={
                           "source": "ARI" if chosen else "lifetime",
                           "window": [window["start"], window["end"]] if chosen else None,
                           "chosen": window.get("chosen") if chosen else None,
                           "explanation": window.get("explanation") if chosen else None,
                           "ari_error": window.get("error"),
                       })
        row["last"] = state.get("last")
        deploys = dict(state.get("deploy", {}))
        for target in configured[name].targets if name in configured else ():
            deploys.setdefault(target.key, None)
        row["targets"] = deploys
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_status(rows)
    return 0


def _print_status(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no certificates")
    for row in rows:
        if "not_after" in row:
            flag = ", REVOKED" if row["revoked"] else ""
            renewal = row["renewal"]
            source = ("ARI window " + " to ".join(w[:16] for w in renewal["window"])
                      if renewal["window"] else "lifetime rule")
            print(f"{row['name']}: {' '.join(row['names'])}; expires {row['not_after'][:10]}, "
                  f"renew at {row['renew_at'][:16]} ({source}); version {row['version']}, "
                  f"{row['key_type']}{flag}")
            if renewal["explanation"]:
                print(f"  the CA explains: {renewal['explanation']}")
        else:
            print(f"{row['name']}: {' '.join(row['names'])}; not issued yet")
        last = row.get("last")
        if last:
            error = f": {last['error']}" if last.get("error") else ""
            print(f"  last run {last['at'][:16]}: {last['result']}{error}")
        for key, record in sorted(row["targets"].items()):
            if record is None:
                print(f"  {key}: never deployed")
            elif record.get("error"):
                print(f"  {key}: failed {record['at'][:16]}: {record['error']}")
            else:
                print(f"  {key}: version {record['version']} (serial {record['serial']}) "
                      f"deployed {record['at'][:16]}")
