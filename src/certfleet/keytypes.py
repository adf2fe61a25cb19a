"""Private key types shared by the account key and domain keys. Touches nothing (no files).

Only the key types ACME CAs widely accept: RSA 2048/3072/4096, ECDSA P-256/P-384.

``KeyType`` is part of every configuration (``spec``), so importing this module must not
import ``cryptography``: commands that make or read no key (``status``, ``--version``)
never load it. The functions below import it when called.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, TypeAlias

from .errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class KeyType(enum.Enum):
    """A key algorithm and size, named as on the command line."""

    RSA2048 = "rsa2048"
    RSA3072 = "rsa3072"
    RSA4096 = "rsa4096"
    EC256 = "ec256"
    EC384 = "ec384"

    @classmethod
    def parse(cls, text: str) -> KeyType:
        aliases = {"p256": "ec256", "p384": "ec384", "ecdsa": "ec256", "rsa": "rsa2048",
                   "secp256r1": "ec256", "secp384r1": "ec384"}
        value = aliases.get(text.lower(), text.lower())
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(k.value for k in cls)
            raise ConfigError(f"unknown key type {text!r}; choose one of {choices}") from None

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa")


_RSA_BITS = {KeyType.RSA2048: 2048, KeyType.RSA3072: 3072, KeyType.RSA4096: 4096}


def _curves() -> dict[KeyType, type[ec.EllipticCurve]]:
    from cryptography.hazmat.primitives.asymmetric import ec

    return {KeyType.EC256: ec.SECP256R1, KeyType.EC384: ec.SECP384R1}


def generate(key_type: KeyType) -> PrivateKey:
    """A fresh private key of the given type."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if key_type.is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    return ec.generate_private_key(_curves()[key_type]())


def key_type_of(key: PrivateKey | PublicKey) -> KeyType:
    """The ``KeyType`` of a key; ``ConfigError`` for sizes and curves certfleet does not use."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        for kt, bits in _RSA_BITS.items():
            if key.key_size == bits:
                return kt
        raise ConfigError(f"RSA key of {key.key_size} bits; use 2048, 3072 or 4096")
    for kt, curve in _curves().items():
        if isinstance(key.curve, curve):
            return kt
    raise ConfigError(f"elliptic curve {key.curve.name} is not supported; use P-256 or P-384")


def to_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: the form nginx and every ACME client read."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_pem(data: bytes, where: str) -> PrivateKey:
    """Parse a PEM private key; ``ConfigError`` naming ``where`` if it is not a usable one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{where}: only RSA and ECDSA keys are supported")
    key_type_of(key)
    return key
