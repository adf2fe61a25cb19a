"""``import acme-client`` and ``import certbot``: another client's account and certificates
into certfleet. Parses and prints; ``migrate`` reads the other client's files and carries
the import out.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ..config.defaults import DEFAULT_CONFIG
from ..config.sources import job_from
from ..errors import ConfigError
from . import output

CERTBOT_DIR = "/etc/letsencrypt"


def add_arguments(sub: Any, common: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    """``certfleet import acme-client|certbot``."""
    from ..migrate import carry, found

    options = {k: v for k, v in vars(args).items() if k in ("state_dir", "directory",
                                                          "ca_bundle", "insecure_http")}
    if args.source == "acme-client":
        options.update(webroot=args.webroot, http_listen=args.http_listen)
    elif args.directory:
        raise ConfigError("import certbot: the CA is each lineage's own (server in its "
                          "renewal configuration); --directory does not apply")
    job = job_from(options, read_config=False)
    config = Path(args.to_config)
    domains = Path(args.to_domains) if args.to_domains else config.parent / "domains.txt"
    settings = found.Settings(directory=job.directory, state_dir=job.state_dir.absolute(),
                              ca_bundle=job.ca_bundle.absolute() if job.ca_bundle else None,
                              allow_http=job.allow_http)
    migration = _gather(args, settings, job.allow_http)
    return asyncio.run(carry.carry(migration, job, config, domains, dry_run=args.dry_run,
                                   say=output.say))


def _gather(args: argparse.Namespace, settings: Any, allow_http: bool) -> Any:
    from ..migrate import from_acme_client, from_certbot

    if args.source == "certbot":
        return from_certbot.gather(Path(args.config_dir), settings, allow_http)
    if args.webroot:
        settings.challenge["webroot"] = str(Path(args.webroot).absolute())
    elif args.http_listen:
        settings.challenge["http_listen"] = args.http_listen
    ssl_dir = Path(args.ssl_dir)
    account_key = Path(args.account_key) if args.account_key else ssl_dir / "privkey.pem"
    return from_acme_client.gather(Path(args.domains_file), ssl_dir, account_key, settings)
