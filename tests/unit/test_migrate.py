"""The parts of `certfleet import` that need no CA: reading the source tree, certbot's
renewal configuration, JWK account keys, the four files' checks, the written TOML."""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certfleet import keytypes
from certfleet.account_key import AccountKey
from certfleet.errors import ConfigError
from certfleet.keytypes import KeyType
from certfleet.migrate import certbot_map, found, render, renewal_conf, source
from certfleet.protocol.b64 import int_to_b64url
from tests.cli import run_main

from .pki import CA, new_key

CONF = b"""\
version = 5.8.0
archive_dir = /etc/letsencrypt/archive/example.com
cert = /etc/letsencrypt/live/example.com/cert.pem
# a comment
[renewalparams]
account = 0123abcd
key_type = rsa
rsa_key_size = 4096
server = https://acme-v02.api.letsencrypt.org/directory
authenticator = webroot
webroot_path = /var/www/a, /var/www/b,
renew_hook = "systemctl reload nginx # not a comment"
pre_hook = "echo 'a, b'"   # a comment
[[webroot_map]]
example.com = /var/www/a
www.example.com = /var/www/b
"""


def test_renewal_conf_as_certbot_writes_it() -> None:
    conf = renewal_conf.parse(CONF, "example.com.conf")
    assert conf.top["archive_dir"] == "/etc/letsencrypt/archive/example.com"
    assert conf.param("account") == "0123abcd"
    assert conf.param_list("webroot_path") == ["/var/www/a", "/var/www/b"]
    assert conf.param("renew_hook") == "systemctl reload nginx # not a comment"
    assert conf.param("pre_hook") == "echo 'a, b'"  # other quotes inside a value are kept
    assert conf.webroot_map == {"example.com": "/var/www/a", "www.example.com": "/var/www/b"}
    assert certbot_map.wanted_key_type(conf) is KeyType.RSA4096


@pytest.mark.parametrize(("text", "says"), [
    (b"[renewalparams]\n[plugins]\n", "x.conf:2: section [plugins] is not one certbot writes"),
    (b"a = '''x\n", "x.conf:1: multi-line values are not read"),
    (b"a = 'x\n", "x.conf:1: unclosed quote"),
    (b"just words\n", "x.conf:1: not a `key = value` line"),
    (b"\xff = 1\n", "x.conf: not UTF-8 text"),
])
def test_renewal_conf_refuses_what_certbot_does_not_write(text: bytes, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        renewal_conf.parse(text, "x.conf")
    assert str(info.value) == says


def _jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, str]:
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        return {"kty": "RSA", "n": int_to_b64url(n.public_numbers.n),
                "e": int_to_b64url(n.public_numbers.e), "d": int_to_b64url(n.d),
                "p": int_to_b64url(n.p), "q": int_to_b64url(n.q),
                "dp": int_to_b64url(n.dmp1), "dq": int_to_b64url(n.dmq1),
                "qi": int_to_b64url(n.iqmp)}
    e = key.private_numbers()
    return {"kty": "EC", "crv": "P-384", "x": int_to_b64url(e.public_numbers.x, 48),
            "y": int_to_b64url(e.public_numbers.y, 48), "d": int_to_b64url(e.private_value)}


@pytest.mark.parametrize("make", [
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    lambda: ec.generate_private_key(ec.SECP384R1()),
])
def test_jwk_account_key_is_the_same_key(make: object) -> None:
    key = make()  # type: ignore[operator]
    assert AccountKey.from_jwk(_jwk(key), "k").thumbprint == AccountKey(key).thumbprint


@pytest.mark.parametrize(("jwk", "says"), [
    ({"kty": "oct", "k": "AAAA"}, "kty 'oct' is not RSA or EC"),
    ({"kty": "EC", "crv": "P-521"}, "curve 'P-521' is not P-256 or P-384"),
    ({"kty": "RSA", "n": "AQAB"}, "'e'"),
    ({"kty": "RSA", "n": 5, "e": "AQAB"}, "member 'n' is not a base64url number"),
])
def test_bad_jwk_is_one_line(jwk: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        AccountKey.from_jwk(jwk, "private_key.json")
    assert str(info.value) == f"private_key.json: not a private RSA or EC JWK ({says})"


def test_source_reader_one_line_per_fault(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    os.symlink("loop", tmp_path / "loop")
    os.symlink("nowhere", tmp_path / "dangling")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x" * 10)
    done: list[str] = []

    def attempt() -> None:  # a FIFO must be refused, never opened (that would hang)
        for name in ("fifo", "loop", "dangling", "dir", "missing"):
            with pytest.raises(ConfigError) as info:
                source.read(tmp_path / name)
            done.append(str(info.value).removeprefix(f"{tmp_path}/"))
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    assert done == ["fifo: a FIFO, not a file", "loop: a symbolic link loop",
                    "dangling: a symbolic link to nothing", "dir: a directory, not a file",
                    "missing: missing"]
    with pytest.raises(ConfigError, match="file: larger than 5 bytes"):
        source.read(tmp_path / "file", 5)
    assert source.read(tmp_path / "file") == b"x" * 10


def _four(names: list[str]) -> tuple[dict[str, bytes], CA, CA]:
    root = CA("Root")
    inter = CA("Intermediate", parent=root)
    key = new_key()
    cert = inter.issue(key.public_key(), names)
    return ({"cert.pem": cert, "chain.pem": inter.pem, "fullchain.pem": cert + inter.pem,
             "privkey.pem": keytypes.to_pem(key)}, root, inter)


def test_four_files_checked() -> None:
    pems, root, inter = _four(["www.example.com", "example.com"])
    cert = found.verify("SSL/www.example.com", pems, "https://ca/dir")
    assert cert.names == ("www.example.com", "example.com")  # common name first
    assert cert.key_type is KeyType.EC256
    assert cert.meta().order_url == ""
    assert found.verify("d", pems, "u", ["example.com", "www.example.com"]).name == \
        "example.com"
    with_root = {**pems, "chain.pem": inter.pem + root.pem,
                 "fullchain.pem": pems["cert.pem"] + inter.pem + root.pem}
    assert found.verify("d", with_root, "u").bundle.chain_pem.count(b"BEGIN") == 2

    faults = {
        "d/fullchain.pem: not cert.pem followed by chain.pem":
            {**pems, "fullchain.pem": pems["cert.pem"]},
        "d: privkey.pem does not belong to cert.pem":
            {**pems, "privkey.pem": keytypes.to_pem(new_key())},
        "chain does not verify": {**pems, "chain.pem": root.pem,
                                  "fullchain.pem": pems["cert.pem"] + root.pem},
        "d/cert.pem: names example.com www.example.com are not the domains file's "
        "www.example.net": pems,
        "d/privkey.pem: not an unencrypted PEM private key": {**pems, "privkey.pem": b"x"},
    }
    for says, spoiled in faults.items():
        want = ["www.example.net"] if "domains file" in says else None
        reason = found.checked("d", spoiled, "u", want)
        assert isinstance(reason, str)
        assert says in reason
        assert "\n" not in reason


def test_written_config_cannot_be_steered_by_the_source() -> None:
    hostile = 'x"\n[hosts.default]\nreload = ["sh", "-c", "evil"]\n\x1b[2J'
    settings = found.Settings(directory="https://ca/dir", state_dir=Path("/var/lib/cf"),
                              challenge={"webroot": f"/srv/{hostile}"},
                              comments=[hostile], cert_comments={"a.example": [hostile]},
                              certs={"a.example": {"preferred_chain": hostile,
                                                   "key_type": "rsa2048"}})
    migration = found.Migration("certbot", hostile, settings, domain_lines=["a.example"])
    text = render.config_text(migration, Path("/etc/cf/certfleet.toml"),
                              Path("/etc/cf/domains.txt"))
    data = tomllib.loads(text)
    assert set(data) == {"state_dir", "domains", "ca", "challenge", "defaults", "certs"}
    assert data["challenge"] == {"webroot": f"/srv/{hostile}"}
    assert data["certs"]["a.example"]["preferred_chain"] == hostile
    assert data["domains"] == "domains.txt"
    assert "\x1b" not in text
    assert render.domains_text(migration).count(b"\n") == 2


def test_hook_suggestions() -> None:
    assert certbot_map.suggestion("systemctl reload nginx").endswith(
        'reload = ["systemctl", "reload", "nginx"]')
    for shell in ("nginx -t && systemctl reload nginx", "echo $HOME", "a 'b"):
        assert "certfleet runs no shell" in certbot_map.suggestion(shell)


@pytest.mark.parametrize(("spoil", "says"), [
    (lambda p: None, "account key {p}: missing"),
    (os.mkfifo, "account key {p}: a FIFO, not a file"),
    (lambda p: os.symlink(p.name, p), "account key {p}: a symbolic link loop"),
    (lambda p: p.write_bytes(b"-----BEGIN CERTIFICATE-----\n"),
     "account key {p}: not an unencrypted PEM private key"),
])
def test_account_key_faults_stop_the_import(tmp_path: Path, spoil: object,
                                            says: str) -> None:
    """One line on stderr naming the file; nothing written; no CA asked (none exists)."""
    ssl = tmp_path / "SSL"
    ssl.mkdir()
    (tmp_path / "domains.txt").write_text("www.example.com|/srv/certs\n")
    key = ssl / "privkey.pem"
    spoil(key)  # type: ignore[operator]
    state, config = tmp_path / "state", tmp_path / "etc" / "certfleet.toml"
    rc, out, err = run_main(["import", "acme-client", "--domains-file",
                             str(tmp_path / "domains.txt"), "--ssl-dir", str(ssl),
                             "--to-config", str(config), "--state-dir", str(state),
                             "--directory", "https://127.0.0.1:9/dir"])
    assert rc == 1
    assert out == ""
    assert err.startswith("certfleet: " + says.format(p=key))
    assert err.count("\n") == 1
    assert not state.exists()
    assert not config.parent.exists()
