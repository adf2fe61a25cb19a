"""The shared PostgreSQL store on a real cluster (tools/pg_lab.py) and Pebble: schema
migrations, one host end to end, fencing tokens, import/export."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from certfleet.store.pg_schema import LATEST

from .fleet_helpers import orders_seen
from .shared_helpers import Host, Serve

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(pebble_lab_factory: Any) -> Any:
    return pebble_lab_factory()


def _domains(tmp_path: Path, names: list[str], target: Path | None = None) -> Path:
    path = tmp_path / "domains.txt"
    suffix = f"|{target}" if target else ""
    path.write_text("".join(f"{n}{suffix}\n" for n in names))
    return path


def test_migrate_is_idempotent_and_refuses_a_newer_schema(lab: Any, postgres: Any,
                                                         tmp_path: Path) -> None:
    host = Host(tmp_path, "w1", lab, postgres, _domains(tmp_path, ["m.example.com"]))
    rc, out = host.cli("status")
    assert rc == 1, out
    assert "run `certfleet store migrate` first" in out, out
    rc, out = host.cli("store", "migrate")
    assert rc == 0, out
    assert "applied migration 1:" in out, out
    assert "applied migration 2:" in out, out
    rc, out = host.cli("store", "migrate")
    assert rc == 2, out
    assert "(up to date)" in out, out
    assert postgres.psql("SELECT count(*) FROM certfleet_schema").strip() == str(LATEST)
    postgres.psql("INSERT INTO certfleet_schema VALUES (99, 'from the future')")
    for argv in (("store", "migrate"), ("status",)):
        rc, out = host.cli(*argv)
        assert rc == 1, out
        assert "schema version 99 is newer" in out, out


def test_one_host_issues_deploys_and_serves_from_the_database(lab: Any, postgres: Any,
                                                             tmp_path: Path) -> None:
    names = [f"one{i}.example.com" for i in range(3)]
    target = tmp_path / "target"
    target.mkdir()
    host = Host(tmp_path, "w1", lab, postgres, _domains(tmp_path, names, target))
    assert host.cli("store", "migrate")[0] == 0
    with Serve(host, lab.http_port):
        rc, out = host.cli("run")
    assert rc == 0, out
    assert orders_seen(lab) == 3
    for name in names:
        assert f"{name}: issued" in out
        key = (target / name / "privkey.pem").read_bytes()
        assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert (target / name / "fullchain.pem").read_bytes().startswith(b"-----BEGIN CERT")
    # Nothing local but the account key copy and the run's own files: no certificate.
    assert not list((host.dir / "state").glob("certs/*/versions/*"))
    sealed = postgres.psql("SELECT privkey FROM certfleet_versions LIMIT 1")
    assert "PRIVATE KEY" not in bytes.fromhex(sealed.strip()[2:]).decode("latin-1")
    assert postgres.psql("SELECT count(*) FROM certfleet_tokens").strip() == "0"
    rc, out = host.cli("run")
    assert rc == 2, out
    assert orders_seen(lab) == 3, out
    rc, out = host.cli("status")
    assert rc == 0, out
    assert all(name in out for name in names), out


def test_a_rollover_and_a_revocation_on_one_host_hold_for_the_others(
        lab: Any, postgres: Any, tmp_path: Path) -> None:
    """The account is shared: once host w1 has rolled its key over, host w2 (a local state
    of its own, its copy of the old key in it) signs with the new key; a certificate w1
    issued is revoked from w2, and w1 then sees it revoked and renews it."""
    names = ["roll0.example.com", "roll1.example.com"]
    domains = _domains(tmp_path, names)
    w1 = Host(tmp_path, "w1", lab, postgres, domains)
    w2 = Host(tmp_path, "w2", lab, postgres, domains)
    assert w1.cli("store", "migrate")[0] == 0
    with Serve(w1, lab.http_port):
        rc, out = w1.cli("run")
        assert rc == 0, out
        assert w2.cli("status")[0] == 0        # w2's local state, with the key as it was
        rc, out = w1.cli("account", "rollover")
        assert rc == 0, out
        account, thumbprint = re.search(r"account: (\S+): new ec256 key, thumbprint (\S+);",
                                        out).groups()  # type: ignore[union-attr]
        rc, out = w2.cli("account", "show")
        assert rc == 0, out
        assert account in out, out          # the same account ...
        assert thumbprint in out, out        # ... with its new key
        rc, out = w2.cli("run", "--force", names[0])
        assert rc == 0, out
        assert f"{names[0]}: renewed" in out, out
        rc, out = w2.cli("revoke", names[1])
        assert rc == 0, out
        rc, out = w1.cli("status")
        assert "REVOKED" in next(line for line in out.splitlines()
                                 if line.startswith(names[1])), out
        rc, out = w1.cli("run")
        assert rc == 0, out
        assert f"{names[1]}: renewed" in out, out
    assert orders_seen(lab) == 4
