"""Domain keys and certificate signing requests (RFC 8555 §7.4, RFC 2986).

Touches nothing but key generation: keys come back as values, and ``store.py`` writes them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from . import keytypes
from .errors import ConfigError
from .keytypes import KeyType
from .names import normalize_identifier

if TYPE_CHECKING:
    from .keytypes import PrivateKey, PublicKey

MAX_CN = 64  # RFC 5280 ub-common-name


def new_domain_key(key_type: KeyType) -> PrivateKey:
    """A fresh key for a certificate (the seed's ``acme-client -N``)."""
    return keytypes.generate(key_type)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_csr(key: PrivateKey, names: Sequence[str]) -> bytes:
    """A DER CSR for ``names`` (already normalized), signed by ``key``.

    Every name goes in subjectAltName; the first also in the CN when it fits, because some
    software still reads it.
    """
    subject = ([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]
               if len(names[0]) <= MAX_CN else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    builder = builder.add_extension(
        x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
    )
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def load_csr(data: bytes, where: str) -> tuple[bytes, tuple[str, ...], PublicKey]:
    """A CSR the operator brings (PEM or DER): its DER, its names, its public key.

    The names are the subjectAltName's DNS names and IP addresses (the CN only when there is
    no SAN), normalized; the signature must verify and the key be of a type certfleet uses.
    Anything wrong with it is one ``ConfigError`` naming ``where``, never library text.
    """
    try:
        return _load_csr(data, where)
    except ConfigError:
        raise
    except Exception:  # cryptography parses lazily; any field may raise on access
        raise ConfigError(f"{where}: unreadable certificate signing request") from None


def _load_csr(data: bytes, where: str) -> tuple[bytes, tuple[str, ...], PublicKey]:
    try:
        csr = (x509.load_pem_x509_csr(data) if data.lstrip().startswith(b"-----")
               else x509.load_der_x509_csr(data))
    except ValueError:  # the library's reason is parser debug text, of no use to an operator
        raise ConfigError(f"{where}: not a certificate signing request (PEM or DER)") from None
    if not csr.is_signature_valid:
        raise ConfigError(f"{where}: the CSR's signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(f"{where}: only RSA and ECDSA keys are supported")
    try:
        keytypes.key_type_of(public_key)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        raw = [*san.get_values_for_type(x509.DNSName),
               *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        raw = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]

    if not raw:
        raise ConfigError(f"{where}: the CSR names no domain")
    try:
        names = tuple(dict.fromkeys(normalize_identifier(n) for n in raw))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return csr.public_bytes(serialization.Encoding.DER), names, public_key
