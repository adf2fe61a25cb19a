"""Issue, renew and revoke single certificates against a real Pebble (-strict)."""

from __future__ import annotations

import itertools
import os
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.cli import run_shown

from .conftest import Certfleet, tree, webroot_server

pytestmark = pytest.mark.integration


def _current(state: Path, name: str) -> Path:
    return state / "certs" / name / "current"


def _check_files(state: Path, name: str, names: list[str]) -> x509.Certificate:
    base = state / "certs" / name
    key = serialization.load_pem_private_key((base / "privkey.pem").read_bytes(), None)
    chain = x509.load_pem_x509_certificates((base / "fullchain.pem").read_bytes())
    leaf = chain[0]
    assert (base / "cert.pem").read_bytes() + (base / "chain.pem").read_bytes() == (
        base / "fullchain.pem"
    ).read_bytes()
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    real = (base / "current").resolve()
    assert stat.S_IMODE(os.stat(real / "privkey.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o700
    return leaf


@pytest.mark.parametrize(("key_type", "key_class"), [
    ("ec256", ec.EllipticCurvePrivateKey),
    ("ec384", ec.EllipticCurvePrivateKey),
    ("rsa2048", rsa.RSAPrivateKey),
])
def test_issue_with_each_key_type(certfleet: Certfleet, key_type: str, key_class: type) -> None:
    names = [f"{key_type}.example.com", f"www.{key_type}.example.com"]
    rc, out = certfleet.issue(*names, "--key-type", key_type)
    assert rc == 0, out
    assert out.startswith(f"{names[0]}: issued (expires ")
    _check_files(certfleet.state, names[0], names)
    key = serialization.load_pem_private_key(
        (certfleet.state / "certs" / names[0] / "privkey.pem").read_bytes(), None
    )
    assert isinstance(key, key_class)


def test_rsa_account_key(certfleet: Certfleet) -> None:
    rc, out = certfleet.issue("rsa-account.example.com", "--account-key-type", "rsa3072")
    assert rc == 0, out
    account_keys = list((certfleet.state / "accounts").glob("*/account.key"))
    key = serialization.load_pem_private_key(account_keys[0].read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072


def test_second_issue_is_not_due_and_force_renews(certfleet: Certfleet) -> None:
    name = "renew.example.com"
    assert certfleet.issue(name)[0] == 0
    first_serial = _check_files(certfleet.state, name, [name]).serial_number
    rc, out = certfleet.issue(name)
    assert rc == 2
    assert out.startswith(f"{name}: not due until 20")
    rc, out = certfleet.issue(name, "--force")
    assert rc == 0, out
    assert f"{name}: renewed (expires " in out
    assert os.readlink(_current(certfleet.state, name)) == "versions/2"
    old = certfleet.state / "certs" / name / "versions" / "1" / "cert.pem"
    assert x509.load_pem_x509_certificate(old.read_bytes()).serial_number == first_serial
    assert _check_files(certfleet.state, name, [name]).serial_number != first_serial


def test_changed_names_are_due(certfleet: Certfleet) -> None:
    name = "grow.example.com"
    assert certfleet.issue(name)[0] == 0
    rc, out = certfleet.issue(name, "extra.grow.example.com")
    assert rc == 0, out
    _check_files(certfleet.state, name, [name, "extra.grow.example.com"])


def test_failed_validation_keeps_previous_version(pebble: object, certfleet: Certfleet) -> None:
    name, bad = "fails.example.com", "bad.fails.example.com"
    assert certfleet.issue(name)[0] == 0
    before = tree(certfleet.state / "certs")
    # The new alternative name points where nothing answers, so its validation fails
    # (a fresh name: Pebble cannot reuse an earlier authorization for it).
    pebble.add_a(bad, "127.0.0.2")  # type: ignore[attr-defined]
    try:
        rc, out = certfleet.issue(name, bad)
    finally:
        pebble.clear_a(bad)  # type: ignore[attr-defined]
    assert rc == 1
    assert out.startswith(f"{name}: failed: {bad}: validation failed: connection: ")
    assert "127.0.0.2" in out
    assert out.count("\n") == 1
    assert os.readlink(_current(certfleet.state, name)) == "versions/1"
    after = tree(certfleet.state / "certs")
    assert [p for p in after if p not in before] == [f"{name}/pending",
                                                      f"{name}/pending/privkey.pem"]
    assert stat.S_IMODE(os.stat(certfleet.state / "certs" / name / "pending" /
                                "privkey.pem").st_mode) == 0o600
    _check_files(certfleet.state, name, [name])


def test_webroot_writes_and_removes_tokens(pebble: object, certfleet: Certfleet,
                                           tmp_path: Path) -> None:
    webroot = tmp_path / "webroot"
    webroot.mkdir()
    with webroot_server(webroot, pebble.http_port) as served:  # type: ignore[attr-defined]
        rc, out = certfleet.run("issue", "webroot.example.com", "--webroot", str(webroot))
    assert rc == 0, out
    assert served, "the CA never fetched a token from the webroot"
    assert list(webroot.iterdir()) == []


def test_revoke_shows_in_pebble(pebble: object, certfleet: Certfleet) -> None:
    name = "revoke.example.com"
    assert certfleet.issue(name)[0] == 0
    serial = _check_files(certfleet.state, name, [name]).serial_number
    assert pebble.cert_status(serial)["Status"] == "Valid"  # type: ignore[attr-defined]
    rc, out = certfleet.run("revoke", name, "--reason", "keyCompromise")
    assert rc == 0, out
    assert pebble.cert_status(serial)["Status"] == "Revoked"  # type: ignore[attr-defined]
    rc, out = certfleet.run("status")
    assert "REVOKED" in out
    rc, out = certfleet.issue(name)  # a revoked certificate is due at once
    assert rc == 0, out


def test_tls_is_verified(certfleet: Certfleet) -> None:
    """Without --ca-bundle, Pebble's certificate (from its own test root) is refused, and
    the line says so: a failure for any other reason would pass on the exit code alone."""
    url = certfleet.lab.directory_url  # type: ignore[attr-defined]
    rc, out = run_shown(["issue", "--state-dir", str(certfleet.state), "--directory", url,
                         *certfleet.listen(), "tls.example.com"])
    assert rc == 1
    assert out.startswith(f"tls.example.com: failed: {url}: TLS certificate not trusted: "
                          "unable to get local issuer certificate"), out
    assert not (certfleet.state / "certs" / "tls.example.com" / "current").exists()


def test_status_json(certfleet: Certfleet) -> None:
    import json

    assert certfleet.issue("status.example.com", "alt.status.example.com")[0] == 0
    _rc, out = certfleet.run("status", "--json")
    rows = json.loads(out)
    assert rows[0]["names"] == ["status.example.com", "alt.status.example.com"]
    assert rows[0]["renew_at"] < rows[0]["not_after"]


@pytest.mark.parametrize("reuse", ["0", "100"])
def test_authorization_reuse(pebble_lab_factory: object, tmp_path: Path, reuse: str) -> None:
    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": reuse})  # type: ignore[operator]
    cf = Certfleet(lab, tmp_path / "state")
    assert cf.issue("reuse.example.com")[0] == 0
    # A webroot nobody serves: a second order succeeds only if its authorization is reused.
    unserved = tmp_path / "unserved"
    unserved.mkdir()
    if reuse == "0":
        # Pebble (2.10) reuses a valid authorization for 1 order in 100 even at 0 (it
        # makes a new one when rand.Intn(100) > percentage): a new account has none.
        shutil.rmtree(tmp_path / "state" / "accounts")
    rc, out = cf.run("issue", "reuse.example.com", "--force", "--webroot", str(unserved))
    if reuse == "100":
        assert rc == 0, out
    else:
        assert rc == 1
        assert "reuse.example.com: validation failed" in out


# Pebble rejects nonces at random (Go's math/rand, which no setting seeds), so these tests
# are random by Pebble's choice, not the suite's: the rates are chosen so that the client
# giving up (101 rejections of one request in a row) is out of reach. At 50 %: 0.5^101,
# 4e-31 per request; at 80 %: 0.8^101, 2e-10 per request, about 10 requests an issuance.
# (At 90 % it would be 2e-5 per request: a test failing about once in 4,000 runs.)


def test_nonce_rejection_storm(pebble_lab_factory: object, tmp_path: Path) -> None:
    lab = pebble_lab_factory(env={"PEBBLE_WFE_NONCEREJECT": "50"})  # type: ignore[operator]
    cf = Certfleet(lab, tmp_path / "state")
    for i in range(20):
        rc, out = cf.issue(f"nonce{i}.example.com")
        assert rc == 0, out


def test_ip_address_certificate(certfleet: Certfleet) -> None:
    """RFC 8738: an IP identifier, validated over http-01 (Host is the address)."""
    rc, out = certfleet.issue("127.0.0.1")
    assert rc == 0, out
    leaf = x509.load_pem_x509_certificate(
        (certfleet.state / "certs" / "127.0.0.1" / "cert.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == []


def test_bring_your_own_csr(certfleet: Certfleet, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import hashes

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName(
               [x509.DNSName("csr.example.com"), x509.DNSName("WWW.csr.example.com")]),
               critical=False)
           .sign(key, hashes.SHA256()))
    path = tmp_path / "request.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    rc, out = certfleet.issue("--csr", str(path))
    assert rc == 0, out
    assert out.startswith("csr.example.com: issued (expires ")
    base = certfleet.state / "certs" / "csr.example.com"
    leaf = x509.load_pem_x509_certificate((base / "cert.pem").read_bytes())
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = sorted(n.lower() for n in san.get_values_for_type(x509.DNSName))
    assert names == ["csr.example.com", "www.csr.example.com"]
    assert not (base / "privkey.pem").exists()
    assert not (base / "privkey.pem").is_symlink()
    assert not list(base.rglob("privkey.pem"))
    assert not (base / "pending").exists()
    assert certfleet.issue("--csr", str(path))[0] == 2
    path.write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\nnonsense\n"
                     b"-----END CERTIFICATE REQUEST-----\n")
    rc, out = certfleet.issue("--csr", str(path))
    assert rc == 1
    assert f"{path}: not a certificate signing request" in out


def test_nonce_rejection_80_percent_still_issues(pebble_lab_factory: object,
                                                  tmp_path: Path) -> None:
    lab = pebble_lab_factory(env={"PEBBLE_WFE_NONCEREJECT": "80"})  # type: ignore[operator]
    cf = Certfleet(lab, tmp_path / "state")
    rc, out = cf.issue("storm80.example.com")
    assert rc == 0, out
    assert "Configured to reject 80% of good nonces" in lab.log_text()  # type: ignore[attr-defined]


def test_nonce_rejection_always_fails_cleanly(pebble_lab_factory: object,
                                              tmp_path: Path) -> None:
    lab = pebble_lab_factory(env={"PEBBLE_WFE_NONCEREJECT": "100"})  # type: ignore[operator]
    cf = Certfleet(lab, tmp_path / "state")
    rc, out = cf.issue("storm100.example.com")
    assert rc == 1
    assert "badNonce 101 times in a row; giving up" in out
    attempts = lab.log_text().count("POST /sign-me-up")  # type: ignore[attr-defined]
    assert attempts == 101


def test_key_reuse_is_a_choice(certfleet: Certfleet) -> None:
    name = "reuse-key.example.com"
    base = certfleet.state / "certs" / name
    assert certfleet.issue(name)[0] == 0
    first = (base / "privkey.pem").read_bytes()
    assert certfleet.issue(name, "--force")[0] == 0
    second = (base / "privkey.pem").read_bytes()
    assert second != first                      # a new key is the default
    assert certfleet.issue(name, "--force", "--reuse-key")[0] == 0
    assert (base / "privkey.pem").read_bytes() == second
    assert os.readlink(base / "current") == "versions/3"
