"""External account binding (RFC 8555 §7.3.4): the MAC'd JWS over the account key, its
settings, and that the MAC key never shows in a message or a log line."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from pathlib import Path

import pytest

from certfleet.account_key import AccountKey
from certfleet.errors import ConfigError
from certfleet.keytypes import KeyType
from certfleet.protocol.b64 import b64url, b64url_decode
from certfleet.registration import eab_settings, external_account_binding, open_account, parse_eab
from certfleet.store import Store

from .test_account_ops import FakeCA, decode, verify_jws

MAC_KEY = bytes(range(7, 71))  # 64 bytes, as CAs hand them out
MAC_KEY_B64 = b64url(MAC_KEY)
NEW_ACCOUNT = "https://ca.test/new-acct"
DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


@pytest.mark.parametrize("alg", list(DIGESTS))
@pytest.mark.parametrize("key_type", [KeyType.EC256, KeyType.RSA2048])
def test_binding_is_a_mac_over_the_jwk(alg: str, key_type: KeyType) -> None:
    key = AccountKey.generate(key_type)
    binding = external_account_binding(("kid-1", MAC_KEY, alg), key.jwk, NEW_ACCOUNT)
    assert set(binding) == {"protected", "payload", "signature"}
    header = json.loads(b64url_decode(binding["protected"]))
    assert header == {"alg": alg, "kid": "kid-1", "url": NEW_ACCOUNT}  # no nonce, no jwk
    assert json.loads(b64url_decode(binding["payload"])) == key.jwk
    signing_input = f"{binding['protected']}.{binding['payload']}".encode()
    expected = hmac.new(MAC_KEY, signing_input, DIGESTS[alg]).digest()
    assert hmac.compare_digest(b64url_decode(binding["signature"]), expected)
    wrong = hmac.new(MAC_KEY[::-1], signing_input, DIGESTS[alg]).digest()
    assert b64url_decode(binding["signature"]) != wrong


def test_binding_refuses_other_algorithms() -> None:
    key = AccountKey.generate(KeyType.EC256)
    with pytest.raises(ConfigError, match="HS256, HS384 or HS512"):
        external_account_binding(("kid-1", MAC_KEY, "none"), key.jwk, NEW_ACCOUNT)


# -- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [MAC_KEY_B64, MAC_KEY_B64 + "=" * (-len(MAC_KEY_B64) % 4),
                                  f"  {MAC_KEY_B64}\n"])
def test_parse_eab_decodes_base64url(text: str) -> None:
    assert parse_eab("kid-1", text) == ("kid-1", MAC_KEY, "HS256")
    assert parse_eab("kid-1", text, "hs512") == ("kid-1", MAC_KEY, "HS512")


@pytest.mark.parametrize("text", [
    base64.b64encode(b"\xfb\xff" + MAC_KEY).decode(),  # standard base64: '+' and '/'
    "not base64url!", "abcde",
])
def test_parse_eab_refuses_non_base64url_without_showing_it(text: str) -> None:
    with pytest.raises(ConfigError, match="eab_hmac_key is not base64url") as info:
        parse_eab("kid-1", text)
    assert text.strip() not in str(info.value)


@pytest.mark.parametrize(("kid", "key", "alg", "message"), [
    ("kid-1", None, None, "eab_hmac_key is not set"),
    (None, MAC_KEY_B64, None, "eab_kid is not set"),
    ("kid-1", MAC_KEY_B64, "RS256", "use HS256, HS384 or HS512"),
    ("kid\n1", MAC_KEY_B64, None, "is not a key identifier"),
])
def test_parse_eab_refuses(kid: str | None, key: str | None, alg: str | None,
                           message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_eab(kid, key, alg)
    assert MAC_KEY_B64 not in str(info.value)


def test_no_eab_is_none() -> None:
    assert parse_eab(None, None) is None
    assert parse_eab("", "") is None


class Job:
    eab_kid = "kid-config"
    eab_hmac_key = b64url(b"config key")
    eab_alg = "HS384"


def test_eab_settings_environment_first_then_config() -> None:
    env = {"CERTFLEET_EAB_KID": "kid-env", "CERTFLEET_EAB_HMAC_KEY": MAC_KEY_B64}
    assert eab_settings(Job(), env) == ("kid-env", MAC_KEY, "HS256")
    assert eab_settings(Job(), {}) == ("kid-config", b"config key", "HS384")
    assert eab_settings(object(), {}) is None  # a JobConfig without the fields yet
    with pytest.raises(ConfigError, match="eab_hmac_key is not set"):
        eab_settings(Job(), {"CERTFLEET_EAB_KID": "kid-env"})  # never mix the sources


# -- in newAccount --------------------------------------------------------------------------

def test_new_account_carries_binding(tmp_path: Path) -> None:
    ca = FakeCA(eab_required=True)
    store = Store(tmp_path / "state")
    session = asyncio.run(open_account(ca, store, KeyType.EC256, [],  # type: ignore[arg-type]
                                       eab=("kid-1", MAC_KEY, "HS256")))
    url, outer = ca.sent[-1]
    header, payload = decode(outer)
    assert url == NEW_ACCOUNT
    verify_jws(header["jwk"], outer)
    binding = payload["externalAccountBinding"]
    assert json.loads(b64url_decode(binding["payload"])) == header["jwk"] == session.key.jwk
    assert json.loads(b64url_decode(binding["protected"]))["url"] == header["url"]
    assert store.load_account(ca.directory_url)["eab_kid"] == "kid-1"  # type: ignore[index]


def test_missing_binding_fails_before_any_request(tmp_path: Path) -> None:
    ca = FakeCA(eab_required=True)
    store = Store(tmp_path / "state")
    with pytest.raises(ConfigError, match=(
            r"https://ca.test/dir: this CA registers accounts only with an external account "
            r"binding .*eab_kid and eab_hmac_key")):
        asyncio.run(open_account(ca, store, KeyType.EC256, []))  # type: ignore[arg-type]
    assert ca.requests["POST"] == 0
    assert not store.account_key_path(ca.directory_url).exists()


def test_existing_account_needs_no_binding(tmp_path: Path) -> None:
    ca = FakeCA(eab_required=True)
    store = Store(tmp_path / "state")
    first = asyncio.run(open_account(ca, store, KeyType.EC256, [],  # type: ignore[arg-type]
                                     eab=("kid-1", MAC_KEY, "HS256")))
    again = asyncio.run(open_account(ca, store, KeyType.EC256, []))  # type: ignore[arg-type]
    assert again.kid == first.kid


def test_mac_key_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ca = FakeCA(eab_required=True)
    asyncio.run(open_account(ca, Store(tmp_path / "state"), KeyType.EC256, [],  # type: ignore[arg-type]
                             eab=("kid-1", MAC_KEY, "HS256")))
    assert "kid-1" in caplog.text  # the binding was logged, by its identifier only
    leaked = [piece for piece in _pieces(MAC_KEY) if piece in caplog.text]
    assert not leaked, leaked


def _pieces(secret: bytes) -> list[str]:
    """The usual spellings of a secret (base64url, base64, hex either case, Python's repr,
    the raw bytes), each cut into overlapping 16-character pieces: a log holding any of
    them, whole or in part, has leaked the secret."""
    spellings = [b64url(secret), base64.b64encode(secret).decode(), secret.hex(),
                 secret.hex().upper(), repr(secret)[2:-1], secret.decode("latin-1")]
    return [text[i:i + 16] for text in spellings for i in range(0, len(text) - 15, 4)]


def test_the_search_finds_a_key_however_it_is_spelled() -> None:
    for shown in (f"{MAC_KEY!r}", MAC_KEY_B64[5:30], MAC_KEY.hex().upper()[10:40],
                  base64.b64encode(MAC_KEY).decode()):
        assert any(piece in f"binding with {shown}" for piece in _pieces(MAC_KEY)), shown
    assert not any(piece in "binding the new account to external account kid-1"
                   for piece in _pieces(MAC_KEY))
