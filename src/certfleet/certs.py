"""Parse and verify what the CA issued before anything is stored. Touches nothing.

Checks (RFC 8555 §7.4.2 leaves them to the client): the chain is PEM certificates only,
the leaf's public key is the CSR key, its names are exactly the names requested, and each
certificate is signed by the next one the CA sent.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from .errors import CertificateError, safe_text
from .protocol.frozen import frozen

if TYPE_CHECKING:
    from .keytypes import PublicKey

MAX_CHAIN = 10
_SHA256 = hashes.SHA256()
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----\r?\n?"
)


@frozen
class Bundle:
    """A verified certificate and its chain, in the PEM files nginx wants."""

    cert_pem: bytes
    chain_pem: bytes
    names: tuple[str, ...]
    serial: int
    not_before: datetime
    not_after: datetime
    issuer: str
    aki: bytes | None

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem


def split_pem_chain(data: bytes, where: str) -> list[x509.Certificate]:
    """Split ``application/pem-certificate-chain`` into certificates, leaf first."""
    text = data.replace(b"\r\n", b"\n").strip() + b"\n"
    blocks = list(_PEM_BLOCK.finditer(text))
    rest = _PEM_BLOCK.sub(b"", text).strip()
    if rest or not blocks:
        raise CertificateError(f"{where}: not a PEM certificate chain")
    if len(blocks) > MAX_CHAIN:
        raise CertificateError(f"{where}: chain of {len(blocks)} certificates is too long")
    certs = []
    for block in blocks:
        if block.group(1) != b"CERTIFICATE":
            raise CertificateError(f"{where}: chain holds a {block.group(1).decode()} block")
        try:
            certs.append(x509.load_pem_x509_certificate(block.group(0)))
        except (ValueError, x509.InvalidVersion) as exc:
            raise CertificateError(f"{where}: unreadable certificate: "
                                   f"{safe_text(str(exc))}") from None
    return certs


def cert_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and IP addresses in the subjectAltName, lowercased."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def _same_key(a: PublicKey, b: object) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    try:
        return bool(a.public_bytes(der, fmt) == b.public_bytes(der, fmt))  # type: ignore[attr-defined]
    except AttributeError:
        return False


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.key_identifier


def verify_issued(
    pem: bytes, public_key: PublicKey, names: Sequence[str], where: str
) -> Bundle:
    """Check the chain the CA returned against the request; return the ``Bundle`` to store."""
    try:
        return _verify(pem, public_key, names, where)
    except CertificateError:
        raise
    except Exception as exc:
        # cryptography parses fields lazily, on access, and a hostile certificate can make
        # that raise ValueError, DuplicateExtension, UnsupportedGeneralNameType and more:
        # whatever it is, it is this certificate's fault, reported as such.
        raise CertificateError(f"{where}: malformed certificate: "
                               f"{safe_text(str(exc) or type(exc).__name__)}") from None


def _verify(pem: bytes, public_key: PublicKey, names: Sequence[str], where: str) -> Bundle:
    certs = split_pem_chain(pem, where)
    leaf = certs[0]
    if not _same_key(public_key, leaf.public_key()):
        raise CertificateError(f"{where}: certificate public key does not match the CSR key")
    got = sorted(set(cert_names(leaf)))
    want = sorted({_normal(n) for n in names})
    if got != want:
        raise CertificateError(f"{where}: certificate names {got} differ from requested {want}")
    for child, parent in itertools.pairwise(certs):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateError(
                f"{where}: chain does not verify: {child.subject.rfc4514_string()} is not "
                f"signed by {parent.subject.rfc4514_string()} ({exc or 'bad signature'})"
            ) from None
    if len(certs) == 1:
        raise CertificateError(f"{where}: the CA sent no issuer certificate")
    pem_of = [c.public_bytes(serialization.Encoding.PEM) for c in certs]
    return Bundle(
        cert_pem=pem_of[0],
        chain_pem=b"".join(pem_of[1:]),
        names=tuple(_normal(n) for n in names),
        serial=leaf.serial_number,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issuer=leaf.issuer.rfc4514_string(),
        aki=_aki(leaf),
    )


def verify_kept(cert_pem: bytes, chain_pem: bytes, fullchain_pem: bytes,
                public_key: PublicKey, where: str) -> Bundle:
    """Check the four files another client kept for one certificate (its ``cert.pem``,
    ``chain.pem``, ``fullchain.pem`` and the private key's public half) as ``verify_issued``
    checks what a CA sent: the key is the certificate's, each certificate is signed by the
    next, and ``fullchain.pem`` is ``cert.pem`` then ``chain.pem``. The names are the
    certificate's own (the caller compares them with what it wants)."""
    try:
        leaf = split_pem_chain(cert_pem, f"{where}/cert.pem")
        chain = split_pem_chain(chain_pem, f"{where}/chain.pem")
        full = split_pem_chain(fullchain_pem, f"{where}/fullchain.pem")
        if len(leaf) != 1:
            raise CertificateError(f"{where}/cert.pem: {len(leaf)} certificates, not one")
        if not _same_key(public_key, leaf[0].public_key()):
            raise CertificateError(f"{where}: privkey.pem does not belong to cert.pem")
        if [c.fingerprint(_SHA256) for c in full] != \
                [c.fingerprint(_SHA256) for c in leaf + chain]:
            raise CertificateError(f"{where}/fullchain.pem: not cert.pem followed by "
                                   "chain.pem")
        names = cert_names(leaf[0])
        if not names:
            raise CertificateError(f"{where}/cert.pem: no DNS names or IP addresses")
    except CertificateError:
        raise
    except Exception as exc:  # lazily parsed fields: as in verify_issued
        raise CertificateError(f"{where}: malformed certificate: "
                               f"{safe_text(str(exc) or type(exc).__name__)}") from None
    return verify_issued(fullchain_pem, public_key, names, where)


def load_leaf(pem: bytes, where: str) -> x509.Certificate:
    """The first certificate of a stored PEM file."""
    return split_pem_chain(pem, where)[0]
