"""`import certbot`'s reading of a configuration directory, without a CA: a tree laid out
as certbot lays it out (links from live/ into archive/, JWK accounts per server), from the
test PKI. What the CA says is tested in tests/integration/test_migrate_certbot.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from certfleet import keytypes
from certfleet.account_key import AccountKey
from certfleet.config import load_job
from certfleet.config.defaults import LETSENCRYPT
from certfleet.keytypes import KeyType
from certfleet.migrate import found, from_certbot, render

from .pki import CA, new_key
from .test_migrate import _jwk

STAGING_V1 = "https://acme-staging.api.letsencrypt.org/directory"
STAGING_V2 = "https://acme-staging-v02.api.letsencrypt.org/directory"


def lineage(config_dir: Path, name: str, names: list[str], key: keytypes.PrivateKey,
            params: str) -> None:
    issuer = CA("Intermediate", parent=CA("Root"))
    cert = issuer.issue(key.public_key(), names)
    files = {"cert": cert, "chain": issuer.pem, "fullchain": cert + issuer.pem,
             "privkey": keytypes.to_pem(key)}
    archive, live = config_dir / "archive" / name, config_dir / "live" / name
    archive.mkdir(parents=True)
    live.mkdir(parents=True)
    for kind, data in files.items():
        (archive / f"{kind}1.pem").write_bytes(data)
        os.symlink(f"../../archive/{name}/{kind}1.pem", live / f"{kind}.pem")
    (config_dir / "renewal").mkdir(exist_ok=True)
    (config_dir / "renewal" / f"{name}.conf").write_text(
        f"version = 5.8.0\narchive_dir = {archive}\n[renewalparams]\n{params}")


def account(config_dir: Path, server: str, ident: str) -> AccountKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    parts = urlsplit(server)
    folder = config_dir / "accounts" / (parts.netloc + parts.path).strip("/") / ident
    folder.mkdir(parents=True)
    (folder / "private_key.json").write_text(json.dumps(_jwk(key)))
    (folder / "regr.json").write_text(json.dumps({"body": {}, "uri": f"{server}/acct/1"}))
    return AccountKey(key)


def test_a_certbot_tree(tmp_path: Path) -> None:
    config_dir = tmp_path / "letsencrypt"
    le_account = account(config_dir, LETSENCRYPT, "aaaa1111")
    staging_account = account(config_dir, STAGING_V1, "bbbb2222")  # an old v01 directory
    hooks = config_dir / "renewal-hooks" / "deploy"
    hooks.mkdir(parents=True)
    (hooks / "reload-haproxy.sh").write_text("#!/bin/sh\n")
    lineage(config_dir, "example.com-0001", ["example.com", "www.example.com"],
            rsa.generate_private_key(public_exponent=65537, key_size=2048), f"""\
account = aaaa1111
server = {LETSENCRYPT}
key_type = rsa
rsa_key_size = 4096
authenticator = webroot
webroot_path = /var/www/html,
renew_hook = systemctl reload nginx
reuse_key = True
[[webroot_map]]
example.com = /var/www/html
www.example.com = /var/www/html
""")
    lineage(config_dir, "example.org", ["*.example.org", "example.org"], new_key(), f"""\
account = bbbb2222
server = {STAGING_V1}
authenticator = dns-cloudflare
installer = nginx
""")
    settings = found.Settings(directory=LETSENCRYPT, state_dir=tmp_path / "state")
    migration = from_certbot.gather(config_dir, settings)

    assert migration.refused == []
    assert [(c.name, c.names, c.key_type, c.directory) for c in migration.certs] == [
        ("*.example.org", ("*.example.org", "example.org"), KeyType.EC256, STAGING_V2),
        ("example.com", ("example.com", "www.example.com"), KeyType.RSA2048, LETSENCRYPT)]
    assert migration.domain_lines == ["*.example.org example.org",
                                      "example.com www.example.com"]
    assert {(a.directory, a.key.thumbprint, a.url) for a in migration.accounts} == {
        (LETSENCRYPT, le_account.thumbprint, f"{LETSENCRYPT}/acct/1"),
        (STAGING_V2, staging_account.thumbprint, f"{STAGING_V1}/acct/1")}
    assert settings.directory == LETSENCRYPT
    assert settings.challenge == {"webroot": "/var/www/html/.well-known/acme-challenge"}
    assert settings.certs == {
        "example.com": {"key_type": "rsa2048", "reuse_key": True},
        "*.example.org": {"key_type": "ec256", "ca": STAGING_V2, "challenge": "dns-01"}}
    notes = "\n".join(migration.notes)
    assert "example.com: the renewal configuration asks for rsa4096; certfleet keeps the " \
           "key's own type, rsa2048" in notes
    assert "example.com: certbot's deploy hook (after this lineage was renewed): systemctl " \
           "reload nginx" in notes
    assert "*.example.org: not mapped: authenticator dns-cloudflare: dns-01 needs a [dns] " \
           "section" in notes
    assert "*.example.org: not mapped: installer nginx" in notes
    assert f"certbot ran {hooks / 'reload-haproxy.sh'} (deploy hook, every lineage)" in notes

    # What is written loads as certfleet's configuration, as it is.
    config, domains = tmp_path / "etc" / "certfleet.toml", tmp_path / "etc" / "domains.txt"
    config.parent.mkdir()
    config.write_text(render.config_text(migration, config, domains))
    domains.write_bytes(render.domains_text(migration))
    job = load_job(config)
    specs = {spec.name: spec for spec in job.certs}
    assert specs["example.com"].key_type is KeyType.RSA2048
    assert specs["example.com"].reuse_key
    assert (specs["*.example.org"].key_type, specs["*.example.org"].challenge,
            specs["*.example.org"].ca) == (KeyType.EC256, "dns-01", STAGING_V2)
    assert job.directory == LETSENCRYPT
    assert str(job.challenges.webroot) == "/var/www/html/.well-known/acme-challenge"
