"""The only holder of the account key: load or create it, sign JWS with it, give out its JWK.

Touches the account key file and nothing else. Other modules get finished JWS objects and
the public JWK/thumbprint, never the key, so signing could move to another process.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from . import fsutil, keytypes
from .errors import ConfigError, StoreError
from .keytypes import KeyType, PrivateKey
from .protocol import jws
from .protocol.b64 import int_to_b64url

_EC = {KeyType.EC256: ("ES256", "P-256", hashes.SHA256(), 32),
       KeyType.EC384: ("ES384", "P-384", hashes.SHA384(), 48)}


class AccountKey:
    """An ACME account key pair; signs RFC 8555 §6.2 requests."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.key_type = keytypes.key_type_of(key)
        self.jwk = _public_jwk(key, self.key_type)
        self.thumbprint = jws.thumbprint(self.jwk)
        self.alg = _EC[self.key_type][0] if self.key_type in _EC else "RS256"

    @classmethod
    def load_or_create(cls, path: Path, key_type: KeyType) -> tuple[AccountKey, bool]:
        """Load the key at ``path``, or create one of ``key_type`` there (0600 from creation).

        Returns the key and whether it was created (the seed's ``acme-client -n``).
        """
        if path.exists() or path.is_symlink():
            return cls(_load(path)), False
        key = keytypes.generate(key_type)
        fsutil.write_atomic(path, keytypes.to_pem(key), mode=0o600)
        return cls(key), True

    @classmethod
    def generate(cls, key_type: KeyType) -> AccountKey:
        """A new key held only in memory (a rollover target before it is saved)."""
        return cls(keytypes.generate(key_type))

    def save_new(self, path: Path) -> None:
        """Write this key to ``path`` atomically, 0600 from creation."""
        fsutil.write_atomic(path, keytypes.to_pem(self._key), mode=0o600)

    def sign(
        self, url: str, nonce: str | None, payload: Mapping[str, Any] | None,
        kid: str | None = None,
    ) -> jws.JsonObject:
        """A flattened JWS over ``payload`` (None: POST-as-GET) for ``url``.

        With ``kid`` the header names the account URL; without it carries the JWK, as
        newAccount and revocation by this key require (RFC 8555 §6.2).
        """
        header = jws.protected_header(
            self.alg, url, nonce, kid=kid, jwk=None if kid else self.jwk
        )
        payload_b64 = jws.encode_payload(payload)
        protected_b64, to_sign = jws.signing_input(header, payload_b64)
        return jws.flattened(protected_b64, payload_b64, self._raw_signature(to_sign))

    def _raw_signature(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        _, _, digest, size = _EC[self.key_type]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        # RFC 7518 §3.4: JWS wants fixed-size r || s, not DER.
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _public_jwk(key: PrivateKey, key_type: KeyType) -> dict[str, str]:
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {"e": int_to_b64url(numbers.e), "kty": "RSA", "n": int_to_b64url(numbers.n)}
    point = key.public_key().public_numbers()
    _, crv, _, size = _EC[key_type]
    return {"crv": crv, "kty": "EC", "x": int_to_b64url(point.x, size),
            "y": int_to_b64url(point.y, size)}


def _load(path: Path) -> PrivateKey:
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read account key: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{path}: account key is not a regular file (symlinks are refused)")
    if info.st_mode & 0o077:
        raise ConfigError(f"{path}: account key is readable by others (mode "
                          f"{stat.S_IMODE(info.st_mode):o}); chmod 600 it first")
    return keytypes.load_pem(fsutil.read_small(path), str(path))
