"""certfleet.protocol.b64: unpadded base64url (RFC 7515 §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certfleet.protocol.b64 import b64url, b64url_decode, int_to_b64url, is_b64url


@given(st.binary(max_size=200))
def test_round_trip(data: bytes) -> None:
    text = b64url(data)
    assert "=" not in text
    assert is_b64url(text) or data == b""
    assert b64url_decode(text) == data


def test_uses_url_alphabet() -> None:
    assert b64url(b"\xfb\xff") == "-_8"
    assert b64url_decode("-_8") == b"\xfb\xff"


def test_empty() -> None:
    assert b64url(b"") == ""
    assert b64url_decode("") == b""
    assert not is_b64url("")


@pytest.mark.parametrize(
    "text",
    ["AA==", "AAA=", "+_8A", "/_8A", "A", "AAAAA", "AA AA", "AA\n", "é", "AA.A"],
)
def test_decode_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not base64url"):
        b64url_decode(text)


@pytest.mark.parametrize("text", ["AA==", "a+b", "a/b", "a b", "", "ab\n"])
def test_is_b64url_rejects(text: str) -> None:
    assert not is_b64url(text)


def test_int_to_b64url_minimal() -> None:
    assert int_to_b64url(65537) == "AQAB"
    assert int_to_b64url(0) == "AA"
    assert int_to_b64url(256) == b64url(b"\x01\x00")


def test_int_to_b64url_fixed_length() -> None:
    assert int_to_b64url(1, 4) == b64url(b"\x00\x00\x00\x01") == "AAAAAQ"


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_int_to_b64url_fixed_length_round_trip(value: int) -> None:
    raw = b64url_decode(int_to_b64url(value, 32))
    assert len(raw) == 32
    assert int.from_bytes(raw, "big") == value


@pytest.mark.parametrize(("value", "text"), [(255, "_w"), (0x7FFF, "f_8"), (0xFFFF, "__8"),
                                             (2**64 - 1, "__________8")])
def test_int_to_b64url_takes_no_spare_byte(value: int, text: str) -> None:
    assert int_to_b64url(value) == text


def test_decode_error_names_nothing_of_the_input() -> None:
    with pytest.raises(ValueError) as caught:
        b64url_decode("secret!")
    assert str(caught.value) == "not base64url"
