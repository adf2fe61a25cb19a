"""Every command's options: the whole parser, and nothing else.

Imports only ``argparse`` and the defaults its help text quotes, so ``certfleet --version``
and ``certfleet --help`` load no command; ``cli.main`` imports a command's module when it
runs (see ``COMMANDS`` there).
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..config.defaults import DEFAULT_CONFIG, DEFAULT_STATE_DIR

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy takes it so), without importing typing
if TYPE_CHECKING:
    from typing import Any, NoReturn

ACCOUNT_ACTIONS = ("register", "show", "update", "rollover", "deactivate")
ACCOUNT_KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
CERTBOT_DIR = "/etc/letsencrypt"
REVOCATION_REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded",
                      "cessationOfOperation")


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors exiting 1 (argparse's 2 means "nothing to do" here)."""

    def error(self, message: str) -> NoReturn:
        from ..report import EXIT_FAILED

        self.print_usage(sys.stderr)
        self.exit(EXIT_FAILED, f"{self.prog}: error: {message}\n")


def common_options(*, config: bool = True) -> argparse.ArgumentParser:
    """What every command takes: where the configuration, the state and the CA are
    (``import``, which writes a configuration, reads none)."""
    common = Parser(add_help=False)
    if config:
        common.add_argument("--config", metavar="FILE", help="certfleet.toml (env "
                            f"CERTFLEET_CONFIG; default {DEFAULT_CONFIG} if present)")
    common.add_argument("--state-dir", metavar="DIR", help="state directory (env "
                        f"CERTFLEET_STATE_DIR; default {DEFAULT_STATE_DIR})")
    common.add_argument("--directory", metavar="URL", help="ACME directory URL or preset "
                        "(letsencrypt, letsencrypt-staging, ...; env CERTFLEET_DIRECTORY; "
                        "default Let's Encrypt)")
    common.add_argument("--ca-bundle", metavar="FILE", help="PEM file of CAs trusted for "
                        "the ACME server's TLS certificate (env CERTFLEET_CA_BUNDLE)")
    common.add_argument("--insecure-http", action="store_true",
                        help="allow a plain-http ACME directory (test servers only)")
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="say what is done (-vv: every request)")
    return common


def challenge_options() -> argparse.ArgumentParser:
    """How http-01 is answered, for the commands that may order."""
    job = Parser(add_help=False)
    job.add_argument("--domains", metavar="FILE", help="the domains file (overrides the "
                     "config's domains)")
    job.add_argument("--webroot", metavar="DIR", help="write http-01 token files into DIR")
    job.add_argument("--http-listen", metavar="HOST:PORT",
                     help="answer http-01 with certfleet's own responder on HOST:PORT")
    return job


def parser() -> Parser:
    top = Parser(prog="certfleet", description="A small ACME client and certificate fleet "
                 "manager: renew what is due, deploy it everywhere.")
    top.add_argument("--version", action="version", version=f"certfleet {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common, job = common_options(), challenge_options()
    fleet_commands(sub, common, job)
    cert_commands(sub, common, job)
    challenge_commands(sub, common, job)
    account_commands(sub, common, job)
    monitor_command(sub, common, job)
    store_command(sub, common)
    import_command(sub, common_options(config=False))
    return top


def fleet_commands(sub: Any, common: argparse.ArgumentParser,
                   job: argparse.ArgumentParser) -> None:
    """``run``, ``deploy`` and ``status`` (done by ``cli.fleet``)."""
    p = sub.add_parser("run", parents=[common, job],
                       help="renew what is due in the domains file and deploy it")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would be done and why, and stop (changes nothing)")
    p.add_argument("--force", action="store_true", help="renew even if not due")
    p.add_argument("--concurrency", type=int, metavar="N",
                   help="orders in flight at once (default: concurrency in certfleet.toml)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only what changed or failed: nothing at all when nothing "
                        "was to do (for cron, which mails any output)")

    p = sub.add_parser("deploy", parents=[common, job],
                       help="push the current certificates to all their targets now")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only what changed or failed")

    p = sub.add_parser("status", parents=[common, job],
                       help="certificates, renewal times, last results and targets")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="machine-readable output")
    shown.add_argument("--table", action="store_true",
                       help="one row per certificate (the default on a terminal)")
    shown.add_argument("--lines", action="store_true",
                       help="everything, in lines (the default when piped)")


def cert_commands(sub: Any, common: argparse.ArgumentParser,
                  job: argparse.ArgumentParser) -> None:
    """``issue`` and ``revoke`` (done by ``cli.certs``)."""
    p = sub.add_parser("issue", parents=[common, job],
                       help="issue or renew one certificate (no deploy: `run NAME` deploys)")
    p.add_argument("names", nargs="*", metavar="NAME", help="the name, then alternative names")
    p.add_argument("--csr", metavar="FILE",
                   help="use this CSR (PEM or DER): names come from it, no key is written")
    p.add_argument("--profile", help="the CA's certificate profile (e.g. shortlived)")
    p.add_argument("--preferred-chain", metavar="ROOT_CN",
                   help="prefer the alternate chain to this root, if the CA offers one")
    p.add_argument("--key-type", help="domain key: ec256 ec384 rsa2048 rsa3072 rsa4096 "
                   "(default: key_type in certfleet.toml, else ec256)")
    p.add_argument("--account-key-type", help="account key type, used when the account "
                   "key is created (default: [ca] account_key_type, else ec256)")
    p.add_argument("--contact", action="append", metavar="EMAIL",
                   help="account contact address (repeatable; default [ca] contact)")
    p.add_argument("--reuse-key", action="store_true", help="keep the current domain key")
    p.add_argument("--force", action="store_true", help="renew even if not due")

    p = sub.add_parser("revoke", parents=[common],
                       help="revoke a certificate's current version")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--reason", default="unspecified", choices=REVOCATION_REASONS)
    p.add_argument("--with-cert-key", action="store_true",
                   help="sign with the certificate's own private key (RFC 8555 §7.6): "
                        "needs no account, e.g. after it was lost or deactivated")


def challenge_commands(sub: Any, common: argparse.ArgumentParser,
                       job: argparse.ArgumentParser) -> None:
    """``serve``, ``check`` and ``nginx-config`` (done by ``cli.challenge``)."""
    p = sub.add_parser("serve", parents=[common],
                       help="answer http-01 for runs in other processes (the Work host)")
    p.add_argument("--listen", metavar="HOST:PORT", help="default: [challenge] serve_listen")

    p = sub.add_parser("check", parents=[common, job],
                       help="probe the http-01 path of each name through each load balancer")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")

    p = sub.add_parser("nginx-config", parents=[common, job],
                       help="print the nginx snippets for the load balancers and Work host")
    p.add_argument("--stateless", action="store_true",
                   help="load balancers answer token.thumbprint themselves")
    p.add_argument("--work", metavar="HOST:PORT", action="append",
                   help="where the load balancers reach the Work host (default: "
                        "[challenge] serve_listen or http_listen); repeat it for the Work "
                        "hosts that share a store: they go into one upstream")


def account_commands(sub: Any, common: argparse.ArgumentParser,
                     job: argparse.ArgumentParser) -> None:
    """``account register|show|update|rollover|deactivate`` (done by ``cli.account``)."""
    p = sub.add_parser(
        "account", parents=[common], help="the ACME account: register, show, update, "
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


def store_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """``store migrate|import|export|new-key`` (done by ``cli.store``)."""
    p = sub.add_parser(
        "store", parents=[common], help="the shared PostgreSQL store: migrate, import, "
        "export, new-key",
        description="migrate: create or update the schema ([store] in certfleet.toml); "
        "import [DIR]: copy a state directory (default: state_dir) into the database; "
        "export DIR: copy the database into an empty state directory; new-key FILE: make "
        "the key that seals private keys in the database (0600, same on every Work host)")
    p.add_argument("action", choices=("migrate", "import", "export", "new-key"))
    p.add_argument("path", nargs="?", metavar="DIR|FILE",
                   help="import/export: the state directory; new-key: the key file")


def monitor_command(sub: Any, common: argparse.ArgumentParser,
                    job: argparse.ArgumentParser) -> None:
    """``monitor`` (done by ``cli.monitor``)."""
    p = sub.add_parser("monitor", parents=[common, job],
                       help="a monitoring plugin: OK, WARNING, CRITICAL or UNKNOWN, one line")
    p.add_argument("--critical", type=float, metavar="SHARE", default=0.1,
                   help="CRITICAL below this share of a certificate's lifetime left "
                        "(default 0.1)")
    p.add_argument("--critical-days", type=float, metavar="DAYS",
                   help="CRITICAL below this many days left (instead of --critical)")
    p.add_argument("--probe", action="store_true",
                   help="also check over TLS that every target serves the active version")


def import_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """``import acme-client|certbot`` (done by ``cli.migrate``); ``common`` without
    ``--config``."""
    p = sub.add_parser("import", help="bring acme-client's or certbot's account and "
                       "certificates into certfleet (nothing is re-issued)",
                       description="Read another ACME client's files (never changing them), "
                       "find its account at the CA, store each certificate as version 1 and "
                       "write a new certfleet.toml and domains file.")
    kinds = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    seed = kinds.add_parser("acme-client", parents=[common],
                            help="OpenBSD acme-client as the seed's crt-update.sh runs it")
    seed.add_argument("--domains-file", required=True, metavar="FILE",
                      help="the seed's domains.txt (domain|server:dir ...); kept as it is")
    seed.add_argument("--ssl-dir", required=True, metavar="DIR",
                      help="the directory of <domain>/{cert,chain,fullchain,privkey}.pem "
                           "(the seed's ${SSL})")
    seed.add_argument("--account-key", metavar="FILE",
                      help="the account key, acme-client's -f (default: SSL_DIR/privkey.pem)")
    seed.add_argument("--webroot", metavar="DIR", help="the directory the web server serves "
                      "as /.well-known/acme-challenge/ (acme-client's -C), for [challenge]")
    seed.add_argument("--http-listen", metavar="HOST:PORT",
                      help="or: certfleet's own http-01 responder, for [challenge]")
    bot = kinds.add_parser("certbot", parents=[common],
                           help="certbot's configuration directory")
    bot.add_argument("--config-dir", default=CERTBOT_DIR, metavar="DIR",
                     help=f"certbot's configuration directory (default {CERTBOT_DIR})")
    for kind in (seed, bot):
        kind.add_argument("--to-config", required=True, metavar="FILE",
                          help=f"the certfleet.toml to write (a new file; e.g. "
                               f"{DEFAULT_CONFIG})")
        kind.add_argument("--to-domains", metavar="FILE",
                          help="the domains file to write (a new file; default: domains.txt "
                               "beside --to-config)")
        kind.add_argument("--dry-run", action="store_true",
                          help="say what would be imported, line by line; write nothing")
