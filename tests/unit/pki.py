"""A tiny test PKI built with ``cryptography``: a CA, intermediates and leaves, as PEM."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:  # type aliases only: keytypes imports cryptography when used
    from certfleet.keytypes import PrivateKey, PublicKey

NOT_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
NOT_AFTER = NOT_BEFORE + timedelta(days=90)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    """One 2048-bit RSA key for the whole process: making one takes tens to hundreds of
    milliseconds, and no test that uses this needs two different ones."""
    return rsa.generate_private_key(65537, 2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class CA:
    """A certificate authority: its key and its (self- or parent-signed) certificate."""

    def __init__(self, cn: str = "Test CA", parent: CA | None = None,
                 key: PrivateKey | None = None) -> None:
        self.key = key or new_key()
        self.name = _name(cn)
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(parent.name if parent else self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_BEFORE + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ski, critical=False)
        )
        signer = parent.key if parent else self.key
        self.cert = builder.sign(signer, hashes.SHA256())

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, public_key: PublicKey, names: Sequence[str], serial: int = 4242) -> bytes:
        """A leaf for ``names`` (all in subjectAltName, first also as CN), as PEM."""
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]) if names else _name("no names"))
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@functools.cache
def _versions_ca() -> CA:
    return CA("Stored Versions Test CA")


def version_files(name: str, serial: int = 0x1234) -> dict[str, bytes]:
    """The four files of a stored version of ``name``, as a deploy checks them: a key, its
    certificate (``serial``) from a test CA, the chain, and the two as ``fullchain.pem``."""
    from certfleet.keytypes import to_pem

    ca, key = _versions_ca(), new_key()
    cert = ca.issue(key.public_key(), [name], serial=serial)
    return {"cert.pem": cert, "chain.pem": ca.pem, "fullchain.pem": cert + ca.pem,
            "privkey.pem": to_pem(key)}
