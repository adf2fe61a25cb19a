"""``certfleet store migrate|import|export|new-key``: the shared PostgreSQL store.

Touches the database named by ``[store]`` and, for import/export, a state directory;
``new-key`` writes one new key file. Every command but ``new-key`` needs
``[store] backend = "postgresql"`` (docs/shared-store.md).
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.sources import job_from
from ..errors import ConfigError, StoreError
from ..report import EXIT_CHANGED, EXIT_NOTHING
from ..spec import StoreSettings
from .output import say

if TYPE_CHECKING:
    from ..store.pg_conn import Db


def store(args: argparse.Namespace) -> int:
    if args.action == "new-key":
        return _new_key(args.path)
    job = job_from(vars(args), need_domains=False)
    settings = job.store
    if not settings.shared:
        raise ConfigError("certfleet store: [store] backend = \"postgresql\" is not set in "
                          "certfleet.toml (the file store needs no migration)")
    from ..store import pg_schema
    from ..store.pg_conn import Db

    db = Db(settings)
    try:
        if args.action == "migrate":
            applied = pg_schema.migrate(db)
            for line in applied:
                say(f"applied migration {line}")
            say(f"{db.where}: schema version {pg_schema.LATEST}"
                + ("" if applied else " (up to date)"))
            return EXIT_CHANGED if applied else EXIT_NOTHING
        pg_schema.check(db)
        return _transfer(args, db, settings, job.state_dir)
    finally:
        db.close()


def _transfer(args: argparse.Namespace, db: Db, settings: StoreSettings,
              state_dir: Path) -> int:
    from ..store import pg_transfer

    assert settings.key is not None
    folder = Path(args.path) if args.path else state_dir
    if args.action == "import":
        certs, accounts = pg_transfer.import_tree(db, settings.key, folder)
        say(f"imported {certs} certificates and {accounts} accounts from {folder}")
    else:
        certs, accounts = pg_transfer.export_tree(db, settings.key, folder)
        say(f"exported {certs} certificates and {accounts} accounts to {folder}")
    return EXIT_CHANGED if certs or accounts else EXIT_NOTHING


def _new_key(path: str | None) -> int:
    """A new key for sealing private keys: 64 hex digits, 0600, never over an old one."""
    if not path:
        raise ConfigError("certfleet store new-key FILE: name the file to create")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise StoreError(f"{path}: exists already; not replaced (every Work host needs the "
                         "same key: copy it, do not make a new one)") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot create: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    say(f"{path}: new store key written (0600); copy it to every Work host")
    return EXIT_CHANGED
