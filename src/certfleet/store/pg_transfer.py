"""``certfleet store import`` / ``export``: a state directory into PostgreSQL and back.

Touches the database (certificates, versions, state records, pending keys, accounts and
their ledgers) and the state directory it reads from or writes to. Nothing is merged:
import refuses a certificate or account the database has already, export a state
directory that holds certificates already. What the file store keeps and the database
keeps are the same records (meta.json, state.json, orders.json and account.json byte for
byte, the PEM files, the keys sealed on the way in and unsealed on the way out), so
export after import gives back the same tree, every version kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import fsutil
from ..errors import StoreError
from .files import Store
from .meta import PEM_FILES, VersionMeta
from .pg_conn import Db, Tx
from .sealed import seal, unseal

COLUMNS = ("cert", "chain", "fullchain", "privkey")


def import_tree(db: Db, key: bytes, root: Path) -> tuple[int, int]:
    """Every certificate and account of the state directory ``root``; (certificates,
    accounts) imported."""
    source = Store(root, create=False)
    names = source.all_names()
    for name in names:
        with db.transaction() as tx:
            if tx.one("SELECT 1 FROM certfleet_certs WHERE name = :n", n=name):
                raise StoreError(f"{db.where}: {name} is there already; nothing of it "
                                 "imported (import does not merge)")
            _import_cert(tx, key, source, name)
    accounts = sorted(p for p in (root / "accounts").glob("*") if p.is_dir())
    for folder in accounts:
        with db.transaction() as tx:
            _import_account(tx, key, folder)
    return len(names), len(accounts)


def _import_cert(tx: Tx, key: bytes, source: Store, name: str) -> None:
    base = source.root / "certs" / name
    state = _text(base / "state.json") or "{}"
    current = source.current(name)
    pending = _bytes(base / "pending" / "privkey.pem")
    tx.run("INSERT INTO certfleet_certs (name, state, active, pending_key) "
           "VALUES (:n, :s, :a, :p)", n=name, s=state,
           a=current.meta.version if current else None,
           p=None if pending is None else seal(key, pending, f"pending/{name}"))
    folder = base / "versions"
    numbers = sorted(int(v) for v in os.listdir(folder) if v.isdigit()) \
        if folder.is_dir() else []
    for number in numbers:
        where = folder / str(number)
        meta_text = _text(where / "meta.json")
        if meta_text is None:
            raise StoreError(f"{where}: no meta.json")
        VersionMeta.from_json(json.loads(meta_text), str(where / "meta.json"))  # checked
        files = {pem: _bytes(where / pem) for pem in PEM_FILES}
        missing = [pem for pem in PEM_FILES[:3] if files[pem] is None]
        if missing:
            raise StoreError(f"{where}: no {missing[0]}")
        privkey = files["privkey.pem"]
        tx.run("INSERT INTO certfleet_versions (name, version, meta, cert, chain, fullchain, "
               "privkey) VALUES (:n, :v, :m, :c, :ch, :f, :k)", n=name, v=number,
               m=meta_text, c=files["cert.pem"], ch=files["chain.pem"],
               f=files["fullchain.pem"],
               k=None if privkey is None else seal(key, privkey, f"cert/{name}/{number}"))


def _import_account(tx: Tx, key: bytes, folder: Path) -> None:
    ident = folder.name
    if tx.one("SELECT 1 FROM certfleet_accounts WHERE ca = :c", c=ident):
        raise StoreError(f"account {ident} is in the database already; not imported")
    account_key = _bytes(folder / "account.key")
    tx.run("INSERT INTO certfleet_accounts (ca, record, account_key, ledger) "
           "VALUES (:c, :r, :k, :l)", c=ident, r=_text(folder / "account.json"),
           k=None if account_key is None else seal(key, account_key, f"account/{ident}"),
           l=_text(folder / "orders.json"))


def export_tree(db: Db, key: bytes, root: Path) -> tuple[int, int]:
    """Everything in the database into the state directory ``root`` (made if missing);
    (certificates, accounts) exported."""
    target = Store(root)
    if target.all_names():
        raise StoreError(f"{root}: holds certificates already; export writes only into an "
                         "empty state directory")
    names = [row[0] for row in db.run("SELECT name FROM certfleet_certs ORDER BY name")]
    for name in names:
        _export_cert(db, key, target, name)
    rows = db.run("SELECT ca, record, account_key, ledger FROM certfleet_accounts ORDER BY ca")
    for ident, record, account_key, ledger in rows:
        folder = fsutil.secure_dir(root / "accounts" / ident)
        if account_key is not None:
            fsutil.write_atomic(folder / "account.key",
                                unseal(key, bytes(account_key), f"account/{ident}"), mode=0o600)
        for file_name, text in (("account.json", record), ("orders.json", ledger)):
            if text is not None:
                fsutil.write_atomic(folder / file_name, text.encode(), mode=0o600)
    return len(names), len(rows)


def _export_cert(db: Db, key: bytes, target: Store, name: str) -> None:
    row = db.run("SELECT state, active, pending_key FROM certfleet_certs WHERE name = :n",
                 n=name)[0]
    state, active, pending = row
    versions = db.run("SELECT version, meta, cert, chain, fullchain, privkey FROM "
                      "certfleet_versions WHERE name = :n ORDER BY version", n=name)
    # The active version last: activating it is what leaves ``current`` pointing there.
    versions.sort(key=lambda v: (v[0] == active, v[0]))
    base = target.cert_dir(name)
    for number, meta_text, *pems in versions:
        files = {pem: bytes(data) for pem, data in zip(PEM_FILES, pems, strict=True)
                 if data is not None}
        if "privkey.pem" in files:
            files["privkey.pem"] = unseal(key, files["privkey.pem"], f"cert/{name}/{number}")
        meta = VersionMeta.from_json(json.loads(meta_text), f"{name} version {number}")
        target.activate(name, files, meta)
        # meta.json exactly as the database has it (activate writes its own rendering)
        fsutil.write_atomic(base / "versions" / str(number) / "meta.json", meta_text.encode(),
                            mode=0o644)
    if not versions:
        target.cert_dir(name)
    if state != "{}":  # the column's default: the state directory had no record
        fsutil.write_atomic(base / "state.json", state.encode(), mode=0o600)
    if pending is not None:
        target.save_pending_key(name, unseal(key, bytes(pending), f"pending/{name}"))


def _bytes(path: Path) -> bytes | None:
    try:
        return fsutil.read_small(path)
    except FileNotFoundError:
        return None


def _text(path: Path) -> str | None:
    data = _bytes(path)
    return None if data is None else data.decode()
