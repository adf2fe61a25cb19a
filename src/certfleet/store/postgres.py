"""The shared store: certificates, state, accounts and tokens in PostgreSQL, for many hosts.

Touches the database (through ``Db`` and ``Leases``) and, for what stays on each Work
host, the local state directory (through a ``files.Store`` it holds, ``local``): the run
markers, the fleet lock, the clock record, the per-certificate flock (one host's own
processes queue there before they claim a lease) and the account key file the ACME code
signs with (a copy of the shared one). Every write of a certificate's rows happens in a
transaction fenced by its lease (``pg_lease``); private keys are sealed (``sealed``)
before they are sent. It implements ``CertStore`` method by method, nothing inherited:
the fleet runner, ``status``, ``deploy`` and ``serve`` are written against that
interface and do not know which store they use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fsutil
from ..errors import ClaimedElsewhere, StoreError
from ..keytypes import KeyType
from ..names import storage_name
from ..ratelimits import Ledger, ledger_from_json, ledger_to_json
from ..spec import StoreSettings
from ..standing import from_json as standing_from_json
from ..standing import of as standing_of
from ..state import CertState, StateDamaged
from . import pg_schema
from .files import STATE_LIMIT, Store, account_dir
from .index import NO_STATE, Snapshot
from .locks import LOCK_WAIT
from .meta import StoredCert, VersionMeta, ca_id
from .pg_conn import Db, Tx
from .pg_lease import Leases
from .pg_tokens import DbTokens
from .sealed import seal, unseal
from .versions import KEEP_VERSIONS

if TYPE_CHECKING:
    from ..account_key import AccountKey

CLAIM_POLL = 0.5
PEM_COLUMNS = {"cert.pem": "cert", "chain.pem": "chain", "fullchain.pem": "fullchain",
               "privkey.pem": "privkey"}


class PgStore:
    """The shared store of several Work hosts; ``state_dir`` holds this host's local part."""

    shared = True
    tokens: DbTokens | None

    def __init__(self, root: Path, settings: StoreSettings, *, create: bool = True,
                 account_key_type: KeyType = KeyType.EC256) -> None:
        self.root, self.writable = root, create
        # `status` on a host that never ran has no local part: all it reads is in the database
        self._local = Store(root, create=create) if create or root.is_dir() else None
        assert settings.key is not None
        self.settings, self._key = settings, settings.key
        self.account_key_type = account_key_type
        self.db = Db(settings)
        pg_schema.check(self.db)
        self.leases = Leases(self.db, Db(settings), settings.holder or "certfleet",
                             settings.lease_seconds)
        self.tokens = DbTokens(self.db)

    def close(self) -> None:
        self.leases.close()
        self.db.close()

    @property
    def local(self) -> Store:
        """This host's state directory."""
        if self._local is None:
            raise StoreError(f"state directory {self.root} does not exist (this Work host "
                             "has not run yet)")
        return self._local

    # -- runs: this host's own ---------------------------------------------------------------

    def running(self) -> AbstractContextManager[bool]:
        return self.local.running()

    def whole_fleet(self) -> AbstractContextManager[None]:
        return self.local.whole_fleet()

    def killed_runs(self) -> list[Path]:
        return self.local.killed_runs()

    def sweep(self) -> None:
        """This host's temporary files: nothing half-written is ever left in the database."""
        self.local.sweep()

    def challenge_dir(self) -> Path:
        return self.local.challenge_dir()

    def read_clock(self) -> dict[str, Any]:
        return self.local.read_clock() if self._local is not None else {}

    def write_clock(self, record: dict[str, Any]) -> None:
        self.local.write_clock(record)

    # -- leases (the locks of the file store, for every host) --------------------------------

    def try_lock(self, name: str) -> bool:
        if not self.local.try_lock(name):
            return False
        if self.leases.claim(name) is None:
            self.local.unlock(name)
            return False
        return True

    def unlock(self, name: str) -> None:
        try:
            self.leases.release(name)
        finally:
            self.local.unlock(name)

    @contextlib.asynccontextmanager
    async def locked(self, name: str, wait: float = LOCK_WAIT, *,
                     skip_if_claimed: bool = False) -> AsyncIterator[None]:
        """This host's lock, then the certificate's lease; ``skip_if_claimed``: raise
        ``ClaimedElsewhere`` at once if another host holds the lease, rather than wait."""
        loop = asyncio.get_running_loop()
        async with self.local.locked(name, wait):
            deadline = loop.time() + (0 if skip_if_claimed else wait)
            while await asyncio.to_thread(self.leases.claim, name) is None:
                if loop.time() >= deadline:
                    holder = await asyncio.to_thread(self.leases.holder_of, name)
                    raise ClaimedElsewhere(f"claimed by another Work host ({holder})")
                await asyncio.sleep(CLAIM_POLL)
            try:
                yield
            finally:
                await asyncio.to_thread(self.leases.release, name)

    def _fenced(self, name: str) -> AbstractContextManager[Tx]:
        return self.leases.fenced(name)

    # -- versions ----------------------------------------------------------------------------

    def current(self, name: str) -> StoredCert | None:
        row = self.db.run("""SELECT v.meta FROM certfleet_certs c JOIN certfleet_versions v
                             ON v.name = c.name AND v.version = c.active WHERE c.name = :n""",
                          n=name)
        return None if not row else self._stored(name, row[0][0])

    def _stored(self, name: str, meta_text: str) -> StoredCert:
        where = f"{self.db.where}: {name}"
        try:
            data = json.loads(meta_text)
        except ValueError as exc:
            raise StoreError(f"{where}: damaged metadata: {exc}") from None
        return StoredCert(name, self.root / "certs" / storage_name(name),
                          VersionMeta.from_json(data, where))

    def snapshot(self, names: Sequence[str]) -> dict[str, Snapshot]:
        """Every certificate's standing in one query (the records themselves are read
        when first asked for); those without one (imported, or written before schema
        version 2) are read whole in one more query. A damaged certificate is reported
        damaged and the others go on."""
        # One JSON object from the server, parsed in one call: for 10,000 certificates
        # far quicker than 10,000 rows through the driver.
        rows = self.db.run("SELECT coalesce(json_object_agg(name, standing::json), '{}') "
                           "FROM certfleet_certs WHERE name = ANY(CAST(:n AS text[]))",
                           n=list(names))
        found = json.loads(rows[0][0]) if isinstance(rows[0][0], str) else rows[0][0]
        result: dict[str, Snapshot] = {}
        whole: list[str] = []
        for name in names:
            if name not in found:
                result[name] = Snapshot(None, CertState())
            elif (standing := standing_from_json(found[name])) is not None:
                result[name] = Snapshot(None, NO_STATE, None, standing,
                                        (self._snapshot_one, name))
            else:
                whole.append(name)
        return result | (self._records(whole) if whole else {})

    def _snapshot_one(self, name: str) -> Snapshot:
        return self._records([name])[name]

    def _records(self, names: list[str]) -> dict[str, Snapshot]:
        rows = self.db.run("""SELECT c.name, c.state, v.meta FROM certfleet_certs c
                              LEFT JOIN certfleet_versions v
                              ON v.name = c.name AND v.version = c.active
                              WHERE c.name = ANY(CAST(:n AS text[]))""", n=names)
        found = {row[0]: (row[1], row[2]) for row in rows}
        result: dict[str, Snapshot] = {}
        for name in names:
            if name not in found:
                result[name] = Snapshot(None, CertState())
                continue
            state_text, meta_text = found[name]
            try:
                meta = None if meta_text is None else self._stored(name, meta_text).meta
                result[name] = Snapshot(meta, self._state(name, state_text))
            except StoreError as exc:
                result[name] = Snapshot(None, CertState(), str(exc))
        return result

    def has_cert(self, name: str) -> bool:
        return bool(self.db.run("SELECT 1 FROM certfleet_certs WHERE name = :n", n=name))

    def all_names(self) -> list[str]:
        return [row[0] for row in self.db.run("SELECT name FROM certfleet_certs ORDER BY name")]

    def read_file(self, stored: StoredCert, pem: str) -> bytes:
        column = PEM_COLUMNS[pem]
        row = self.db.run(f"SELECT {column} FROM certfleet_versions "  # noqa: S608 - fixed names
                          "WHERE name = :n AND version = :v", n=stored.name,
                          v=stored.meta.version)
        if not row or row[0][0] is None:
            raise StoreError(f"{self.db.where}: {stored.name} version {stored.meta.version}: "
                             f"no {pem}")
        data = bytes(row[0][0])
        if pem == "privkey.pem":
            return unseal(self._key, data, f"cert/{stored.name}/{stored.meta.version}")
        return data

    def preflight(self, name: str) -> None:
        """Before ordering: the database answers and this host still holds the lease."""
        with self._fenced(name):
            pass

    def activate(self, name: str, files: dict[str, bytes], meta: VersionMeta) -> StoredCert:
        """The new version and its activation in one fenced transaction: all or nothing."""
        try:
            key = files.get("privkey.pem")
            sealed = None if key is None else seal(self._key, key,
                                                   f"cert/{name}/{meta.version}")
            with self._fenced(name) as tx:
                _ensure_cert(tx, name)
                tx.run("""INSERT INTO certfleet_versions
                          (name, version, meta, cert, chain, fullchain, privkey)
                          VALUES (:n, :v, :m, :c, :ch, :f, :k)""",
                       n=name, v=meta.version, m=_dump(meta.to_json()),
                       c=files["cert.pem"], ch=files["chain.pem"], f=files["fullchain.pem"],
                       k=sealed)
                row = tx.one("SELECT state FROM certfleet_certs WHERE name = :n FOR UPDATE",
                             n=name)
                standing = _standing(meta, self._state(name, row[0] if row else "{}"))
                tx.run("""UPDATE certfleet_certs SET active = :v, pending_key = NULL,
                          standing = :st, changed = now() WHERE name = :n""",
                       n=name, v=meta.version, st=standing)
                tx.run("DELETE FROM certfleet_versions WHERE name = :n AND version <= :old",
                       n=name, old=meta.version - KEEP_VERSIONS)
        except KeyError as exc:
            raise StoreError(f"{name}: incomplete version: no {exc}") from None
        return StoredCert(name, self.root / "certs" / storage_name(name), meta)

    def finish_activation(self, name: str, order_url: str) -> StoredCert | None:
        """Activation is one transaction here: nothing is ever half done. The active
        version is returned if it is that order's (its order record is then cleared)."""
        current = self.current(name)
        return current if current is not None and current.meta.order_url == order_url \
            else None

    def next_version(self, name: str) -> int:
        return max(self.versions(name), default=0) + 1

    def versions(self, name: str) -> list[int]:
        return [row[0] for row in self.db.run(
            "SELECT version FROM certfleet_versions WHERE name = :n ORDER BY version", n=name)]

    def prune(self, name: str, keep: int = KEEP_VERSIONS) -> None:
        return None  # done by ``activate``, in its transaction

    # -- the pending key of an order in flight -------------------------------------------------

    def save_pending_key(self, name: str, key_pem: bytes) -> None:
        sealed = seal(self._key, key_pem, f"pending/{name}")
        with self._fenced(name) as tx:
            _ensure_cert(tx, name)
            tx.run("UPDATE certfleet_certs SET pending_key = :k WHERE name = :n",
                   n=name, k=sealed)

    def load_pending_key(self, name: str) -> bytes | None:
        row = self.db.run("SELECT pending_key FROM certfleet_certs WHERE name = :n", n=name)
        if not row or row[0][0] is None:
            return None
        return unseal(self._key, bytes(row[0][0]), f"pending/{name}")

    def clear_pending(self, name: str) -> None:
        with self._fenced(name) as tx:
            tx.run("UPDATE certfleet_certs SET pending_key = NULL WHERE name = :n", n=name)

    # -- state records -------------------------------------------------------------------------

    def load_state(self, name: str) -> CertState:
        row = self.db.run("SELECT state FROM certfleet_certs WHERE name = :n", n=name)
        return CertState() if not row else self._state(name, row[0][0])

    def _state(self, name: str, text: str) -> CertState:
        try:
            return CertState.from_json(json.loads(text))
        except (ValueError, StateDamaged) as exc:
            raise StoreError(f"{self.db.where}: {name}: damaged state record: {exc}") from None

    def update_state(self, name: str, change: Callable[[CertState], CertState]) -> CertState:
        """One transition, read and written in one fenced transaction."""
        with self._fenced(name) as tx:
            _ensure_cert(tx, name)
            row = tx.one("SELECT state FROM certfleet_certs WHERE name = :n FOR UPDATE",
                         n=name)
            state = change(self._state(name, row[0] if row else "{}"))
            data = _dump(state.to_json())
            if len(data) > STATE_LIMIT:
                raise StoreError(f"{name}: state record would exceed {STATE_LIMIT} bytes")
            active = tx.one("""SELECT v.meta FROM certfleet_certs c JOIN certfleet_versions v
                               ON v.name = c.name AND v.version = c.active
                               WHERE c.name = :n""", n=name)
            meta = None if active is None else self._stored(name, active[0]).meta
            tx.run("""UPDATE certfleet_certs SET state = :s, standing = :st, changed = now()
                      WHERE name = :n""", n=name, s=data, st=_standing(meta, state))
        return state

    # -- accounts: one per CA, shared ---------------------------------------------------------

    def account_key_path(self, directory_url: str) -> Path:
        """The local copy of the shared account key (made and shared by the first host
        that needs one; every host then signs with the same key)."""
        if self._local is None:  # a host that never ran: where its copy will be
            return account_dir(self.root, directory_url) / "account.key"
        path = self.local.account_key_path(directory_url)
        ident = ca_id(directory_url)
        where = f"account/{ident}"
        shared = self._shared_key(directory_url)
        if shared is not None:
            key = shared
        elif self.writable:
            from .. import keytypes

            mine = fsutil.read_small(path) if path.exists() else \
                keytypes.to_pem(keytypes.generate(self.account_key_type))
            won = self.db.run(
                """INSERT INTO certfleet_accounts AS a (ca, account_key) VALUES (:c, :k)
                   ON CONFLICT (ca) DO UPDATE
                   SET account_key = coalesce(a.account_key, excluded.account_key)
                   RETURNING account_key""", c=ident, k=seal(self._key, mine, where))
            key = unseal(self._key, bytes(won[0][0]), where)
        else:
            return path
        with contextlib.suppress(FileNotFoundError):
            if fsutil.read_small(path) == key:
                return path
        if self.writable:
            fsutil.write_atomic(path, key, mode=0o600)
        return path

    def account_key(self, directory_url: str) -> AccountKey | None:
        """The shared key (what every host signs with), or this host's own if none is
        shared yet; reads only."""
        from ..account_key import AccountKey

        shared = self._shared_key(directory_url)
        if shared is None:
            return self.local.account_key(directory_url) if self._local is not None else None
        return AccountKey.from_pem(shared, f"account/{ca_id(directory_url)} (shared store)")

    def _shared_key(self, directory_url: str) -> bytes | None:
        ident = ca_id(directory_url)
        row = self.db.run("SELECT account_key FROM certfleet_accounts WHERE ca = :c", c=ident)
        if not row or row[0][0] is None:
            return None
        return unseal(self._key, bytes(row[0][0]), f"account/{ident}")

    def load_account(self, directory_url: str) -> dict[str, Any] | None:
        row = self.db.run("SELECT record FROM certfleet_accounts WHERE ca = :c",
                          c=ca_id(directory_url))
        return None if not row or row[0][0] is None else json.loads(row[0][0])

    def save_account(self, directory_url: str, record: dict[str, Any]) -> None:
        """The record, and the local key with it when the record is that key's (after a
        key rollover on this host the other hosts get the new key)."""
        from ..account_key import AccountKey

        ident = ca_id(directory_url)
        path = self.local.account_key_path(directory_url)
        local = AccountKey.load(path)
        sealed = None
        if local is not None and record.get("thumbprint") == local.thumbprint:
            sealed = seal(self._key, fsutil.read_small(path), f"account/{ident}")
        self.db.run("""INSERT INTO certfleet_accounts AS a (ca, record, account_key)
                       VALUES (:c, :r, :k) ON CONFLICT (ca) DO UPDATE
                       SET record = excluded.record,
                           account_key = coalesce(excluded.account_key, a.account_key)""",
                    c=ident, r=_dump(record), k=sealed)

    def order_ledger(self, directory_url: str) -> Ledger:
        row = self.db.run("SELECT ledger FROM certfleet_accounts WHERE ca = :c",
                          c=ca_id(directory_url))
        try:
            return ledger_from_json(json.loads(row[0][0])) if row and row[0][0] else Ledger()
        except ValueError:
            return Ledger()

    def change_order_ledger(self, directory_url: str,
                            how: Callable[[Ledger], Ledger]) -> Ledger:
        """One change of the account's ledger, every host's reservations counted."""
        ident = ca_id(directory_url)
        with self.db.transaction() as tx:
            tx.run("INSERT INTO certfleet_accounts (ca) VALUES (:c) ON CONFLICT DO NOTHING",
                   c=ident)
            row = tx.one("SELECT ledger FROM certfleet_accounts WHERE ca = :c FOR UPDATE",
                         c=ident)
            try:
                ledger = ledger_from_json(json.loads(row[0])) if row and row[0] else Ledger()
            except ValueError:
                ledger = Ledger()
            ledger = how(ledger)
            tx.run("UPDATE certfleet_accounts SET ledger = :l WHERE ca = :c", c=ident,
                   l=json.dumps(ledger_to_json(ledger), separators=(",", ":")))
        return ledger


def _standing(meta: VersionMeta | None, state: CertState) -> str:
    return json.dumps(standing_of(meta, state).to_json(), separators=(",", ":"))


def _ensure_cert(tx: Tx, name: str) -> None:
    tx.run("INSERT INTO certfleet_certs (name) VALUES (:n) ON CONFLICT DO NOTHING", n=name)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"

