"""Carry an import out, or say what it would do. Wires ``ca``, ``registration``,
``account_key`` and ``store``; writes only the new certfleet.toml and domains file itself.

In this order, so that a refusal comes before anything is written:

1. the new certfleet.toml and domains file must not exist (never written over);
2. an account key the state directory already has for a CA must be the same key;
3. each account is looked up at its CA with ``onlyReturnExisting`` (RFC 8555 §7.3.1):
   an account the CA does not know stops the whole import, with nothing written;
4. a certificate the state directory already has anything of is refused (never
   replaced); the others become version 1, each under its own lock;
5. the account key is installed and its record written as certfleet writes it; then the
   two files; then the written configuration is loaded back, as every command will.

With ``dry_run`` steps 1 to 4 are only checked and said; nothing is written anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .. import ca, fsutil
from ..account_key import AccountKey
from ..config.sources import job_from
from ..errors import CertfleetError, ConfigError, safe_text
from ..registration import existing_account, find_or_register
from ..report import EXIT_CHANGED, EXIT_FAILED, EXIT_NOTHING, certificates
from ..spec import JobConfig
from ..state import CertState
from ..store import CertStore, Store
from . import render, source
from .found import FoundAccount, FoundCert, Migration

Say = Callable[[str], None]


async def carry(migration: Migration, job: JobConfig, config: Path, domains: Path, *,
                dry_run: bool, say: Say) -> int:
    """Import ``migration`` into ``job``'s state directory and write ``config`` and
    ``domains``; returns the exit code (0 imported, 1 something refused, 2 nothing)."""
    for path in (config, domains):
        if os.path.lexists(path):
            raise ConfigError(f"{source.shown(path)}: exists; certfleet import writes a new "
                              "file and never over one (choose another --to-config or "
                              "--to-domains)")
    store = Store(job.state_dir, create=False) if job.state_dir.exists() else None
    for account in migration.accounts:
        _same_key_or_none(store, account)
    for account in migration.accounts:
        await _look_up(job, account, migration, say)
    todo = [cert for cert in migration.certs if not _taken(store, cert, migration)]
    if dry_run:
        for cert in todo:
            say(f"{cert.name}: would be imported as version 1 ({cert.describe()}) from "
                f"{cert.origin}")
        _report(migration, say)
        for account in migration.accounts:
            say(f"account: {account.origin}: would be imported as the account key for "
                f"{safe_text(account.directory)}")
        say(f"would write {source.shown(config)} and {source.shown(domains)}; nothing was "
            "written (--dry-run)")
        return _summary(migration, len(todo), say, would=True)
    store = Store(job.state_dir)
    for account in migration.accounts:
        await _install(job, store, account, say)
    imported = sum([_activate(store, cert, migration, say) for cert in todo])
    _report(migration, say)
    _write(domains, render.domains_text(migration))
    _write(config, render.config_text(migration, config, domains).encode())
    say(f"wrote {source.shown(config)} and {source.shown(domains)}")
    _load_back(config, say)
    return _summary(migration, imported, say, would=False)


def _same_key_or_none(store: CertStore | None, account: FoundAccount) -> None:
    if store is None:
        return
    path = store.account_key_path(account.directory)
    have = AccountKey.load(path) if os.path.lexists(path) else None
    if have is not None and have.thumbprint != account.key.thumbprint:
        raise ConfigError(f"{source.shown(path)}: the state directory has another account key "
                          f"for {safe_text(account.directory)}; it is not replaced, and "
                          "nothing was imported")


async def _look_up(job: JobConfig, account: FoundAccount, migration: Migration,
                   say: Say) -> None:
    """§7.3.1: the CA must know the account already; an import registers nothing."""
    async with ca.client(job, account.directory) as client:
        found = await existing_account(client, account.key)
    if found is None:
        raise ConfigError(f"{account.origin}: {safe_text(account.directory)} knows no account "
                          f"for this key (onlyReturnExisting); nothing was imported. Is it "
                          "the right key and the right CA (--directory)?")
    url, resource = found
    say(f"account: {account.origin}: {account.key.key_type.value} key of {safe_text(url)} "
        f"at {safe_text(account.directory)}: found")
    if account.url and account.url != url:
        migration.notes.append(f"account: the other client recorded {safe_text(account.url)}; "
                               f"the CA says {safe_text(url)} (the CA's is kept)")
    if account.directory == migration.settings.directory and not migration.settings.contact:
        migration.settings.contact = [c.removeprefix("mailto:") for c in resource.contact
                                      if c.startswith("mailto:") and c.isprintable()][:8]


def _taken(store: CertStore | None, cert: FoundCert, migration: Migration) -> bool:
    if store is None or not store.has_cert(cert.name):
        return False
    migration.refuse(cert.name, f"{source.shown(store.root)} has a certificate {cert.name} "
                     "already; it is not replaced")
    return True


async def _install(job: JobConfig, store: CertStore, account: FoundAccount, say: Say) -> None:
    """The key as this CA's account key, and its record as a lookup writes it."""
    path = store.account_key_path(account.directory)
    there = os.path.lexists(path)
    if not there:
        account.key.install(path)
    async with ca.client(job, account.directory) as client:
        await find_or_register(client, store, account.key.key_type, (), register=False)
    say(f"account: {'already' if there else 'imported as'} {source.shown(path)}")


def _activate(store: CertStore, cert: FoundCert, migration: Migration, say: Say) -> bool:
    name = cert.name
    if not store.try_lock(name):
        migration.refuse(name, "a certfleet run holds its lock; not imported")
        return False
    try:
        if store.versions(name) or store.current(name) is not None:
            migration.refuse(name, f"{source.shown(store.root)} has a certificate {name} "
                             "already; it is not replaced")
            return False
        store.activate(name, cert.files, cert.meta())
        store.update_state(name, CertState.without_order)
    except CertfleetError as exc:
        migration.refuse(name, str(exc))
        return False
    finally:
        store.unlock(name)
    say(f"{name}: imported as version 1 ({cert.describe()}) from {cert.origin}")
    return True


def _report(migration: Migration, say: Say) -> None:
    for line in [*migration.refused, *migration.notes,
                 *render.settings_lines(migration.settings)]:
        say(line)


def _write(path: Path, data: bytes) -> None:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o755, parents=True)
    try:
        fsutil.write_exclusive(path, data, 0o644)
    except FileExistsError:
        raise ConfigError(f"{source.shown(path)}: appeared meanwhile; not written over"
                          ) from None


def _load_back(config: Path, say: Say) -> None:
    """Read the new configuration as every command will; say so if it does not load."""
    try:
        job_from({"config": str(config)}, {})
    except CertfleetError as exc:
        say(f"{source.shown(config)}: does not load yet: {safe_text(str(exc), 2000)}")


def _summary(migration: Migration, imported: int, say: Say, *, would: bool) -> int:
    refused = len(migration.refused)
    verb = "would be imported" if would else "imported"
    say(f"{certificates(imported + refused)}: {imported} {verb}, {refused} not imported")
    if refused:
        return EXIT_FAILED
    return EXIT_CHANGED if imported else EXIT_NOTHING
