"""Leases and fencing tokens of the shared store, and import/export, on a real PostgreSQL:
two stores stand for two Work hosts; a lease is made to run out by moving its expiry."""

from __future__ import annotations

import filecmp
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from certfleet.config.job import load_job
from certfleet.errors import LeaseLost, StoreError
from certfleet.state import CertState
from certfleet.store import Store, VersionMeta, open_store, pg_schema
from certfleet.store.pg_conn import Db
from certfleet.store.pg_transfer import export_tree, import_tree
from certfleet.store.postgres import PgStore

from .fleet_helpers import toml_value
from .shared_helpers import store_key, store_section

pytestmark = pytest.mark.integration
NAME = "fence.example.com"


def _job(tmp_path: Path, db: Any, host: str) -> Any:
    folder = tmp_path / host
    folder.mkdir(mode=0o700)
    lines = [f"state_dir = {toml_value(str(folder / 'state'))}", "[store]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in
              store_section(db, store_key(tmp_path), lease_seconds=5, holder=host).items()]
    config = folder / "certfleet.toml"
    config.write_text("\n".join(lines) + "\n")
    return load_job(config)


def _meta(version: int, order: str = "https://ca/order/1") -> VersionMeta:
    return VersionMeta(version=version, names=(NAME,), key_type="ec256", serial=version,
                       not_before="2026-01-01T00:00:00+00:00",
                       not_after="2026-04-01T00:00:00+00:00", issuer="CN=Test",
                       aki="ab", issued_at="2026-01-01T00:00:05+00:00",
                       directory="https://ca/dir", order_url=order)


def _files(tag: str) -> dict[str, bytes]:
    return {"cert.pem": f"cert {tag}\n".encode(), "chain.pem": b"chain\n",
            "fullchain.pem": f"cert {tag}\nchain\n".encode(),
            "privkey.pem": f"-----BEGIN PRIVATE KEY-----\n{tag}\n".encode()}


@pytest.fixture
def hosts(tmp_path: Path, postgres: Any) -> Any:
    jobs = [_job(tmp_path, postgres, h) for h in ("a", "b")]
    pg_schema.migrate(Db(jobs[0].store))
    stores = [open_store(job) for job in jobs]
    yield stores
    for store in stores:
        store.close()


def _expire(db: Any, name: str = NAME) -> None:
    db.psql(f"UPDATE certfleet_leases SET expires = now() - interval '1 second' "
            f"WHERE name = '{name}'")


def test_a_host_that_lost_its_lease_writes_nothing(hosts: Any, postgres: Any) -> None:
    a, b = hosts
    assert isinstance(a, PgStore)
    assert a.try_lock(NAME)
    assert not b.try_lock(NAME)                  # a live lease is not taken
    a.save_pending_key(NAME, b"pending of a")
    a.update_state(NAME, lambda s: s.with_order("https://ca/order/1", [NAME]))
    token_a = a.leases.held[NAME]
    _expire(postgres)                            # a is paused past its lease
    assert b.try_lock(NAME)
    assert b.leases.held[NAME] > token_a         # every claim has a larger token
    # b resumes what a recorded: the order and its pending key
    assert b.load_state(NAME).order is not None
    assert b.load_pending_key(NAME) == b"pending of a"
    for late in (lambda: a.activate(NAME, _files("a"), _meta(1)),
                 lambda: a.update_state(NAME, CertState.without_order),
                 lambda: a.save_pending_key(NAME, b"late"),
                 lambda: a.clear_pending(NAME)):
        with pytest.raises(LeaseLost, match="another Work host claimed it"):
            late()
    b.activate(NAME, _files("b"), _meta(1))
    b.update_state(NAME, CertState.without_order)
    b.unlock(NAME)
    stored = a.current(NAME)
    assert stored is not None
    assert a.read_file(stored, "cert.pem") == b"cert b\n"
    assert a.read_file(stored, "privkey.pem").endswith(b"\nb\n")  # unsealed by any host
    assert a.load_pending_key(NAME) is None
    assert postgres.psql("SELECT count(*) FROM certfleet_versions").strip() == "1"
    a.unlock(NAME)   # releasing a lost lease leaves the newer holder's row alone
    assert postgres.psql("SELECT holder FROM certfleet_leases").strip().startswith("b/")


def test_writes_without_a_lease_and_with_another_key_are_refused(
        hosts: Any, postgres: Any, tmp_path: Path) -> None:
    a, _ = hosts
    with pytest.raises(StoreError, match="without holding its lease"):
        a.update_state(NAME, CertState.without_order)
    assert a.try_lock(NAME)
    a.activate(NAME, _files("a"), _meta(1))
    a.unlock(NAME)
    other = replace(a.settings, key=bytes(32))
    stranger = PgStore(tmp_path / "c", other)
    try:
        stored = stranger.current(NAME)
        assert stored is not None
        with pytest.raises(StoreError, match="cannot decrypt"):
            stranger.read_file(stored, "privkey.pem")
    finally:
        stranger.close()
    row = postgres.psql("SELECT encode(privkey, 'escape') FROM certfleet_versions")
    assert "BEGIN PRIVATE KEY" not in row


def _file_store(root: Path) -> Store:
    store = Store(root)
    for name, versions in (("x.example.com", 3), ("y.example.com", 1)):
        assert store.try_lock(name)
        for v in range(1, versions + 1):
            meta = replace(_meta(v), names=(name,))
            store.activate(name, _files(f"{name}-{v}"), meta)
        store.update_state(name, lambda s, n=name: s.with_order("https://ca/order/9", [n]))
        store.unlock(name)
    store.save_pending_key("y.example.com", b"pending y\n")
    store.save_account("https://ca/dir", {"url": "https://ca/acct/1", "thumbprint": "t"})
    store.account_key_path("https://ca/dir").write_bytes(b"account key\n")
    os.chmod(store.account_key_path("https://ca/dir"), 0o600)
    store.change_order_ledger("https://ca/dir", lambda ledger: ledger)
    return store


def _same_trees(left: Path, right: Path) -> list[str]:
    """Paths whose content or link target differ (run files and caches aside)."""
    skip = {"index.json", "lock", "runs", "fleet.lock", "orders.lock", "challenges"}
    diff: list[str] = []
    for folder, dirs, files in os.walk(left):
        dirs[:] = [d for d in dirs if d not in skip]
        for entry in [*dirs, *files]:
            if entry in skip:
                continue
            a = Path(folder) / entry
            b = right / a.relative_to(left)
            if a.is_symlink() or b.is_symlink():
                if not (a.is_symlink() and b.is_symlink()
                        and os.readlink(a) == os.readlink(b)):
                    diff.append(str(a.relative_to(left)))
            elif (a.is_file() and not (b.is_file() and filecmp.cmp(a, b, shallow=False))) \
                    or (a.is_dir() and not b.is_dir()):
                diff.append(str(a.relative_to(left)))
    return diff


def test_import_then_export_gives_back_the_same_tree(hosts: Any, tmp_path: Path) -> None:
    a, _ = hosts
    source = _file_store(tmp_path / "files")
    assert import_tree(a.db, a.settings.key, source.root) == (2, 1)
    with pytest.raises(StoreError, match="does not merge"):
        import_tree(a.db, a.settings.key, source.root)
    assert a.current("x.example.com").meta.version == 3
    assert a.load_state("y.example.com").order is not None
    assert export_tree(a.db, a.settings.key, tmp_path / "back") == (2, 1)
    assert _same_trees(source.root, tmp_path / "back") == []
    assert _same_trees(tmp_path / "back", source.root) == []
    assert (tmp_path / "back" / "certs" / "x.example.com" / "versions" / "1").is_dir()


def test_a_token_presented_again_by_another_host_outlives_the_first_cleanup(
        hosts: Any) -> None:
    """Host 1 presents a challenge's token, then host 2 presents the same (it took the
    order over): host 1's late clean-up leaves host 2's response for the CA to fetch."""
    first, second = hosts
    token = "tok" + "A" * 40
    mine = first.tokens.present(NAME, token, f"{token}.one")
    theirs = second.tokens.present(NAME, token, f"{token}.two")
    first.tokens.cleanup(token, mine)
    assert second.tokens.read(token) == (NAME, f"{token}.two")
    second.tokens.cleanup(token, theirs)
    assert first.tokens.read(token) is None
