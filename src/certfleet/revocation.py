"""Revocation (RFC 8555 §7.6), by the account key or by the certificate's own key.

Wires ``acme_client`` and ``account``; touches nothing itself.
"""

from __future__ import annotations

from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .account import AccountKey
from .acme_client import AcmeClient
from .errors import ConfigError
from .protocol.b64 import b64url
from .registration import _jwk_signer
from .session import Session

REVOCATION_REASONS = {  # RFC 5280 §5.3.1 CRLReason values ACME CAs accept
    "unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
    "cessationOfOperation": 5,
}

async def revoke(
    session_or_client: Session | AcmeClient, cert_pem: bytes, reason: str = "unspecified",
    cert_key_pem: bytes | None = None,
) -> None:
    """Revoke a certificate (§7.6).

    Signed with the account key (``kid``) by default; with ``cert_key_pem``, with the
    certificate's own private key and a ``jwk`` header instead, which needs no account
    (a bare ``AcmeClient`` will do): the way to revoke a certificate whose account is lost.
    """
    if reason not in REVOCATION_REASONS:
        raise ConfigError(f"unknown revocation reason {reason!r}; choose one of "
                          + ", ".join(REVOCATION_REASONS))
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ConfigError(f"revoke: not a PEM certificate: {exc}") from None
    session = session_or_client if isinstance(session_or_client, Session) else None
    client = session.client if session is not None else cast(AcmeClient, session_or_client)
    if cert_key_pem is not None:
        signer = _jwk_signer(AccountKey.for_certificate(
            cert_key_pem, cert.public_key(), f"serial {cert.serial_number:x}: key"))
    elif session is not None:
        signer = session.signer()
    else:
        raise ConfigError("revoke: without an account, the certificate's private key must "
                          "sign the request")
    directory = await client.directory()
    payload = {"certificate": b64url(cert.public_bytes(serialization.Encoding.DER)),
               "reason": REVOCATION_REASONS[reason]}
    await client.post(directory.revoke_cert, payload, signer)

