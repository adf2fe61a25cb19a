"""JWK, JWK thumbprints (RFC 7638) and flattened JWS (RFC 7515) as ACME uses them (RFC 8555 §6.2).

Touches nothing. Signing itself is done by the holder of the key (``account.py``): this
module builds the protected header and the signing input, and assembles the result, so
the key never has to be passed here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from .b64 import b64url

JsonObject = dict[str, Any]

# RFC 7638 §3.2: only the required members, in lexicographic order.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}

HMAC_ALGORITHMS: Mapping[str, Callable[..., Any]] = {
    "HS256": hashlib.sha256,
    "HS384": hashlib.sha384,
    "HS512": hashlib.sha512,
}


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON with sorted keys, as RFC 7638 requires for thumbprints."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 JWK thumbprint, base64url encoded."""
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(str(kty))
    if members is None:
        raise ValueError(f"unsupported JWK key type {kty!r}")
    required = {name: jwk[name] for name in members}
    return b64url(hashlib.sha256(canonical_json(required)).digest())


def protected_header(
    alg: str, url: str, nonce: str | None, *, kid: str | None = None,
    jwk: Mapping[str, Any] | None = None,
) -> JsonObject:
    """The protected header of RFC 8555 §6.2: exactly one of ``kid`` and ``jwk``."""
    if (kid is None) == (jwk is None):
        raise ValueError("exactly one of kid and jwk must be given")
    header: JsonObject = {"alg": alg, "url": url}
    if nonce is not None:
        header["nonce"] = nonce
    if kid is not None:
        header["kid"] = kid
    else:
        header["jwk"] = dict(jwk or {})
    return header


def encode_payload(payload: Mapping[str, Any] | None) -> str:
    """The JWS payload: JSON, or the empty string for POST-as-GET (RFC 8555 §6.3)."""
    if payload is None:
        return ""
    return b64url(json.dumps(payload, separators=(",", ":")).encode("utf-8"))


def signing_input(header: Mapping[str, Any], payload_b64: str) -> tuple[str, bytes]:
    """Return the encoded protected header and the bytes to sign."""
    protected_b64 = b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    return protected_b64, f"{protected_b64}.{payload_b64}".encode("ascii")


def flattened(protected_b64: str, payload_b64: str, signature: bytes) -> JsonObject:
    """Assemble the flattened JSON serialization sent as ``application/jose+json``."""
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64url(signature)}


def mac_jws(
    alg: str, mac_key: bytes, header: Mapping[str, Any], payload_b64: str
) -> JsonObject:
    """An HMAC-signed JWS, as used for external account binding (RFC 8555 §7.3.4)."""
    digest = HMAC_ALGORITHMS.get(alg)
    if digest is None:
        raise ValueError(f"unsupported MAC algorithm {alg!r}; use HS256, HS384 or HS512")
    protected_b64, to_sign = signing_input(header, payload_b64)
    signature = hmac.new(mac_key, to_sign, digest).digest()
    return flattened(protected_b64, payload_b64, signature)
