"""The command line: arguments, output and exit codes. Touches stdout and stderr only.

Every command reads the same configuration (``config.sources``) and goes through the same
fleet runner; the modules here only parse and print. Output: each certificate's line, and
``status``'s table or JSON, on stdout; every error on stderr, one line each. Exit codes are
acme-client's (``report``): 0 changed, 1 failed, 2 nothing to do; a usage error (unknown
option, missing argument) is 1, never 2, so a cron wrapper cannot take a typo for "nothing
to do".
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .. import __version__
from ..config.defaults import DEFAULT_CONFIG, DEFAULT_STATE_DIR
from ..errors import CertfleetError
from ..report import EXIT_FAILED
from . import account, certs, challenge, fleet, migrate, monitor, output

Command = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors exiting 1 (argparse's 2 means "nothing to do" here)."""

    def error(self, message: str) -> NoReturn:
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
    fleet.add_arguments(sub, common, job)
    certs.add_arguments(sub, common, job)
    challenge.add_arguments(sub, common, job)
    account.add_arguments(sub, common, job)
    monitor.add_arguments(sub, common, job)
    migrate.add_arguments(sub, common_options(config=False))
    return top


COMMANDS: dict[str, Command] = {
    "run": fleet.run, "deploy": fleet.deploy, "status": fleet.status,
    "issue": certs.issue, "revoke": certs.revoke,
    "serve": challenge.serve, "check": challenge.check, "nginx-config": challenge.nginx,
    "account": account.account, "monitor": monitor.monitor, "import": migrate.run,
}


_LOG_HANDLER = logging.StreamHandler(output.SafeStream())
_LOG_HANDLER.setFormatter(output.SafeFormatter("certfleet: %(levelname)s: %(message)s"))


def _setup_logging(verbosity: int) -> None:
    """certfleet's own log on stderr: warnings, -v what is done, -vv every request."""
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    ours = logging.getLogger("certfleet")
    if _LOG_HANDLER not in ours.handlers:
        ours.addHandler(_LOG_HANDLER)
    _LOG_HANDLER.setLevel(level)
    if ours.getEffectiveLevel() > level:  # never raise it: others may listen (tests do)
        ours.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        # A monitoring plugin's own convention: anything that is not a verdict is UNKNOWN.
        if exc.code == EXIT_FAILED and argv[:1] == ["monitor"]:
            raise SystemExit(monitor.UNKNOWN) from None
        raise
    # serve logs every validation request: that is its output.
    _setup_logging(max(args.verbose, 1) if args.command == "serve" else args.verbose)
    try:
        return COMMANDS[args.command](args)
    except CertfleetError as exc:
        output.error(str(exc), json_mode=getattr(args, "json", False))
        return EXIT_FAILED
    except KeyboardInterrupt:
        output.error("interrupted")
        return EXIT_FAILED
    finally:
        output.flush()

