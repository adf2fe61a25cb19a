"""Several CAs: a per-certificate CA, and fallback CAs tried only for failures of the CA."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .fleet_helpers import orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration
UNREACHABLE = "https://127.0.0.1:9/dir"  # discard port: nothing listens on loopback there


def _config(tmp_path: Path, listen_lab: Any, text: str, ca: dict[str, Any],
            **sections: dict[str, Any]) -> Path:
    domains = tmp_path / "domains.txt"
    domains.write_text(text)
    return write_config(tmp_path / "certfleet.toml", listen_lab, tmp_path / "state", domains,
                        sections={"ca": ca, **sections})


def _bundle(tmp_path: Path, *labs: Any) -> str:
    path = tmp_path / "cas.pem"
    path.write_bytes(b"".join(Path(lab.ca_bundle).read_bytes() for lab in labs))
    return str(path)


def _directory_of(tmp_path: Path, name: str) -> str:
    meta = tmp_path / "state" / "certs" / name / "current" / "meta.json"
    return str(json.loads(meta.read_text())["directory"])


def test_unreachable_ca_falls_back(pebble_lab_factory: Any, tmp_path: Path) -> None:
    backup = pebble_lab_factory()
    config = _config(tmp_path, backup, "fallback.example.com\n",
                     {"directory": UNREACHABLE, "ca_bundle": str(backup.ca_bundle),
                      "fallback": [backup.directory_url]})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert out.startswith("fallback.example.com: issued (expires ")
    assert _directory_of(tmp_path, "fallback.example.com") == backup.directory_url
    assert orders_seen(backup) == 1


def test_failed_validation_does_not_fall_back(pebble_lab_factory: Any, tmp_path: Path) -> None:
    primary, backup = pebble_lab_factory(), pebble_lab_factory()
    primary.add_a("nowhere.example.com", "127.0.0.2")
    config = _config(tmp_path, primary, "nowhere.example.com\n",
                     {"directory": primary.directory_url,
                      "ca_bundle": _bundle(tmp_path, primary, backup),
                      "fallback": [backup.directory_url]})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    assert "nowhere.example.com: validation failed: connection" in out
    assert orders_seen(primary) == 1
    assert orders_seen(backup) == 0          # the domain's fault: no other CA is bothered


def test_every_ca_failing_names_each(pebble_lab_factory: Any, tmp_path: Path) -> None:
    lab = pebble_lab_factory()
    config = _config(tmp_path, lab, "nothing.example.com\n",
                     {"directory": UNREACHABLE, "ca_bundle": str(lab.ca_bundle),
                      "fallback": ["https://127.0.0.1:7/dir"]})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    assert f"failed: {UNREACHABLE}: " in out
    assert "; https://127.0.0.1:7/dir: " in out


def test_per_certificate_ca(pebble_lab_factory: Any, tmp_path: Path) -> None:
    main_ca, other_ca = pebble_lab_factory(), pebble_lab_factory()
    config = _config(tmp_path, other_ca, "main.example.com\nother.example.com\n",
                     {"directory": main_ca.directory_url,
                      "ca_bundle": _bundle(tmp_path, main_ca, other_ca)},
                     **{'certs."other.example.com"': {"ca": other_ca.directory_url}})
    rc, out = run_cli("run", "--config", str(config), "other.example.com")
    assert rc == 0, out
    assert _directory_of(tmp_path, "other.example.com") == other_ca.directory_url
    assert orders_seen(main_ca) == 0
    accounts = sorted(p.name for p in (tmp_path / "state" / "accounts").iterdir())
    assert len(accounts) == 1
