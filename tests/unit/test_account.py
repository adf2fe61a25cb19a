"""certfleet.account.AccountKey: JWS signatures that verify, and a key file kept private."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from certfleet.account_key import AccountKey
from certfleet.errors import ConfigError, StoreError
from certfleet.keytypes import KeyType
from certfleet.protocol import jws
from certfleet.protocol.b64 import b64url_decode

# key type -> (alg, signature length or None for RSA, curve, hash)
CASES = {
    KeyType.EC256: ("ES256", 64, ec.SECP256R1(), hashes.SHA256()),
    KeyType.EC384: ("ES384", 96, ec.SECP384R1(), hashes.SHA384()),
    KeyType.RSA2048: ("RS256", 256, None, hashes.SHA256()),
}

_KEYS: dict[KeyType, AccountKey] = {}


def account_key(key_type: KeyType) -> AccountKey:
    """One generated key per type for the whole module (RSA generation is slow)."""
    if key_type not in _KEYS:
        _KEYS[key_type] = AccountKey.generate(key_type)
    return _KEYS[key_type]


def _b64int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def verify(jwk: dict[str, str], signed: dict[str, str], key_type: KeyType) -> None:
    """Verify a flattened JWS with a public key rebuilt from the JWK alone."""
    _alg, sig_len, curve, digest = CASES[key_type]
    data = f"{signed['protected']}.{signed['payload']}".encode()
    sig = b64url_decode(signed["signature"])
    assert len(sig) == sig_len
    if curve is None:
        assert jwk["kty"] == "RSA"
        pub = rsa.RSAPublicNumbers(_b64int(jwk["e"]), _b64int(jwk["n"])).public_key()
        pub.verify(sig, data, padding.PKCS1v15(), digest)
    else:
        assert jwk["kty"] == "EC"
        half = sig_len // 2
        ec_pub = ec.EllipticCurvePublicNumbers(
            _b64int(jwk["x"]), _b64int(jwk["y"]), curve).public_key()
        der = encode_dss_signature(int.from_bytes(sig[:half], "big"),
                                   int.from_bytes(sig[half:], "big"))
        ec_pub.verify(der, data, ec.ECDSA(digest))


@pytest.mark.parametrize("key_type", list(CASES))
def test_sign_with_jwk_verifies(key_type: KeyType) -> None:
    key = account_key(key_type)
    signed = key.sign("https://ca/new-acct", "nonce-1", {"termsOfServiceAgreed": True})
    verify(key.jwk, signed, key_type)
    header = json.loads(b64url_decode(signed["protected"]))
    assert header == {"alg": CASES[key_type][0], "url": "https://ca/new-acct",
                      "nonce": "nonce-1", "jwk": key.jwk}
    assert json.loads(b64url_decode(signed["payload"])) == {"termsOfServiceAgreed": True}


@pytest.mark.parametrize("key_type", list(CASES))
def test_sign_with_kid_verifies(key_type: KeyType) -> None:
    key = account_key(key_type)
    signed = key.sign("https://ca/order/1", "nonce-2", None, kid="https://ca/acct/7")
    verify(key.jwk, signed, key_type)
    header = json.loads(b64url_decode(signed["protected"]))
    assert header == {"alg": CASES[key_type][0], "url": "https://ca/order/1",
                      "nonce": "nonce-2", "kid": "https://ca/acct/7"}
    assert signed["payload"] == ""


@pytest.mark.parametrize("key_type", list(CASES))
def test_tampered_payload_does_not_verify(key_type: KeyType) -> None:
    key = account_key(key_type)
    signed = key.sign("https://ca/x", "n", {"a": 1}, kid="k")
    signed["payload"] = jws.encode_payload({"a": 2})
    with pytest.raises(InvalidSignature):
        verify(key.jwk, signed, key_type)


@pytest.mark.parametrize("key_type", list(CASES))
def test_jwk_and_thumbprint(key_type: KeyType) -> None:
    key = account_key(key_type)
    assert key.alg == CASES[key_type][0]
    assert key.thumbprint == jws.thumbprint(key.jwk)
    if key_type is KeyType.RSA2048:
        assert set(key.jwk) == {"kty", "n", "e"}
        assert key.jwk["e"] == "AQAB"
    else:
        size = CASES[key_type][1] // 2
        assert set(key.jwk) == {"kty", "crv", "x", "y"}
        assert key.jwk["crv"] == ("P-256" if key_type is KeyType.EC256 else "P-384")
        assert len(b64url_decode(key.jwk["x"])) == size
        assert len(b64url_decode(key.jwk["y"])) == size


def test_load_or_create_creates_0600_then_loads_same_key(tmp_path: Path) -> None:
    path = tmp_path / "account.key"
    created, was_created = AccountKey.load_or_create(path, KeyType.EC256)
    assert was_created
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    loaded, was_created = AccountKey.load_or_create(path, KeyType.EC384)
    assert not was_created
    assert loaded.thumbprint == created.thumbprint
    assert loaded.key_type is KeyType.EC256  # the file wins over the requested type
    assert [p.name for p in tmp_path.iterdir()] == ["account.key"]


def test_save_new_is_0600_and_loadable(tmp_path: Path) -> None:
    key = account_key(KeyType.EC256)
    path = tmp_path / "new.key"
    key.save_new(path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert AccountKey.load_or_create(path, KeyType.EC256)[0].thumbprint == key.thumbprint


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "account.key"
    AccountKey.load_or_create(path, KeyType.EC256)
    path.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        AccountKey.load_or_create(path, KeyType.EC256)


def test_symlinked_key_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    AccountKey.load_or_create(real, KeyType.EC256)
    link = tmp_path / "account.key"
    link.symlink_to(real)
    with pytest.raises(StoreError, match="symlink"):
        AccountKey.load_or_create(link, KeyType.EC256)


def test_dangling_symlink_is_refused_not_replaced(tmp_path: Path) -> None:
    link = tmp_path / "account.key"
    link.symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(StoreError):
        AccountKey.load_or_create(link, KeyType.EC256)
    assert not (tmp_path / "elsewhere.key").exists()
    assert link.is_symlink()


def test_garbage_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "account.key"
    path.write_bytes(b"not a key\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        AccountKey.load_or_create(path, KeyType.EC256)
