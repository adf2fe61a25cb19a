"""Domain keys and certificate signing requests (RFC 8555 §7.4, RFC 2986).

Touches nothing but key generation: keys come back as values, and ``store.py`` writes them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from . import keytypes
from .keytypes import KeyType, PrivateKey

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
