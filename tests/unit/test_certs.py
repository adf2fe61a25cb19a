"""certfleet.keys.make_csr and certfleet.certs: what we ask for and what we accept back."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certfleet.certs import cert_names, load_leaf, split_pem_chain, verify_issued
from certfleet.errors import CertificateError
from certfleet.keys import make_csr, new_domain_key
from certfleet.keytypes import KeyType, to_pem

from .pki import CA, NOT_AFTER, NOT_BEFORE, new_key

NAMES = ["www.example.com", "example.com"]
VALID = NOT_BEFORE + timedelta(days=1)  # within the test leaves' validity


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA("Test Root")


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return new_key()


# -- CSR ------------------------------------------------------------------------------------

def test_make_csr() -> None:
    key = new_domain_key(KeyType.EC256)
    csr = x509.load_der_x509_csr(make_csr(key, NAMES))
    assert csr.is_signature_valid
    assert csr.public_key() == key.public_key()
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == NAMES
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["www.example.com"]


def test_make_csr_long_first_name_has_no_cn() -> None:
    long_name = "a" * 60 + ".example.com"
    csr = x509.load_der_x509_csr(make_csr(new_key(), [long_name]))
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [long_name]


def test_make_csr_ip_address() -> None:
    csr = x509.load_der_x509_csr(make_csr(new_key(), ["example.com", "192.0.2.1"]))
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.1")]


def test_csr_to_verified_bundle(ca: CA) -> None:
    key = new_domain_key(KeyType.EC256)
    csr = x509.load_der_x509_csr(make_csr(key, NAMES))
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    leaf = ca.issue(public_key, san.get_values_for_type(x509.DNSName))
    bundle = verify_issued(leaf + ca.pem, key.public_key(), NAMES, "test", VALID)
    assert bundle.names == tuple(NAMES)


# -- verify_issued: good ------------------------------------------------------------------

def test_good_chain(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES, serial=0x1234)
    bundle = verify_issued(leaf + ca.pem, key.public_key(), NAMES, "test", VALID)
    assert bundle.cert_pem == leaf
    assert bundle.chain_pem == ca.pem
    assert bundle.fullchain_pem == leaf + ca.pem
    assert bundle.names == ("www.example.com", "example.com")
    assert bundle.serial == 0x1234
    assert bundle.not_after == NOT_AFTER
    assert bundle.issuer == "CN=Test Root"
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert bundle.aki == ski.digest


def test_good_chain_with_intermediate(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    inter = CA("Test Intermediate", parent=ca)
    leaf = inter.issue(key.public_key(), NAMES)
    bundle = verify_issued(leaf + inter.pem + ca.pem, key.public_key(), NAMES, "t", VALID)
    assert bundle.chain_pem == inter.pem + ca.pem


def test_names_compared_as_sets_case_insensitive(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES)
    verify_issued(leaf + ca.pem, key.public_key(), ["EXAMPLE.com", "www.example.com"], "t",
                  VALID)


def test_ip_names_compared_as_addresses(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), ["example.com", "2001:db8::1"])
    bundle = verify_issued(leaf + ca.pem, key.public_key(), ["example.com", "2001:0db8:0::1"],
                           "t", VALID)
    assert bundle.names == ("example.com", "2001:db8::1")


def test_crlf_chain(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES)
    data = (leaf + ca.pem).replace(b"\n", b"\r\n")
    certs = split_pem_chain(data, "t")
    assert [c.public_bytes(serialization.Encoding.PEM) for c in certs] == [leaf, ca.pem]
    verify_issued(data, key.public_key(), NAMES, "t", VALID)


def test_cert_names_and_load_leaf(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), ["WWW.Example.com", "192.0.2.7"])
    assert cert_names(load_leaf(leaf + ca.pem, "t")) == ("www.example.com", "192.0.2.7")
    assert cert_names(ca.cert) == ()


# -- verify_issued: refused ------------------------------------------------------------------

def test_wrong_key(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(new_key().public_key(), NAMES)
    with pytest.raises(CertificateError, match="public key does not match"):
        verify_issued(leaf + ca.pem, key.public_key(), NAMES, "t")


def test_extra_name(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), [*NAMES, "evil.example.net"])
    with pytest.raises(CertificateError, match="names"):
        verify_issued(leaf + ca.pem, key.public_key(), NAMES, "t")


def test_missing_name(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES[:1])
    with pytest.raises(CertificateError, match="names"):
        verify_issued(leaf + ca.pem, key.public_key(), NAMES, "t")


def test_no_san_at_all(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), [])
    with pytest.raises(CertificateError, match="names"):
        verify_issued(leaf + ca.pem, key.public_key(), NAMES, "t")


def test_chain_from_another_ca(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES)
    other = CA("Other CA")
    with pytest.raises(CertificateError, match="chain does not verify"):
        verify_issued(leaf + other.pem, key.public_key(), NAMES, "t")


def test_chain_same_name_different_key(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES)
    impostor = CA("Test Root")  # same subject, another key: only the signature tells
    with pytest.raises(CertificateError, match="chain does not verify"):
        verify_issued(leaf + impostor.pem, key.public_key(), NAMES, "t")


def test_chain_wrong_order(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    inter = CA("Test Intermediate", parent=ca)
    leaf = inter.issue(key.public_key(), NAMES)
    with pytest.raises(CertificateError, match="chain does not verify"):
        verify_issued(leaf + ca.pem + inter.pem, key.public_key(), NAMES, "t")


def test_lone_leaf(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES)
    with pytest.raises(CertificateError, match="no issuer certificate"):
        verify_issued(leaf, key.public_key(), NAMES, "t")


@pytest.mark.parametrize(
    "junk",
    [b"", b"hello", b"<html>500 Internal Server Error</html>",
     b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n"],
)
def test_non_pem_junk(key: ec.EllipticCurvePrivateKey, junk: bytes) -> None:
    with pytest.raises(CertificateError, match="not a PEM certificate chain"):
        verify_issued(junk, key.public_key(), NAMES, "t")


def test_junk_around_blocks(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES)
    with pytest.raises(CertificateError, match="not a PEM certificate chain"):
        verify_issued(leaf + b"trailing junk\n" + ca.pem, key.public_key(), NAMES, "t")


def test_unreadable_certificate_block(key: ec.EllipticCurvePrivateKey) -> None:
    bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateError, match="unreadable certificate"):
        verify_issued(bad, key.public_key(), NAMES, "t")


def test_private_key_block_refused(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES)
    with pytest.raises(CertificateError, match="PRIVATE KEY block"):
        verify_issued(leaf + ca.pem + to_pem(key), key.public_key(), NAMES, "t")


def test_more_than_ten_certificates(ca: CA, key: ec.EllipticCurvePrivateKey) -> None:
    leaf = ca.issue(key.public_key(), NAMES)
    assert len(split_pem_chain(leaf + ca.pem * 9, "t")) == 10
    with pytest.raises(CertificateError, match="too long"):
        verify_issued(leaf + ca.pem * 10, key.public_key(), NAMES, "t")


def test_error_names_where(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(CertificateError, match=r"^https://ca/cert/1: "):
        verify_issued(b"junk", key.public_key(), NAMES, "https://ca/cert/1")
