"""certfleet.protocol.challenges: key authorizations (RFC 8555 §8.1, §8.4, RFC 8737)."""

from __future__ import annotations

import base64
import hashlib

from certfleet.protocol import challenges

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
THUMB = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_key_authorization() -> None:
    assert challenges.key_authorization(TOKEN, THUMB) == TOKEN + "." + THUMB


def test_dns01_txt_value() -> None:
    key_auth = challenges.key_authorization(TOKEN, THUMB)
    digest = hashlib.sha256(key_auth.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    value = challenges.dns01_txt_value(key_auth)
    assert value == expected
    assert len(value) == 43


def test_dns01_record_name() -> None:
    assert challenges.dns01_record_name("www.example.org") == "_acme-challenge.www.example.org"


def test_dns01_record_name_drops_wildcard() -> None:
    assert challenges.dns01_record_name("*.example.org") == "_acme-challenge.example.org"


def test_tls_alpn01_digest() -> None:
    key_auth = challenges.key_authorization(TOKEN, THUMB)
    assert challenges.tls_alpn01_digest(key_auth) == hashlib.sha256(key_auth.encode()).digest()


def test_http01_prefix() -> None:
    assert challenges.HTTP_01_PREFIX == "/.well-known/acme-challenge/"
