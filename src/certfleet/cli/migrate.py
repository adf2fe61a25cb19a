"""``import acme-client`` and ``import certbot``: another client's account and certificates
into certfleet. Parses and prints; ``migrate`` reads the other client's files and carries
the import out.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config.sources import job_from
from ..errors import ConfigError
from . import output


def run(args: argparse.Namespace) -> int:
    """``certfleet import acme-client|certbot`` ."""
    import asyncio

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
