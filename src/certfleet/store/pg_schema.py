"""The shared store's schema, versioned: ``certfleet store migrate`` applies what is missing.

Touches the database's certfleet tables only. Each migration runs in its own transaction
under an advisory lock (two hosts migrating at once apply each step once), and records its
number in ``certfleet_schema``. A database whose schema is newer than this certfleet knows
is refused, by ``migrate`` and by every run: an older certfleet must not write rows it
does not understand.
"""

from __future__ import annotations

from ..errors import StoreError
from .pg_conn import Db, Tx

MIGRATE_LOCK = 0x63657274  # advisory lock key ("cert")

# What is stored (docs/shared-store.md): text columns hold JSON exactly as the file store
# writes it, so export gives back the same records; key columns hold AES-GCM ciphertext.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "certificates, state records, leases, accounts, http-01 tokens", (
        "CREATE SEQUENCE certfleet_fencing",
        """CREATE TABLE certfleet_leases (
               name text PRIMARY KEY,
               holder text NOT NULL,
               token bigint NOT NULL,
               expires timestamptz NOT NULL)""",
        """CREATE TABLE certfleet_certs (
               name text PRIMARY KEY,
               state text NOT NULL DEFAULT '{}',
               active integer,
               pending_key bytea,
               changed timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE certfleet_versions (
               name text NOT NULL REFERENCES certfleet_certs (name),
               version integer NOT NULL,
               meta text NOT NULL,
               cert bytea NOT NULL,
               chain bytea NOT NULL,
               fullchain bytea NOT NULL,
               privkey bytea,
               PRIMARY KEY (name, version))""",
        """CREATE TABLE certfleet_accounts (
               ca text PRIMARY KEY,
               record text,
               account_key bytea,
               ledger text)""",
        """CREATE TABLE certfleet_tokens (
               token text PRIMARY KEY,
               name text NOT NULL,
               key_authorization text NOT NULL,
               created timestamptz NOT NULL DEFAULT now())""",
    )),
    # What a run weighs of each certificate (``standing.Standing`` as JSON), kept with every
    # write: a run over many certificates reads this column alone (the file store's index).
    (2, "each certificate's standing, for planning without reading every record", (
        "ALTER TABLE certfleet_certs ADD COLUMN standing text",
    )),
)
LATEST = MIGRATIONS[-1][0]


def current_version(tx: Tx) -> int:
    """The schema's version; 0 for a database certfleet never touched."""
    exists = tx.one("SELECT to_regclass('certfleet_schema') IS NOT NULL")
    if not exists or not exists[0]:
        return 0
    row = tx.one("SELECT coalesce(max(version), 0) FROM certfleet_schema")
    return int(row[0]) if row else 0


def migrate(db: Db) -> list[str]:
    """Apply every missing migration; what was applied (empty when up to date)."""
    applied: list[str] = []
    with db.transaction() as tx:
        tx.run("SELECT pg_advisory_xact_lock(:k)", k=MIGRATE_LOCK)
        tx.run("""CREATE TABLE IF NOT EXISTS certfleet_schema (
                      version integer PRIMARY KEY,
                      description text NOT NULL,
                      applied_at timestamptz NOT NULL DEFAULT now())""")
        have = current_version(tx)
        _refuse_newer(db, have)
        for number, description, statements in MIGRATIONS:
            if number <= have:
                continue
            for statement in statements:
                tx.run(statement)
            tx.run("INSERT INTO certfleet_schema (version, description) VALUES (:v, :d)",
                   v=number, d=description)
            applied.append(f"{number}: {description}")
    return applied


def check(db: Db) -> None:
    """Refuse a database whose schema is missing, older or newer than this certfleet's."""
    with db.transaction() as tx:
        have = current_version(tx)
    _refuse_newer(db, have)
    if have < LATEST:
        raise StoreError(f"{db.where}: schema version {have}, this certfleet needs {LATEST}: "
                         "run `certfleet store migrate` first")


def _refuse_newer(db: Db, have: int) -> None:
    if have > LATEST:
        raise StoreError(f"{db.where}: schema version {have} is newer than this certfleet "
                         f"knows ({LATEST}); upgrade certfleet on this host, refusing to "
                         "touch it")
