"""`certfleet import acme-client` against a real Pebble: the seed's layout, made from real
certificates, brought into a fresh state directory, and nothing ordered afterwards."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from certfleet.account_key import AccountKey
from certfleet.keytypes import KeyType
from certfleet.store import Store

from .fleet_helpers import orders_seen, run_cli, write_config
from .migrate_helpers import import_cli, serial_of, status_rows, tree_state

pytestmark = pytest.mark.integration

NAMES = ("www.example.com", "www.example.net")
SEED_DOMAINS = """\
# ACME domain configuration file.
# format: domain|server:dir server:dir ...
www.example.com|198.51.100.11:/some/where/Certs 198.51.100.12:/some/where/Certs
www.example.net|198.51.100.11:/some/where/Certs 198.51.100.12:/some/where/Certs
"""


@dataclass
class Seed:
    base: Path        # the seed's ACME_BASE
    ssl: Path         # ${SSL}: the account key and one directory per domain
    domains: Path     # the seed's domains.txt, verbatim
    serials: dict[str, int]


@pytest.fixture(scope="module")
def issued(pebble: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A certfleet state with an RSA account and both seed names issued (RSA 4096, as the
    seed's ``-N``), to lay out as acme-client would have."""
    work = tmp_path_factory.mktemp("issuer")
    domains = work / "domains.txt"
    domains.write_text("\n".join(NAMES) + "\n")
    config = write_config(work / "certfleet.toml", pebble, work / "state", domains,
                          sections={"defaults": {"key_type": "rsa4096"},
                                    "ca": {"directory": pebble.directory_url,
                                           "ca_bundle": str(pebble.ca_bundle),
                                           "account_key_type": "rsa4096"}})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    return work / "state"


def lay_out(state: Path, base: Path, domains_text: str = SEED_DOMAINS) -> Seed:
    """The seed's tree: ``SSL/privkey.pem`` (the account key, PKCS#1 as acme-client writes
    it), ``SSL/<domain>/{cert,chain,fullchain,privkey}.pem``, ``domains.txt``, ``WWW/``."""
    ssl = base / "SSL"
    ssl.mkdir(parents=True)
    (base / "WWW").mkdir()
    account = next((state / "accounts").glob("*/account.key"))
    key = serialization.load_pem_private_key(account.read_bytes(), None)
    pkcs1 = key.private_bytes(serialization.Encoding.PEM,  # type: ignore[union-attr]
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    (ssl / "privkey.pem").write_bytes(pkcs1)
    os.chmod(ssl / "privkey.pem", 0o600)
    serials = {}
    for name in NAMES:
        (ssl / name).mkdir()
        for pem in ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"):
            shutil.copyfile(state / "certs" / name / pem, ssl / name / pem)
        os.chmod(ssl / name / "privkey.pem", 0o600)
        serials[name] = serial_of(ssl / name / "cert.pem")
    domains = base / "domains.txt"
    domains.write_text(domains_text)
    return Seed(base, ssl, domains, serials)


@pytest.fixture
def seed(issued: Path, tmp_path: Path) -> Seed:
    return lay_out(issued, tmp_path / "acme")


def common(pebble: Any, state: Path) -> list[str]:
    return ["--state-dir", str(state), "--directory", pebble.directory_url,
            "--ca-bundle", str(pebble.ca_bundle)]


def seed_args(pebble: Any, seed: Seed, state: Path, config: Path) -> list[str]:
    return ["acme-client", "--domains-file", str(seed.domains), "--ssl-dir", str(seed.ssl),
            "--webroot", str(seed.base / "WWW"), "--to-config", str(config),
            *common(pebble, state)]


def test_import_seed_layout(pebble: Any, seed: Seed, tmp_path: Path) -> None:
    before = tree_state(seed.base)
    state, config = tmp_path / "state", tmp_path / "etc" / "certfleet.toml"

    rc, out, err = import_cli(*seed_args(pebble, seed, state, config), "--dry-run")
    assert (rc, err) == (0, ""), out
    for name in NAMES:
        assert f"{name}: would be imported as version 1 (rsa4096, serial " \
               f"{seed.serials[name]:x}, expires " in out
    assert "account: " in out
    assert ": rsa4096 key of https://" in out
    assert not state.exists()
    assert not config.parent.exists()
    assert tree_state(seed.base) == before

    orders = orders_seen(pebble)
    rc, out, err = import_cli(*seed_args(pebble, seed, state, config))
    assert (rc, err) == (0, ""), out
    assert out.splitlines()[-1] == "2 certificates: 2 imported, 0 not imported"
    assert tree_state(seed.base) == before   # the source tree, untouched
    domains = config.parent / "domains.txt"
    assert domains.read_text().splitlines()[1:] == SEED_DOMAINS.splitlines()  # verbatim
    text = config.read_text()
    assert f'directory = "{pebble.directory_url}"' in text
    assert f'webroot = "{seed.base / "WWW"}"' in text
    assert 'key_type = "rsa4096"' in text

    rows = status_rows(config)
    for name in NAMES:
        assert rows[name]["version"] == 1
        assert rows[name]["serial"] == f"{seed.serials[name]:x}"
        assert rows[name]["key_type"] == "rsa4096"
        assert rows[name]["order"] == ""
        meta = json.loads((state / "certs" / name / "versions/1/meta.json").read_bytes())
        assert meta["directory"] == pebble.directory_url
    account = json.loads(next((state / "accounts").glob("*/account.json")).read_bytes())
    assert account["url"].startswith("https://")
    assert account["status"] == "valid"

    rc, out = run_cli("run", "--dry-run", "--config", str(config))
    for name in NAMES:
        assert f"{name}: not due until 20" in out
    assert orders_seen(pebble) == orders  # an import orders nothing


def test_next_run_orders_nothing(pebble: Any, issued: Path, tmp_path: Path) -> None:
    targets = [tmp_path / "web1" / "Certs", tmp_path / "web2" / "Certs"]
    for target in targets:
        target.mkdir(parents=True)
    local = SEED_DOMAINS.replace("198.51.100.11:/some/where/Certs", str(targets[0])) \
        .replace("198.51.100.12:/some/where/Certs", str(targets[1]))
    seed = lay_out(issued, tmp_path / "acme", local)
    state, config = tmp_path / "state", tmp_path / "etc" / "certfleet.toml"
    rc, _, err = import_cli(*seed_args(pebble, seed, state, config))
    assert (rc, err) == (0, "")

    orders = orders_seen(pebble)
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out  # the targets lacked the files: deployed, nothing ordered
    assert orders_seen(pebble) == orders
    for name in NAMES:
        assert f"{name}: not due until 20" in out
        assert "deployed to 2/2 targets" in out
        for target in targets:
            assert serial_of(target / name / "cert.pem") == seed.serials[name]
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 2, out
    assert orders_seen(pebble) == orders


def test_account_unknown_to_ca_imports_nothing(pebble: Any, seed: Seed,
                                                tmp_path: Path) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (seed.ssl / "privkey.pem").write_bytes(stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    state, config = tmp_path / "state", tmp_path / "etc" / "certfleet.toml"
    rc, out, err = import_cli(*seed_args(pebble, seed, state, config))
    assert rc == 1
    assert err.count("\n") == 1
    assert "knows no account for this key" in err
    assert "nothing was imported" in err
    assert "Traceback" not in out + err
    assert not state.exists()
    assert not config.parent.exists()


def _mismatch(folder: Path, other: Path) -> None:
    (folder / "privkey.pem").write_bytes((other / "privkey.pem").read_bytes())


def _missing(folder: Path, other: Path) -> None:
    (folder / "chain.pem").unlink()


def _loop(folder: Path, other: Path) -> None:
    (folder / "privkey.pem").unlink()
    os.symlink("privkey.pem", folder / "privkey.pem")


def _fifo(folder: Path, other: Path) -> None:
    (folder / "privkey.pem").unlink()
    os.mkfifo(folder / "privkey.pem")


def _not_a_key(folder: Path, other: Path) -> None:
    (folder / "privkey.pem").write_bytes((folder / "cert.pem").read_bytes())


@pytest.mark.parametrize(("spoil", "says"), [
    (_mismatch, "privkey.pem does not belong to cert.pem"),
    (_missing, "chain.pem: missing"),
    (_loop, "privkey.pem: a symbolic link loop"),
    (_fifo, "privkey.pem: a FIFO, not a file"),
    (_not_a_key, "privkey.pem: not an unencrypted PEM private key"),
])
def test_bad_input_one_line_each(pebble: Any, seed: Seed, tmp_path: Path, spoil: Any,
                                 says: str) -> None:
    bad, good = NAMES[1], NAMES[0]
    spoil(seed.ssl / bad, seed.ssl / good)
    before = tree_state(seed.base)
    state, config = tmp_path / "state", tmp_path / "etc" / "certfleet.toml"
    for dry in (["--dry-run"], []):
        rc, out, err = import_cli(*seed_args(pebble, seed, state, config), *dry)
        assert rc == 1
        assert err == ""
        assert "Traceback" not in out
        refused = [line for line in out.splitlines() if line.startswith(f"{bad}: ")]
        assert len(refused) == 1, out
        assert refused[0].startswith(f"{bad}: not imported: {seed.ssl / bad}")
        assert says in refused[0]
        assert f"{good}: {'would be ' if dry else ''}imported as version 1" in out
    assert tree_state(seed.base) == before
    assert (state / "certs" / good / "current").is_symlink()
    assert not (state / "certs" / bad).exists()


def test_existing_state_is_never_replaced(pebble: Any, seed: Seed, tmp_path: Path) -> None:
    state = tmp_path / "state"
    rc, _, _ = import_cli(*seed_args(pebble, seed, state, tmp_path / "a" / "certfleet.toml"))
    assert rc == 0
    stored = {n: (state / "certs" / n / "versions/1/meta.json").read_bytes() for n in NAMES}
    rc, out, err = import_cli(*seed_args(pebble, seed, state,
                                         tmp_path / "b" / "certfleet.toml"))
    assert rc == 1
    assert err == ""
    for name in NAMES:
        assert f"{name}: not imported: {state} has a certificate {name} already; it is not " \
               "replaced" in out
        assert (state / "certs" / name / "versions/1/meta.json").read_bytes() == stored[name]
        assert not (state / "certs" / name / "versions/2").exists()
    rc, out, err = import_cli(*seed_args(pebble, seed, state, tmp_path / "a" / "certfleet.toml"))
    assert rc == 1
    assert "exists; certfleet import writes a new file" in err


def test_another_account_key_in_state_is_never_replaced(pebble: Any, seed: Seed,
                                                         tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = Store(state).account_key_path(pebble.directory_url)
    AccountKey.generate(KeyType.EC256).save_new(path)
    kept = path.read_bytes()
    rc, _, err = import_cli(*seed_args(pebble, seed, state, tmp_path / "etc" / "c.toml"))
    assert rc == 1
    assert err == f"certfleet: {path}: the state directory has another account key for " \
                  f"{pebble.directory_url}; it is not replaced, and nothing was imported\n"
    assert path.read_bytes() == kept
    assert os.listdir(state / "certs") == []
    assert not (tmp_path / "etc").exists()
