"""`certfleet import certbot` against a real Pebble and a real certbot (installed by
scripts/install-test-components into .cache/certbot/venv, its own virtualenv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certfleet.account_key import AccountKey
from tests.conftest import PebbleLab, require, require_pebble

from .conftest import webroot_server
from .fleet_helpers import orders_seen, run_cli
from .migrate_helpers import import_cli, serial_of, status_rows, tree_state

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CERTBOT = Path(os.environ.get("CERTFLEET_CERTBOT")
               or REPO / ".cache" / "certbot" / "venv" / "bin" / "certbot")
RSA, EC = "rsa.certbot.example", "ec.certbot.example"


class CertbotMissing(Exception):
    pass


def find_certbot() -> Path:
    if not os.access(CERTBOT, os.X_OK):
        raise CertbotMissing(f"certbot not found at {CERTBOT} (run scripts/"
                             "install-test-components)")
    return CERTBOT


@dataclass
class Tree:
    base: Path          # everything certbot wrote: config, work and logs dirs, webroot
    config_dir: Path    # /etc/letsencrypt
    webroot: Path
    hook_marker: Path   # the deploy hook touches it


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleLab]:
    """This module's own Pebble, without nonce rejection: what is tested is the import of
    certbot's tree, and certbot retries a rejected nonce only once (two in a row, at
    Pebble's default 5 %, failed the tree's making about once in twenty sessions)."""
    require_pebble()
    with PebbleLab(tmp_path_factory.mktemp("pebble-certbot"),
                   env={"PEBBLE_WFE_NONCEREJECT": "0"}) as lab:
        yield lab


@pytest.fixture(scope="module")
def letsencrypt(pebble: Any, tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """certbot's tree from real runs: an RSA lineage by standalone with a deploy hook, and
    an ECDSA P-384 lineage by webroot, issued twice (``--duplicate``: ``...-0001``)."""
    require(find_certbot, CertbotMissing)
    base = tmp_path_factory.mktemp("certbot")
    tree = Tree(base, base / "letsencrypt", base / "www", base / "hook-ran")

    def certbot(*args: str) -> None:
        run = subprocess.run(
            [str(CERTBOT), "certonly", "--server", pebble.directory_url,
             "--config-dir", str(tree.config_dir), "--work-dir", str(base / "work"),
             "--logs-dir", str(base / "logs"), "--agree-tos",
             "--register-unsafely-without-email", "--non-interactive", *args],
            env={**os.environ, "REQUESTS_CA_BUNDLE": str(pebble.ca_bundle)},
            capture_output=True, text=True, timeout=300, check=False)
        assert run.returncode == 0, run.stdout + run.stderr

    certbot("--standalone", "--http-01-address", "127.0.0.1", "--http-01-port",
            str(pebble.http_port), "-d", RSA, "-d", f"www.{RSA}", "--key-type", "rsa",
            "--rsa-key-size", "2048", "--deploy-hook", f"touch {tree.hook_marker}")
    challenges = tree.webroot / ".well-known" / "acme-challenge"
    challenges.mkdir(parents=True)
    with webroot_server(challenges, pebble.http_port):
        for again in ([], ["--duplicate"]):
            certbot("--webroot", "-w", str(tree.webroot), "-d", EC, "--key-type", "ecdsa",
                    "--elliptic-curve", "secp384r1", *again)
    assert tree.hook_marker.exists()
    return tree


@pytest.fixture
def copy(letsencrypt: Tree, tmp_path: Path) -> Tree:
    """A copy of the tree for a test to spoil (links kept as links)."""
    base = tmp_path / "copy"
    shutil.copytree(letsencrypt.base, base, symlinks=True)
    return Tree(base, base / "letsencrypt", letsencrypt.webroot, letsencrypt.hook_marker)


def args(pebble: Any, tree: Tree, state: Path, config: Path) -> list[str]:
    return ["certbot", "--config-dir", str(tree.config_dir), "--to-config", str(config),
            "--state-dir", str(state), "--ca-bundle", str(pebble.ca_bundle)]


def test_import_certbot(pebble: Any, letsencrypt: Tree, tmp_path: Path) -> None:
    tree = letsencrypt
    before = tree_state(tree.base)
    live = tree.config_dir / "live"
    serials = {RSA: serial_of(live / RSA / "cert.pem"),
               EC: serial_of(live / f"{EC}-0001" / "cert.pem")}
    state, config = tmp_path / "state", tmp_path / "etc" / "certfleet.toml"

    rc, out, err = import_cli(*args(pebble, tree, state, config), "--dry-run")
    assert (rc, err) == (0, ""), out
    assert f"{RSA}: would be imported as version 1 (rsa2048, serial {serials[RSA]:x}" in out
    assert f"{EC}: would be imported as version 1 (ec384, serial {serials[EC]:x}" in out
    assert not state.exists()
    assert not config.parent.exists()
    assert tree_state(tree.base) == before

    orders = orders_seen(pebble)
    rc, out, err = import_cli(*args(pebble, tree, state, config))
    assert (rc, err) == (0, ""), out
    assert tree_state(tree.base) == before  # not a byte, mode or mtime changed; no hook ran
    assert out.splitlines()[-1] == "2 certificates: 2 imported, 0 not imported"
    assert f"lineage {EC}: left out: its name {EC} is lineage {EC}-0001's too" in out
    assert f"{RSA}: certbot's deploy hook (after this lineage was renewed): touch " \
           f"{tree.hook_marker}" in out

    # The account: certbot's JWK as certfleet's account key, found at Pebble.
    account_dir = next((tree.config_dir / "accounts").glob("*/dir/*"))
    jwk = json.loads((account_dir / "private_key.json").read_bytes())
    regr = json.loads((account_dir / "regr.json").read_bytes())
    kept = next((state / "accounts").glob("*/account.key"))
    assert AccountKey.load(kept).thumbprint == AccountKey.from_jwk(jwk, "jwk").thumbprint  # type: ignore[union-attr]
    record = json.loads((kept.parent / "account.json").read_bytes())
    assert (record["url"], record["status"]) == (regr["uri"], "valid")

    text = config.read_text()
    assert f'directory = "{pebble.directory_url}"' in text
    assert f'webroot = "{tree.webroot}/.well-known/acme-challenge"' in text
    assert "not mapped: certbot answered http-01 with http_listen 127.0.0.1:" in text
    assert f'reload = ["touch", "{tree.hook_marker}"]' in text  # a suggestion, commented
    assert "\nreload" not in text
    toml = tomllib.loads(text)
    key_types = {name: toml["certs"].get(name, {}).get("key_type", toml["defaults"]["key_type"])
                 for name in (RSA, EC)}
    assert key_types == {RSA: "rsa2048", EC: "ec384"}
    assert toml["ca"] == {"directory": pebble.directory_url,
                          "ca_bundle": str(pebble.ca_bundle)}
    domains = (config.parent / "domains.txt").read_text().splitlines()
    assert domains[1:] == [EC, f"{RSA} www.{RSA}"]

    rows = status_rows(config)
    assert {n: (r["version"], r["serial"]) for n, r in rows.items()} == {
        n: (1, f"{s:x}") for n, s in serials.items()}
    assert (rows[RSA]["key_type"], rows[EC]["key_type"]) == ("rsa2048", "ec384")
    rc, out = run_cli("run", "--dry-run", "--config", str(config))
    assert rc == 2, out
    assert out.count(": not due until 20") == 2, out
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 2, out
    assert orders_seen(pebble) == orders  # nothing re-issued
    assert tree_state(tree.base) == before


def _loop(tree: Tree) -> str:
    link = tree.config_dir / "live" / RSA / "cert.pem"
    link.unlink()
    os.symlink("cert.pem", link)
    return f"{RSA}: not imported: {link}: a symbolic link loop"


def _fifo(tree: Tree) -> str:
    target = tree.config_dir / "archive" / RSA / "privkey1.pem"
    target.unlink()
    os.mkfifo(target)
    return f"{RSA}: not imported: {tree.config_dir / 'live' / RSA / 'privkey.pem'}: a FIFO"


def _bad_conf(tree: Tree) -> str:
    conf = tree.config_dir / "renewal" / f"{RSA}.conf"
    conf.write_text(conf.read_text() + "[plugins]\nx = 1\n")
    return f"{RSA}: not imported: {conf}:"


@pytest.mark.parametrize("spoil", [_loop, _fifo, _bad_conf])
def test_bad_lineage_one_line(pebble: Any, copy: Tree, tmp_path: Path, spoil: Any) -> None:
    says = spoil(copy).replace(f"{RSA}: not imported", f"lineage {RSA}: not imported")
    before = tree_state(copy.base)
    state, config = tmp_path / "state", tmp_path / "etc" / "certfleet.toml"
    rc, out, err = import_cli(*args(pebble, copy, state, config))
    assert rc == 1
    assert err == ""
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.startswith(f"lineage {RSA}: ")]
    assert len(lines) == 1, out
    assert lines[0].startswith(says), out
    assert f"{EC}: imported as version 1" in out
    assert tree_state(copy.base) == before
    assert (config.parent / "domains.txt").read_text().splitlines()[1:] == [EC]


def test_unreadable_account_imports_nothing(pebble: Any, copy: Tree, tmp_path: Path) -> None:
    key = next((copy.config_dir / "accounts").glob("*/dir/*/private_key.json"))
    os.chmod(key, 0o600)
    key.write_text('{"kty": "RSA", "n": "AQAB"}')
    state, config = tmp_path / "state", tmp_path / "etc" / "certfleet.toml"
    for dry in (["--dry-run"], []):
        rc, out, err = import_cli(*args(pebble, copy, state, config), *dry)
        assert rc == 1
        assert "Traceback" not in out + err
        assert err == f"certfleet: account key {key}: not a private RSA or EC JWK " \
                      "('e')\n"
    assert not state.exists()
    assert not config.parent.exists()
