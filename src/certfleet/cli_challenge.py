"""The challenge commands: ``serve``, ``check``, ``nginx-config``, and ``account``.

Touches stdout; the work is done by ``serve``, ``preflight``, ``nginx_config``,
``account_ops`` (register, update, rollover, deactivate) and ``account`` (which alone
touches the account key).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from .cli_fleet import config_path, job_parser, load
from .errors import ConfigError
from .spec import JobConfig
from .store import Store

if TYPE_CHECKING:
    from .acme_client import AcmeClient

ACCOUNT_ACTIONS = ("register", "show", "update", "rollover", "deactivate")
ACCOUNT_KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
EXIT_CHANGED, EXIT_FAILED, EXIT_NOTHING = 0, 1, 2


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

    p = sub.add_parser(
        "account", parents=[common, job], help="the ACME account: register, show, update, "
        "rollover, deactivate",
        description="register [--contact EMAIL]... [--new-key]: find or register the "
        "account (external account binding from [ca] eab_kid, eab_hmac_key or "
        "CERTFLEET_EAB_KID, CERTFLEET_EAB_HMAC_KEY); show: what is on disk; update "
        "--contact EMAIL...: replace the contact addresses; rollover [--key-type T]: "
        "replace the account key (RFC 8555 section 7.3.5); deactivate --yes: end the "
        "account for good")
    p.add_argument("action", choices=ACCOUNT_ACTIONS)
    p.add_argument("--contact", action="append", default=None, metavar="EMAIL",
                   help="register, update: a contact address (repeatable; register "
                        "defaults to [ca] contact)")
    p.add_argument("--key-type", choices=ACCOUNT_KEY_TYPES,
                   help="rollover, register --new-key: type of the new account key "
                        "(default: [ca] account_key_type, ec256)")
    p.add_argument("--new-key", action="store_true",
                   help="register: move the current key aside and register a new account "
                        "with a new key (after a deactivation)")
    p.add_argument("--yes", action="store_true",
                   help="deactivate: yes, really (it cannot be undone)")


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
    """``certfleet account register|show|update|rollover|deactivate``."""
    action = args.action
    allowed = {"register": {"contact", "key_type", "new_key"}, "show": set(),
               "update": {"contact"}, "rollover": {"key_type"}, "deactivate": {"yes"}}
    given = {name for name in ("contact", "key_type", "new_key", "yes")
             if getattr(args, name) not in (None, False)}
    if stray := sorted(given - allowed[action]):
        options = ", ".join("--" + name.replace("_", "-") for name in stray)
        raise ConfigError(f"account {action}: {options} does not apply here")
    if action == "update" and args.contact is None:
        raise ConfigError("account update: give the new addresses with --contact EMAIL "
                          "(repeatable)")
    if action == "register" and args.key_type and not args.new_key:
        raise ConfigError("account register: --key-type is for a new key; add --new-key")
    if action == "deactivate" and not args.yes:
        raise ConfigError("account deactivate: the CA will refuse this account for good "
                          "(RFC 8555 section 7.3.6) and certificates can then only be "
                          "renewed with a new account; pass --yes to proceed")
    job = load(args, need_domains=False)
    if action == "show":
        return _account_show(job)
    return asyncio.run(_account_online(action, args, job))


def _account_show(job: JobConfig) -> int:
    store = Store(job.state_dir)
    thumbprint = _thumbprint(job)
    record = store.load_account(job.directory) or {}
    registered = record.get("thumbprint") == thumbprint and record.get("url")
    print(f"CA:         {job.directory}")
    print(f"key:        {store.account_key_path(job.directory)}")
    print(f"thumbprint: {thumbprint}")
    if not registered:
        print("account:    not registered yet (`certfleet account register`, or the first "
              "run, registers)")
        return 0
    print(f"account:    {record['url']}")
    status = str(record.get("status") or "valid")
    if record.get("deactivated_at"):
        status += f" (since {record['deactivated_at']})"
    print(f"status:     {status}")
    print(f"contact:    {', '.join(record.get('contact') or []) or '-'}")
    if record.get("eab_kid"):
        print(f"eab kid:    {record['eab_kid']}")
    if record.get("rolled_over_at"):
        print(f"key since:  {record['rolled_over_at']} (rolled over)")
    return 0


def _acme_client(job: JobConfig) -> AcmeClient:
    from .acme_client import AcmeClient

    return AcmeClient(job.directory, ca_bundle=job.ca_bundle, allow_http=job.allow_http)


async def _account_online(action: str, args: argparse.Namespace, job: JobConfig) -> int:
    from . import account_ops
    from .keytypes import KeyType

    store = Store(job.state_dir)
    key_type = KeyType.parse(args.key_type) if args.key_type else job.account_key_type
    async with _acme_client(job) as client:
        if action == "register":
            contact = args.contact if args.contact is not None else list(job.contact)
            done = await account_ops.register(
                client, store, key_type, contact, eab=account_ops.eab_settings(job),
                new_key=args.new_key)
            if done.retired_key is not None:
                print(f"account: old key moved aside to {done.retired_key}")
            if not done.created:
                print(f"account: already registered: {done.session.kid} (change the "
                      "contact with `certfleet account update --contact EMAIL`)")
                return EXIT_NOTHING
            print(f"account: registered {done.session.kid}"
                  + (f" (contact {', '.join(contact)})" if contact else ""))
            return EXIT_CHANGED
        session = await account_ops.open_existing(client, store)
        if action == "update":
            account = await account_ops.update_contact(session, args.contact, store)
            shown = ", ".join(c.removeprefix("mailto:") for c in account.contact) or "none"
            print(f"account: {session.kid}: contact now {shown}")
        elif action == "rollover":
            rolled = await account_ops.rollover(session, store, key_type)
            print(f"account: {session.kid}: new {key_type.value} key, thumbprint "
                  f"{rolled.session.key.thumbprint}; the old key is kept in "
                  f"{rolled.old_key_kept}")
        else:
            await account_ops.deactivate(session, store)
            print(f"account: {session.kid}: deactivated; register a new account with "
                  "`certfleet account register --new-key`")
    return EXIT_CHANGED


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
