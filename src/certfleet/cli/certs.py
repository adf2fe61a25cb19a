"""``issue`` and ``revoke``: one certificate named on the command line. Parses and prints;
``issue`` goes through the same plan and fleet runner as ``run``, ``revoke`` through
``revocation`` with the CA that issued the certificate.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from ..config.sources import job_from
from ..errors import CertfleetError, ConfigError, visible
from ..gcpause import importing
from ..keytypes import KeyType
from ..names import normalize_identifier
from ..report import EXIT_CHANGED, EXIT_FAILED, exit_code
from ..spec import CertSpec, JobConfig
from . import output

CSR_LIMIT = 64 * 1024


def _spec(job: JobConfig, args: argparse.Namespace) -> CertSpec:
    """The certificate the command line asks for, with the configured settings for it."""
    csr = None
    if args.csr is not None:
        from ..keys import load_csr

        if args.names:
            raise ConfigError("--csr: the names come from the CSR; give no NAME")
        csr = _read_csr(Path(args.csr))
        names = list(load_csr(csr, args.csr)[1])
    else:
        if not args.names:
            raise ConfigError("issue: give at least one NAME, or --csr FILE")
        names = [normalize_identifier(n) for n in args.names]
    if len(set(names)) != len(names):
        raise ConfigError("issue: a name is given twice")
    settings = job.cert_settings.get(names[0], job.defaults)
    key_type = KeyType.parse(args.key_type) if args.key_type else settings.key_type
    spec = CertSpec(names=tuple(names), key_type=key_type, challenge=settings.challenge,
                    reuse_key=args.reuse_key or settings.reuse_key,
                    profile=args.profile or settings.profile,
                    preferred_chain=args.preferred_chain or settings.preferred_chain,
                    source="command line", ca=settings.ca, fallback=settings.fallback,
                    csr=csr)
    # Any name, from the command line or a CSR: only dns-01 can validate a wildcard, and
    # the CA would refuse it only after an order was placed.
    wildcard = next((n for n in names if n.startswith("*.")), None)
    if wildcard is not None and spec.challenge != "dns-01":
        raise ConfigError(f"{wildcard}: a wildcard needs challenge dns-01 (set challenge = "
                          f"\"dns-01\" in [certs.\"{names[0]}\"] or [defaults])")
    return spec


def _read_csr(path: Path) -> bytes:
    from .. import fsutil
    from ..errors import StoreError

    try:
        return fsutil.read_small(path, CSR_LIMIT)
    except FileNotFoundError:
        raise ConfigError(f"--csr {path}: no such file") from None
    except StoreError as exc:
        raise ConfigError(f"--csr {exc}") from None


def issue(args: argparse.Namespace) -> int:
    with importing():  # long-lived objects (gcpause.py)
        from .. import fleet

    job = job_from(vars(args), need_domains=False)
    spec = _spec(job, args)
    outcomes = asyncio.run(fleet.run(job, [spec], force=args.force,
                                     emit=lambda o: output.say(o.line())))
    return exit_code(outcomes)


def revoke(args: argparse.Namespace) -> int:
    from .. import ca
    from ..revocation import revoke_stored
    from ..store import open_store

    job = job_from(vars(args), need_domains=False)
    base, plus, variant = args.name.partition("+")
    name = normalize_identifier(base) + (f"+{KeyType.parse(variant).value}" if plus else "")
    store = open_store(job)
    stored = store.current(name)
    if stored is None:
        raise ConfigError(f"{name}: no certificate stored in {job.state_dir}")

    async def go() -> None:
        async with store.locked(name), ca.client(job, stored.meta.directory) as client:
            await revoke_stored(client, store, stored, args.reason, args.with_cert_key)

    try:
        asyncio.run(go())
    except CertfleetError as exc:  # this certificate's line, as a run would print it
        output.say(f"{name}: failed: {visible(str(exc))}")
        return EXIT_FAILED
    output.say(f"{name}: revoked (serial {stored.meta.serial:x}, reason {args.reason})")
    return EXIT_CHANGED
