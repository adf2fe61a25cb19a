"""ARI (RFC 9773) and profiles against Pebble: renewal windows decide, `replaces` is sent."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certfleet.acme_client import AcmeClient
from certfleet.keytypes import KeyType
from certfleet.protocol import ari
from certfleet.registration import open_account
from certfleet.solvers.http_server import HttpServerSolver
from certfleet.store import Store
from tests.issuing import issue_names as issue

from .fleet_helpers import by_name, orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def lab(pebble_lab_factory: Any) -> Any:
    return pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})


def _setup(tmp_path: Path, lab: Any, text: str, **sections: dict[str, Any]) -> Path:
    domains = tmp_path / "domains.txt"
    domains.write_text(text)
    return write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                        sections={"defaults": {"profile": "default"}, **sections})


def _cert(tmp_path: Path, name: str) -> x509.Certificate:
    pem = (tmp_path / "state" / "certs" / name / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem)


def _state(tmp_path: Path, name: str) -> dict[str, Any]:
    return json.loads((tmp_path / "state" / "certs" / name / "state.json").read_text())


def test_window_in_the_past_renews_with_replaces(lab: Any, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    config = _setup(tmp_path, lab, "ari-past.example.com\n")
    assert run_cli("run", "--config", str(config))[0] == 0
    old = _cert(tmp_path, "ari-past.example.com")
    lab.set_renewal_info(old, NOW - dt.timedelta(hours=2), NOW - dt.timedelta(hours=1))
    caplog.set_level(logging.INFO, logger="certfleet")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert out.startswith("ari-past.example.com: renewed (expires ")
    aki = old.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    old_id = ari.cert_id(aki.key_identifier or b"", old.serial_number)
    assert f"ordering as the replacement of {old_id}" in caplog.text
    assert "ordering without it" not in caplog.text

    # The same certificate replaced a second time: Pebble answers alreadyReplaced, and
    # certfleet orders again without `replaces`.
    caplog.clear()

    async def replace_again() -> None:
        store = Store(tmp_path / "state")
        async with AcmeClient(lab.directory_url, ca_bundle=lab.ca_bundle) as client, \
                HttpServerSolver("127.0.0.1", lab.http_port) as solver:
            session = await open_account(client, store, KeyType.EC256, [])
            await issue(session, store, ["ari-past.example.com"], KeyType.EC256, solver,
                        replaces=old_id)

    asyncio.run(replace_again())
    assert "the CA refused replaces=" in caplog.text
    assert "(alreadyReplaced); ordering without it" in caplog.text


def test_window_in_the_future_is_not_due(lab: Any, tmp_path: Path) -> None:
    config = _setup(tmp_path, lab, "ari-future.example.com\n")
    assert run_cli("run", "--config", str(config))[0] == 0
    start, end = NOW + dt.timedelta(days=20), NOW + dt.timedelta(days=21)
    lab.set_renewal_info(_cert(tmp_path, "ari-future.example.com"), start, end,
                         explanation_url="https://ca.invalid/why")
    orders = orders_seen(lab)
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 2, out
    assert out.startswith("ari-future.example.com: not due until ")
    assert out[len("ari-future.example.com: not due until "):][:10] in (
        start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d"))
    record = _state(tmp_path, "ari-future.example.com")["ari"]
    chosen = dt.datetime.fromisoformat(record["chosen"])
    assert start <= chosen <= end
    assert record["explanation"] == "https://ca.invalid/why"
    assert orders_seen(lab) == orders
    rc, out = run_cli("status", "--config", str(config), "--json")
    row = json.loads(out)[0]
    assert row["renewal"]["source"] == "ARI"
    assert row["renewal"]["chosen"] == record["chosen"]
    # Asked again only after Retry-After: a second run keeps the same choice.
    assert run_cli("run", "--config", str(config))[0] == 2
    assert _state(tmp_path, "ari-future.example.com")["ari"]["chosen"] == record["chosen"]


def test_malformed_renewal_info_falls_back_to_lifetime(lab: Any, tmp_path: Path) -> None:
    config = _setup(tmp_path, lab, "ari-bad.example.com\n")
    assert run_cli("run", "--config", str(config))[0] == 0
    cert = _cert(tmp_path, "ari-bad.example.com")
    lab.set_renewal_info(cert, ari_response="this is not json")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 2, out
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    expected = cert.not_valid_after_utc - lifetime / 3
    assert out.startswith(f"ari-bad.example.com: not due until {expected:%Y-%m-%d}")
    record = _state(tmp_path, "ari-bad.example.com")["ari"]
    assert "invalid JSON" in record["error"] or "expected JSON" in record["error"]
    rc, out = run_cli("status", "--config", str(config), "--json")
    assert json.loads(out)[0]["renewal"]["source"] == "lifetime"


def test_profiles(lab: Any, tmp_path: Path) -> None:
    config = _setup(tmp_path, lab, "short.example.com\nlong.example.com\nodd.example.com\n",
                    **{'certs."short.example.com"': {"profile": "shortlived"},
                       'certs."odd.example.com"': {"profile": "no-such-profile"}})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    lines = by_name(out)
    assert lines["short.example.com"].startswith("short.example.com: issued")
    assert lines["long.example.com"].startswith("long.example.com: issued")
    assert lines["odd.example.com"] == (
        "odd.example.com: failed: odd.example.com: the CA has no certificate profile "
        "'no-such-profile' (it offers: default, shortlived)")
    short, long = _cert(tmp_path, "short.example.com"), _cert(tmp_path, "long.example.com")
    assert short.not_valid_after_utc - short.not_valid_before_utc < dt.timedelta(days=7)
    assert long.not_valid_after_utc - long.not_valid_before_utc > dt.timedelta(days=80)
    # A 6-day certificate is renewed at half its life, not on every run.
    rc, out = run_cli("run", "--config", str(config), "short.example.com")
    assert rc == 2, out


def _root_cn(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return str(cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value)


def _chain_top_issuer(tmp_path: Path, name: str) -> str:
    chain = x509.load_pem_x509_certificates(
        (tmp_path / "state" / "certs" / name / "fullchain.pem").read_bytes())
    return str(chain[-1].issuer.get_attributes_for_oid(
        x509.oid.NameOID.COMMON_NAME)[0].value)


def test_preferred_chain(pebble_lab_factory: Any, tmp_path: Path) -> None:
    lab = pebble_lab_factory(env={"PEBBLE_ALTERNATE_ROOTS": "2", "PEBBLE_AUTHZREUSE": "0"})
    roots = [_root_cn(lab.roots_pem(i)) for i in range(3)]
    config = _setup(tmp_path, lab, "chain-alt.example.com\nchain-default.example.com\n",
                    **{'certs."chain-alt.example.com"': {"preferred_chain": roots[2]},
                       'certs."chain-default.example.com"': {"preferred_chain": "No Such CA"}})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert _chain_top_issuer(tmp_path, "chain-alt.example.com") == roots[2]
    assert _chain_top_issuer(tmp_path, "chain-default.example.com") == roots[0]
