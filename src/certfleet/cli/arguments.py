"""Every command's options: the whole parser, and nothing else.

Imports only ``argparse`` and the defaults its help text quotes, so ``certfleet --version``
and ``certfleet --help`` load no command; ``cli.main`` imports a command's module when it
runs (see ``COMMANDS`` there). A command line that begins with a command builds that
command's parser alone: every ``ArgumentParser`` made costs gettext lookups of its headings,
and the whole parser took ~10 ms here where one command's takes ~1.3 ms (the modules
argparse imports for its first parser, ~7 ms, aside).
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..config.defaults import DEFAULT_CONFIG, DEFAULT_STATE_DIR

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy takes it so), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

ACCOUNT_ACTIONS = ("register", "show", "update", "rollover", "deactivate")
ACCOUNT_KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
CERTBOT_DIR = "/etc/letsencrypt"
REVOCATION_REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded",
                      "cessationOfOperation")


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors exiting 1 (argparse's 2 means "nothing to do" here), and
    a help formatter that finds the terminal's width without shutil."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)  # the subcommands' parsers too
        super().__init__(*args, **kwargs)
        # The command whose options the top level refuses as unrecognized (``cli.main``).
        self.help_of: str | None = None

    def error(self, message: str) -> NoReturn:
        """One line, as every other error: what is wrong, and where the options are listed
        (argparse prints its usage block first; ``--help`` shows it on demand)."""
        text = f"{self.prog}: error: {message} (see {self.help_of or self.prog} --help)"
        sys.stderr.write(text + "\n")
        raise UsageError(text)


class UsageError(SystemExit):
    """A command line argparse refused: exit 1, the line said on stderr, kept in ``text``
    (with ``--json`` it is stdout's JSON too)."""

    def __init__(self, text: str) -> None:
        from ..report import EXIT_FAILED

        super().__init__(EXIT_FAILED)
        self.text = text


class _Formatter(argparse.HelpFormatter):
    """argparse's own, given the width: finding it, argparse imports shutil and with it bz2,
    lzma and zlib, ~4 ms of every command (even ``--version``: each ``add_argument`` makes
    a formatter) for a help text most runs never print."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _columns() - 2 if width is None else width)


def _columns() -> int:
    """The terminal's width as argparse finds it (``shutil.get_terminal_size``): $COLUMNS,
    else the terminal on standard output, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    stdout = sys.__stdout__
    try:
        found = os.get_terminal_size(stdout.fileno()).columns if stdout else 0
    except (ValueError, OSError):  # not a terminal, or closed
        found = 0
    return found or 80


def common_options(p: argparse.ArgumentParser, *, config: bool = True) -> None:
    """What every command takes: where the configuration, the state and the CA are
    (``import``, which writes a configuration, reads none)."""
    if config:
        p.add_argument("--config", metavar="FILE", help="certfleet.toml (env "
                       f"CERTFLEET_CONFIG; default {DEFAULT_CONFIG} if present)")
    p.add_argument("--state-dir", metavar="DIR", help="state directory (env "
                   f"CERTFLEET_STATE_DIR; default {DEFAULT_STATE_DIR})")
    p.add_argument("--directory", metavar="URL", help="ACME directory URL or preset "
                   "(letsencrypt, letsencrypt-staging, ...; env CERTFLEET_DIRECTORY; "
                   "default Let's Encrypt)")
    p.add_argument("--ca-bundle", metavar="FILE", help="PEM file of CAs trusted for "
                   "the ACME server's TLS certificate (env CERTFLEET_CA_BUNDLE)")
    p.add_argument("--insecure-http", action="store_true",
                   help="allow a plain-http ACME directory (test servers only)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="say what is done (-vv: every request)")


def challenge_options(p: argparse.ArgumentParser) -> None:
    """How http-01 is answered, for the commands that may order."""
    p.add_argument("--domains", metavar="FILE", help="the domains file (overrides the "
                   "config's domains)")
    p.add_argument("--webroot", metavar="DIR", help="write http-01 token files into DIR")
    p.add_argument("--http-listen", metavar="HOST:PORT",
                   help="answer http-01 with certfleet's own responder on HOST:PORT")


def _command(sub: Any, name: str, *, job: bool, **more: Any) -> argparse.ArgumentParser:
    """Command ``name`` with the options every command takes, and ``job``'s."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=HELP[name], **more)
    common_options(p)
    if job:
        challenge_options(p)
    return p


#: Each command's one-line summary, in the order ``certfleet --help`` lists them.
HELP = {
    "run": "renew what is due in the domains file and deploy it",
    "deploy": "push the current certificates to all their targets now",
    "status": "certificates, renewal times, last results and targets",
    "issue": "issue or renew one certificate (no deploy: `run NAME` deploys)",
    "revoke": "revoke a certificate's current version",
    "serve": "answer http-01 for runs in other processes (the Work host)",
    "check": "probe the http-01 path of each name through each load balancer",
    "nginx-config": "print the nginx snippets for the load balancers and Work host",
    "account": "the ACME account: register, show, update, rollover, deactivate",
    "monitor": "a monitoring plugin: OK, WARNING, CRITICAL or UNKNOWN, one line",
    "store": "the shared PostgreSQL store: migrate, import, export, new-key",
    "import": "bring acme-client's or certbot's account and certificates into certfleet "
              "(nothing is re-issued)",
}


def parser(argv: Sequence[str] | None = None) -> Parser:
    """The parser of every command's options; given a command line that begins with a
    command, of that command's options only. What else such a line can show of the top
    level, its usage, names no command; a line that begins otherwise (``-h``,
    ``--version``, a mistyped command) gets every command by name and summary, for the
    help or the error that lists them."""
    top = Parser(prog="certfleet", description="A small ACME client and certificate fleet "
                 "manager: renew what is due, deploy it everywhere.")
    top.add_argument("--version", action="version", version=f"certfleet {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = argv[0] if argv and argv[0] in HELP else None
    for name, summary in HELP.items():
        if argv is None or name == named:
            BUILD[name](sub)
        elif named is None:
            sub.add_parser(name, help=summary)
    return top


def command_first(argv: Sequence[str]) -> list[str]:
    """``argv`` with the options written before the command moved after it, where they
    belong (``certfleet -v run`` as ``certfleet run -v``): every option is a command's own,
    the top level has only ``--help`` and ``--version``. A line that begins otherwise, or
    whose leading words are not all options, is left for argparse to explain."""
    line = list(argv)
    if not line or not line[0].startswith("-") or line[0] in ("-h", "--help", "--version"):
        return line
    valued = _valued_options()
    at = 0
    while at < len(line) and line[at].startswith("-"):
        at += 2 if line[at] in valued else 1  # ``--config FILE``: FILE is no command
    if at < len(line) and line[at] in HELP:
        return [line[at], *line[:at], *line[at + 1:]]
    return line


def _valued_options() -> set[str]:
    """The options of ``common_options`` and ``challenge_options`` that take a value."""
    scratch = argparse.ArgumentParser(add_help=False)
    common_options(scratch)
    challenge_options(scratch)
    return {name for action in scratch._actions if action.nargs != 0
            for name in action.option_strings}


# -- each command's own options: ``cli.fleet`` ------------------------------------------


def _run(sub: Any) -> None:
    p = _command(sub, "run", job=True)
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would be done and why, and stop (changes nothing)")
    p.add_argument("--force", action="store_true", help="renew even if not due")
    p.add_argument("--concurrency", type=int, metavar="N",
                   help="orders in flight at once (default: concurrency in certfleet.toml)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only what changed or failed: nothing at all when nothing "
                        "was to do (for cron, which mails any output)")


def _deploy(sub: Any) -> None:
    p = _command(sub, "deploy", job=True)
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only what changed or failed")


def _status(sub: Any) -> None:
    p = _command(sub, "status", job=True)
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="machine-readable output")
    shown.add_argument("--table", action="store_true",
                       help="one row per certificate (the default on a terminal)")
    shown.add_argument("--lines", action="store_true",
                       help="everything, in lines (the default when piped)")


# -- ``cli.certs`` ---------------------------------------------------------------------------


def _issue(sub: Any) -> None:
    p = _command(sub, "issue", job=True)
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


def _revoke(sub: Any) -> None:
    p = _command(sub, "revoke", job=False)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--reason", default="unspecified", choices=REVOCATION_REASONS)
    p.add_argument("--with-cert-key", action="store_true",
                   help="sign with the certificate's own private key (RFC 8555 §7.6): "
                        "needs no account, e.g. after it was lost or deactivated")


# -- ``cli.challenge`` -----------------------------------------------------------------------


def _serve(sub: Any) -> None:
    p = _command(sub, "serve", job=False)
    p.add_argument("--listen", metavar="HOST:PORT", help="default: [challenge] serve_listen")


def _check(sub: Any) -> None:
    p = _command(sub, "check", job=True)
    p.add_argument("names", nargs="*", metavar="NAME", help="only these certificates")


def _nginx_config(sub: Any) -> None:
    p = _command(sub, "nginx-config", job=True)
    p.add_argument("--stateless", action="store_true",
                   help="load balancers answer token.thumbprint themselves")
    p.add_argument("--work", metavar="HOST:PORT", action="append",
                   help="where the load balancers reach the Work host (default: "
                        "[challenge] serve_listen or http_listen); repeat it for the Work "
                        "hosts that share a store: they go into one upstream")


# -- ``cli.account``, ``cli.monitor``, ``cli.store`` -----------------------------------------


def _account(sub: Any) -> None:
    p = _command(
        sub, "account", job=False,
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


def _monitor(sub: Any) -> None:
    p = _command(sub, "monitor", job=True)
    p.add_argument("--critical", type=_share, metavar="SHARE", default=0.1,
                   help="CRITICAL below this share of a certificate's lifetime left, "
                        "above 0 and below 1 (default 0.1)")
    p.add_argument("--critical-days", type=_days, metavar="DAYS",
                   help="CRITICAL below this many days left, above 0 and at most 3650 "
                        "(instead of --critical)")
    p.add_argument("--probe", action="store_true",
                   help="also check over TLS that every target serves the active version")


def _share(text: str) -> float:
    """A share of a lifetime: above 0 (else never CRITICAL) and below 1 (else always)."""
    share = _number(text)
    if not 0 < share < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a share above 0 and below 1, e.g. 0.1")
    return share


def _days(text: str) -> float:
    """Days left: above 0, and at most ten years (no certificate lives longer)."""
    days = _number(text)
    if not 0 < days <= 3650:
        raise argparse.ArgumentTypeError(f"{text!r}: days above 0 and at most 3650")
    return days


def _number(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: not a number")
    return value


def _store(sub: Any) -> None:
    p = _command(
        sub, "store", job=False,
        description="migrate: create or update the schema ([store] in certfleet.toml); "
        "import [DIR]: copy a state directory (default: state_dir) into the database; "
        "export DIR: copy the database into an empty state directory; new-key FILE: make "
        "the key that seals private keys in the database (0600, same on every Work host)")
    p.add_argument("action", choices=("migrate", "import", "export", "new-key"))
    p.add_argument("path", nargs="?", metavar="DIR|FILE",
                   help="import/export: the state directory; new-key: the key file")


# -- ``cli.migrate`` -------------------------------------------------------------------------


def _import(sub: Any) -> None:
    """``import acme-client|certbot``: the common options without ``--config`` (it writes
    a configuration, reads none)."""
    p = sub.add_parser("import", help=HELP["import"],
                       description="Read another ACME client's files (never changing them), "
                       "find its account at the CA, store each certificate as version 1 and "
                       "write a new certfleet.toml and domains file.")
    kinds = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    seed = kinds.add_parser("acme-client",
                            help="OpenBSD acme-client as the seed's crt-update.sh runs it")
    common_options(seed, config=False)
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
    bot = kinds.add_parser("certbot", help="certbot's configuration directory")
    common_options(bot, config=False)
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


#: Each command's options, by name (``HELP`` lists them).
BUILD: dict[str, Callable[[Any], None]] = {
    "run": _run, "deploy": _deploy, "status": _status, "issue": _issue, "revoke": _revoke,
    "serve": _serve, "check": _check, "nginx-config": _nginx_config, "account": _account,
    "monitor": _monitor, "store": _store, "import": _import,
}
