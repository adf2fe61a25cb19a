"""The challenge commands: ``serve``, ``check``, ``nginx-config`` and ``account show``.

Touches stdout; the work is done by ``serve``, ``preflight``, ``nginx_config`` and
``account`` (which alone touches the account key).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from .cli_fleet import config_path, job_parser, load
from .errors import ConfigError
from .spec import JobConfig
from .store import Store


def add_arguments(sub: Any, common: argparse.ArgumentParser) -> None:
    job = job_parser()
    p = sub.add_parser("serve", parents=[common, job],
                       help="answer http-01 for runs in other processes (the Work host)")
    p.add_argument("--listen", metavar="HOST:PORT", help="default: [challenge] serve_listen")

    p = sub.add_parser("check", parents=[common, job],
                       help="probe the http-01 path of each name through each load balancer")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")

    p = sub.add_parser("nginx-config", parents=[common, job],
                       help="print the nginx snippets for the load balancers and Work host")
    p.add_argument("--stateless", action="store_true",
                   help="load balancers answer token.thumbprint themselves")
    p.add_argument("--work", metavar="HOST:PORT",
                   help="where the load balancers reach the Work host (default: "
                        "[challenge] serve_listen or http_listen)")

    p = sub.add_parser("account", parents=[common, job], help="the ACME account")
    p.add_argument("action", choices=["show"])


def _thumbprint(job: JobConfig) -> str:
    from .account import AccountKey

    store = Store(job.state_dir)
    path = store.account_key_path(job.directory)
    key, created = AccountKey.load_or_create(path, job.account_key_type)
    if created:
        print(f"certfleet: created {job.account_key_type.value} account key {path}",
              file=sys.stderr)
    return key.thumbprint


def account(args: argparse.Namespace) -> int:
    job = load(args, need_domains=False)
    store = Store(job.state_dir)
    thumbprint = _thumbprint(job)
    record = store.load_account(job.directory) or {}
    print(f"CA:         {job.directory}")
    print(f"key:        {store.account_key_path(job.directory)}")
    print(f"thumbprint: {thumbprint}")
    print(f"account:    {record.get('url') or 'not registered yet (the first run registers)'}")
    return 0


def nginx(args: argparse.Namespace) -> int:
    from . import nginx_config

    job = load(args, need_domains=False)
    if args.stateless:
        print(nginx_config.lb_stateless(_thumbprint(job)), end="")
        return 0
    how = job.challenges
    work = args.work or how.serve_listen or how.http_listen
    if not work:
        raise ConfigError("nginx-config: where do the load balancers reach the Work host? "
                          "set [challenge] serve_listen, or pass --work HOST:PORT")
    print(nginx_config.lb_proxy(work))
    if how.http_mode == "webroot" and how.webroot:
        names = [n for spec in job.certs for n in spec.names]
        print(nginx_config.work_webroot(work, names, how.webroot), end="")
    else:
        shown = str(args.config) if args.config else ""
        print(nginx_config.work_serve(work, shown), end="")
    return 0


def serve(args: argparse.Namespace) -> int:
    from . import serve as serving

    job = load(args, need_domains=False)
    listen = args.listen or job.challenges.serve_listen
    if not listen:
        raise ConfigError("serve: no address; pass --listen HOST:PORT or set "
                          "[challenge] serve_listen")
    asyncio.run(serving.serve(listen, Store(job.state_dir).challenge_dir()))
    return 0


def check(args: argparse.Namespace) -> int:
    from . import fleet, preflight

    job = load(args)
    specs = [s for s in fleet.select(job, args.names) if s.challenge == "http-01"]
    thumbprint = _thumbprint(job)

    async def go() -> list[preflight.ProbeResult]:
        names = [n for spec in specs for n in spec.names if not n.startswith("*.")]
        async with fleet.make_solver(job, "http-01", Store(job.state_dir)) as solver:
            return await preflight.probe(names, solver, thumbprint, job.lb.endpoints(),
                                         job.lb.port)

    results = asyncio.run(go()) if specs else []
    for result in results:
        print(result.line())
    failed = sum(not r.ok for r in results)
    print(f"{len(results)} probes: {len(results) - failed} ok, {failed} failed")
    return 1 if failed else 0


__all__ = ["account", "add_arguments", "check", "config_path", "nginx", "serve"]
