"""Revocation (RFC 8555 §7.6), by the account key or by the certificate's own key.

Wires ``acme_client``, ``account_key``, ``registration`` and ``store``; touches nothing
itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .account_key import AccountKey
from .acme_client import AcmeClient, Signer
from .errors import ConfigError
from .keytypes import KeyType
from .protocol.b64 import b64url
from .registration import open_account
from .session import Session
from .store import CertStore, StoredCert

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
    signer: Signer
    if cert_key_pem is not None:
        signer = AccountKey.for_certificate(
            cert_key_pem, cert.public_key(), f"serial {cert.serial_number:x}: key").sign
    elif session is not None:
        signer = session.signer()
    else:
        raise ConfigError("revoke: without an account, the certificate's private key must "
                          "sign the request")
    directory = await client.directory()
    payload = {"certificate": b64url(cert.public_bytes(serialization.Encoding.DER)),
               "reason": REVOCATION_REASONS[reason]}
    await client.post(directory.revoke_cert, payload, signer)


async def revoke_stored(client: AcmeClient, store: CertStore, stored: StoredCert, reason: str,
                        with_cert_key: bool = False) -> None:
    """Revoke the active version of a stored certificate and record it in its state.

    What is about to happen is recorded first: a revocation the state cannot record is not
    sent, and one whose answer was lost still counts (the next run replaces the
    certificate). The caller holds the certificate's lock.
    """
    cert_pem = store.read_file(stored, "cert.pem")
    serial = stored.meta.serial
    store.update_state(stored.name, lambda state: state.revoking(serial, datetime.now(UTC)))
    if with_cert_key:  # a --csr version has no privkey.pem: read_file says so
        await revoke(client, cert_pem, reason,
                     cert_key_pem=store.read_file(stored, "privkey.pem"))
    else:
        session = await open_account(client, store, KeyType.EC256, [])
        await revoke(session, cert_pem, reason)
    store.update_state(stored.name, lambda state: state.revoked(serial, datetime.now(UTC)))
