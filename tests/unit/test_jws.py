"""certfleet.protocol.jws: RFC 7638 thumbprints, RFC 8555 §6.2 headers, EAB MAC JWS."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from certfleet.protocol import jws
from certfleet.protocol.b64 import b64url, b64url_decode

# RFC 7638 §3.1, the example JWK exactly as printed (with its "alg" and "kid" members).
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_rfc7638_example_thumbprint() -> None:
    assert jws.thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_ec_thumbprint_uses_only_required_members_in_order() -> None:
    jwk = {"y": "YY", "x": "XX", "use": "sig", "kty": "EC", "crv": "P-256", "kid": "k"}
    canonical = b'{"crv":"P-256","kty":"EC","x":"XX","y":"YY"}'
    assert jws.thumbprint(jwk) == b64url(hashlib.sha256(canonical).digest())


@pytest.mark.parametrize("jwk", [{"kty": "oct", "k": "AA"}, {"n": "AA", "e": "AQAB"}])
def test_thumbprint_refuses_unsupported_key_types(jwk: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unsupported JWK key type"):
        jws.thumbprint(jwk)


def test_protected_header_with_kid() -> None:
    header = jws.protected_header("ES256", "https://ca/new-order", "nonce1", kid="https://ca/acct/1")
    assert header == {"alg": "ES256", "url": "https://ca/new-order", "nonce": "nonce1",
                      "kid": "https://ca/acct/1"}


def test_protected_header_with_jwk() -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": "XX", "y": "YY"}
    header = jws.protected_header("ES256", "https://ca/new-acct", "n", jwk=jwk)
    assert header["jwk"] == jwk
    assert "kid" not in header


def test_protected_header_without_nonce_omits_it() -> None:
    assert "nonce" not in jws.protected_header("ES256", "https://ca/x", None, kid="k")


@pytest.mark.parametrize(
    "kwargs", [{}, {"kid": "https://ca/acct/1", "jwk": {"kty": "EC"}}],
)
def test_protected_header_needs_exactly_one_of_kid_and_jwk(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        jws.protected_header("ES256", "https://ca/x", "n", **kwargs)  # type: ignore[arg-type]


def test_post_as_get_payload_is_empty_string() -> None:
    # RFC 8555 §6.3: POST-as-GET has a zero-length payload, not "{}" and not '""'.
    assert jws.encode_payload(None) == ""


def test_empty_object_payload_is_not_post_as_get() -> None:
    # An empty JSON object is what e.g. a challenge response carries (§7.5.1).
    assert jws.encode_payload({}) == "e30"


def test_payload_is_base64url_json() -> None:
    payload = {"identifiers": [{"type": "dns", "value": "example.org"}]}
    assert json.loads(b64url_decode(jws.encode_payload(payload))) == payload


def test_signing_input_and_flattened() -> None:
    header = {"alg": "ES256", "url": "u"}
    protected, to_sign = jws.signing_input(header, "e30")
    assert json.loads(b64url_decode(protected)) == header
    assert to_sign == f"{protected}.e30".encode()
    assert jws.flattened(protected, "e30", b"\xff\xfe") == {
        "protected": protected, "payload": "e30", "signature": "__4"}


@pytest.mark.parametrize(
    ("alg", "digest"),
    [("HS256", "sha256"), ("HS384", "sha384"), ("HS512", "sha512")],
)
def test_mac_jws_verifies_with_hmac(alg: str, digest: str) -> None:
    key = b"eab secret \x00\xff"
    header = {"alg": alg, "kid": "kid-1", "url": "https://ca/new-acct"}
    payload = b64url(b'{"kty":"EC"}')
    out = jws.mac_jws(alg, key, header, payload)
    assert out["payload"] == payload
    assert json.loads(b64url_decode(out["protected"])) == header
    expected = hmac.new(key, f"{out['protected']}.{payload}".encode(), digest).digest()
    assert hmac.compare_digest(b64url_decode(out["signature"]), expected)


def test_mac_jws_different_keys_differ() -> None:
    header = {"alg": "HS256", "kid": "k", "url": "u"}
    assert (jws.mac_jws("HS256", b"a", header, "e30")["signature"]
            != jws.mac_jws("HS256", b"b", header, "e30")["signature"])


@pytest.mark.parametrize("alg", ["none", "HS1", "RS256", "hs256", ""])
def test_mac_jws_refuses_unknown_algorithms(alg: str) -> None:
    with pytest.raises(ValueError, match="unsupported MAC algorithm"):
        jws.mac_jws(alg, b"k", {"alg": alg}, "")


def test_canonical_json_is_sorted_and_compact() -> None:
    assert jws.canonical_json({"y": 1, "crv": "P-256", "kty": "EC", "x": [1, 2]}) == \
        b'{"crv":"P-256","kty":"EC","x":[1,2],"y":1}'
    assert jws.canonical_json({"k": "é"}) == b'{"k":"\\u00e9"}'


def test_payload_and_header_are_compact_json() -> None:
    payload = {"identifiers": [{"type": "dns", "value": "example.org"}]}
    assert b64url_decode(jws.encode_payload(payload)) == \
        b'{"identifiers":[{"type":"dns","value":"example.org"}]}'
    protected, to_sign = jws.signing_input({"alg": "ES256", "url": "u", "nonce": "n"}, "e30")
    assert b64url_decode(protected) == b'{"alg":"ES256","url":"u","nonce":"n"}'
    assert to_sign == b"eyJhbGciOiJFUzI1NiIsInVybCI6InUiLCJub25jZSI6Im4ifQ.e30"


def test_protected_header_message() -> None:
    with pytest.raises(ValueError) as caught:
        jws.protected_header("ES256", "https://ca/x", "n")
    assert str(caught.value) == "exactly one of kid and jwk must be given"
