"""Command line: arguments, output lines and exit codes (acme-client's: 0 changed, 1 failed,
2 nothing to do). Touches stdout/stderr; everything else goes through ``issue`` and ``store``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, cli_challenge, cli_fleet
from .errors import CertfleetError, ConfigError, safe_text
from .names import normalize_identifier
from .protocol.renewal import due_reason, renewal_time
from .store import Store, StoredCert

if TYPE_CHECKING:
    from .acme_client import AcmeClient
    from .solvers import Solver

# The network, crypto and server modules are imported by the commands that use them, so
# that `status` and `--help` start in a fraction of the time (aiohttp alone costs ~0.25 s).
REVOCATION_REASONS = ("affiliationChanged", "cessationOfOperation", "keyCompromise",
                      "superseded", "unspecified")

EXIT_CHANGED, EXIT_FAILED, EXIT_NOTHING = 0, 1, 2
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
log = logging.getLogger("certfleet")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path,
                        help="state directory (env CERTFLEET_STATE_DIR; /var/lib/certfleet)")
    common.add_argument("--directory",
                        help="ACME directory URL (env CERTFLEET_DIRECTORY; Let's Encrypt)")
    common.add_argument("--ca-bundle", type=Path,
                        help="PEM file of CAs trusted for the ACME server's TLS certificate")
    common.add_argument("--insecure-http", action="store_true",
                        help="allow a plain-http ACME directory (test servers only)")
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="say what is done (-vv: every request)")

    parser = argparse.ArgumentParser(prog="certfleet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"certfleet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("issue", parents=[common], help="issue or renew one certificate")
    p.add_argument("names", nargs="*", metavar="NAME", help="the name, then alternative names")
    p.add_argument("--csr", type=Path, metavar="FILE",
                   help="use this CSR (PEM or DER): names come from it, no key is written")
    p.add_argument("--profile", help="the CA's certificate profile (e.g. shortlived)")
    p.add_argument("--preferred-chain", metavar="ROOT_CN",
                   help="prefer the alternate chain to this root, if the CA offers one")
    p.add_argument("--key-type", default="ec256", help="domain key: ec256 ec384 rsa2048 "
                   "rsa3072 rsa4096 (default ec256)")
    p.add_argument("--account-key-type", default="ec256", help="account key type, used when "
                   "the account key is created (default ec256)")
    p.add_argument("--contact", action="append", default=[], metavar="EMAIL",
                   help="account contact address (repeatable)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--webroot", type=Path, metavar="DIR",
                     help="write http-01 token files into DIR (served by your web server)")
    how.add_argument("--http-listen", metavar="HOST:PORT",
                     help="answer http-01 with certfleet's own responder on HOST:PORT")
    p.add_argument("--reuse-key", action="store_true", help="keep the current domain key")
    p.add_argument("--force", action="store_true", help="renew even if not due")

    p = sub.add_parser("revoke", parents=[common], help="revoke the current certificate")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--reason", default="unspecified", choices=REVOCATION_REASONS)
    p.add_argument("--with-cert-key", action="store_true",
                   help="sign with the certificate's own private key (RFC 8555 §7.6): "
                        "needs no account, e.g. after it was lost or deactivated")

    cli_fleet.add_arguments(sub, common)
    cli_challenge.add_arguments(sub, common)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="certfleet: %(levelname)s: %(message)s",
                        stream=sys.stderr)
    if verbosity < 3:
        logging.getLogger("aiohttp").setLevel(logging.WARNING)


def _client(args: argparse.Namespace) -> AcmeClient:
    from .acme_client import AcmeClient

    return AcmeClient(args.directory, ca_bundle=args.ca_bundle, allow_http=args.insecure_http)


def _date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def _revoked(store: Store, stored: StoredCert) -> bool:
    return bool(store.read_state(stored.name).get("revoked_serial") == f"{stored.meta.serial:x}")


def _solver(args: argparse.Namespace) -> Solver:
    from .solvers.http_server import HttpServerSolver, parse_listen
    from .solvers.webroot import WebrootSolver

    if args.webroot:
        return WebrootSolver(args.webroot)
    if args.http_listen:
        return HttpServerSolver(*parse_listen(args.http_listen))
    raise ConfigError("choose how to answer http-01: --webroot DIR or --http-listen HOST:PORT")


async def _issue(args: argparse.Namespace, store: Store) -> int:
    from .account_ops import eab_settings
    from .issue import issue, issue_csr, open_account
    from .keytypes import KeyType
    from .protocol.ari import cert_id

    csr = None
    if args.csr is not None:
        from .keys import load_csr

        if args.names:
            raise ConfigError("--csr: the names come from the CSR; give no NAME")
        try:
            csr = load_csr(args.csr.read_bytes(), str(args.csr))
        except OSError as exc:
            raise ConfigError(f"{args.csr}: cannot read: {exc.strerror}") from None
        names = list(csr[1])
    else:
        if not args.names:
            raise ConfigError("issue: give at least one NAME, or --csr FILE")
        names = [normalize_identifier(n) for n in args.names]
    if len(set(names)) != len(names):
        raise ConfigError("a name is given twice")
    key_type, account_type = KeyType.parse(args.key_type), KeyType.parse(args.account_key_type)
    wanted_type = "csr" if csr else key_type.value
    solver = _solver(args)
    current = store.current(names[0])
    reason = due_reason(
        wanted_names=tuple(names), wanted_key_type=wanted_type,
        current_names=current.meta.names if current else None,
        current_key_type=current.meta.key_type if current else None,
        not_before=current.meta.not_before_dt if current else None,
        not_after=current.meta.not_after_dt if current else None,
        revoked=_revoked(store, current) if current else False,
        now=datetime.now(UTC), forced=args.force,
    )
    if reason is None and current is not None:
        when = renewal_time(current.meta.not_before_dt, current.meta.not_after_dt)
        print(f"{names[0]}: not due until {_date(when)}")
        return EXIT_NOTHING
    log.info("%s: issuing (%s)", names[0], reason)
    with store.lock(names[0]):
        async with _client(args) as client, solver:
            session = await open_account(client, store, account_type, args.contact,
                                         eab=eab_settings())
            if csr is not None:
                stored = await issue_csr(session, store, csr[0], names, csr[2], solver,
                                         profile=args.profile,
                                         preferred_chain=args.preferred_chain)
            else:
                replaces = None
                if current is not None and current.meta.aki:
                    replaces = cert_id(bytes.fromhex(current.meta.aki), current.meta.serial)
                stored = await issue(session, store, names, key_type, solver, args.reuse_key,
                                     profile=args.profile, replaces=replaces,
                                     preferred_chain=args.preferred_chain)
        log.info("%s: %d requests to the CA", names[0], client.total_requests)
    verb = "issued" if current is None else "renewed"
    print(f"{names[0]}: {verb} (expires {_date(stored.meta.not_after_dt)}), "
          f"version {stored.meta.version}")
    return EXIT_CHANGED


async def _revoke(args: argparse.Namespace, store: Store) -> int:
    from .revocation import revoke_stored

    name = normalize_identifier(args.name)
    stored = store.current(name)
    if stored is None:
        raise ConfigError(f"{name}: no certificate stored")
    with store.lock(name):
        async with _client(args) as client:
            await revoke_stored(client, store, stored, args.reason, args.with_cert_key)
    print(f"{name}: revoked (serial {stored.meta.serial:x}, reason {args.reason})")
    return EXIT_CHANGED


def _env_defaults(args: argparse.Namespace) -> None:
    """For issue and revoke: the environment fills what the command line left out."""
    if args.state_dir is None:
        args.state_dir = Path(os.environ.get("CERTFLEET_STATE_DIR", "/var/lib/certfleet"))
    if args.directory is None:
        args.directory = os.environ.get("CERTFLEET_DIRECTORY", LETSENCRYPT)
    if args.ca_bundle is None and os.environ.get("CERTFLEET_CA_BUNDLE"):
        args.ca_bundle = Path(os.environ["CERTFLEET_CA_BUNDLE"])


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # serve logs every validation request: that is its output.
    _setup_logging(max(args.verbose, 1) if args.command == "serve" else args.verbose)
    label = " ".join(getattr(args, "names", []) or [getattr(args, "name", "") or "certfleet"])
    label = safe_text(label.split()[0] if label else "certfleet")
    try:
        if args.ca_bundle is not None and not args.ca_bundle.is_file():
            raise ConfigError(f"--ca-bundle {args.ca_bundle}: no such file")
        fleet_command = {"run": cli_fleet.run, "deploy": cli_fleet.deploy,
                         "status": cli_fleet.status, "serve": cli_challenge.serve,
                         "check": cli_challenge.check, "nginx-config": cli_challenge.nginx,
                         "account": cli_challenge.account}.get(args.command)
        if fleet_command is not None:
            return fleet_command(args)
        _env_defaults(args)
        store = Store(args.state_dir)
        runner = _issue if args.command == "issue" else _revoke
        with store.running():
            return asyncio.run(runner(args, store))
    except CertfleetError as exc:
        if fleet_command is not None:
            # ConfigErrors carries one "file:line: reason" per line already.
            print(str(exc) if "\n" in str(exc) else f"certfleet: {exc}", file=sys.stdout)
        else:
            print(f"{label}: failed: {exc}", file=sys.stdout)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=sys.stderr)
        return EXIT_FAILED

