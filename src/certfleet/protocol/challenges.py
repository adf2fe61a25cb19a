"""Key authorizations and challenge responses (RFC 8555 §8, RFC 8737). Touches nothing."""

from __future__ import annotations

from .b64 import b64url

# hashlib is imported where a digest is made: the configuration reads CHALLENGE_TYPES from
# here, and `status` or a no-op `run` makes no digest (start-up time).

HTTP_01 = "http-01"
DNS_01 = "dns-01"
TLS_ALPN_01 = "tls-alpn-01"
CHALLENGE_TYPES = (HTTP_01, DNS_01, TLS_ALPN_01)
HTTP_01_PREFIX = "/.well-known/acme-challenge/"


def key_authorization(token: str, account_thumbprint: str) -> str:
    """RFC 8555 §8.1: ``token || '.' || base64url(Thumbprint(accountKey))``."""
    return f"{token}.{account_thumbprint}"


def dns01_txt_value(key_auth: str) -> str:
    """RFC 8555 §8.4: the TXT record value is base64url(SHA-256(key authorization))."""
    import hashlib  # noqa: PLC0415 - see above

    return b64url(hashlib.sha256(key_auth.encode("ascii")).digest())


def dns01_record_name(name: str) -> str:
    """RFC 8555 §8.4: ``_acme-challenge.`` before the name (a wildcard's ``*.`` dropped)."""
    return "_acme-challenge." + name.removeprefix("*.")


def tls_alpn01_digest(key_auth: str) -> bytes:
    """RFC 8737 §3: SHA-256 of the key authorization, for the acmeIdentifier extension."""
    import hashlib  # noqa: PLC0415 - see above

    return hashlib.sha256(key_auth.encode("ascii")).digest()
