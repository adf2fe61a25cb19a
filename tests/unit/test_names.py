"""certfleet.names: domain names normalized to A-labels and validated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certfleet.errors import ConfigError
from certfleet.names import normalize_name, storage_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("WWW.Example.COM", "www.example.com"),
        ("www.example.com.", "www.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.Example.", "xn--bcher-kva.example"),
        ("*.example.com", "*.example.com"),
        ("*.Bücher.example", "*.xn--bcher-kva.example"),
        ("a-b.0.example", "a-b.0.example"),
        ("192.0.2.example", "192.0.2.example"),
    ],
)
def test_normalizes(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "", ".", "*", "*.", "localhost", "*.com", "com.",
        "a.*.example.com", "*a.example.com", "**.example.com", "*.*.example.com",
        "xn--zz.example", "xn--.example", "xn--a.example",
        "a..example.com", "..", ".example.com", "example.com..",
        "a/b.example", "../etc/passwd", "a\\b.example", "a\x00b.example",
        "a b.example", "a\tb.example", "a\nb.example", "exa mple.com",
        "-a.example", "a-.example", "a_b.example", "a+b.example", "é@.example",
        "example.123",
        "a" * 64 + ".example",
        "\ud800.example",
    ],
)
def test_refuses(raw: str) -> None:
    with pytest.raises(ConfigError):
        normalize_name(raw)


def test_longest_label_accepted() -> None:
    name = "a" * 63 + ".example"
    assert normalize_name(name) == name


def test_name_length_limit() -> None:
    ok = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(ok) == 253
    assert normalize_name(ok) == ok
    with pytest.raises(ConfigError, match="longer than 253"):
        normalize_name(ok + "d")


def test_idn_label_too_long_after_encoding() -> None:
    # 60 characters of U-label become more than 63 once punycode-encoded.
    with pytest.raises(ConfigError):
        normalize_name("ü" * 60 + ".example")


def test_error_names_the_input() -> None:
    with pytest.raises(ConfigError, match=r"a_b\.example"):
        normalize_name("a_b.example")


def test_storage_name() -> None:
    assert storage_name("*.example.com") == "_wildcard.example.com"
    assert storage_name("www.example.com") == "www.example.com"


names_ish = st.lists(
    st.text(alphabet="abzAZ09-_*üßÜ.。 xn", max_size=8), min_size=1, max_size=5,
).map(".".join)


@given(st.one_of(st.text(max_size=40), names_ish))
def test_normalize_is_idempotent_or_refuses(raw: str) -> None:
    try:
        name = normalize_name(raw)
    except ConfigError:
        return
    assert name.isascii()
    assert name == name.lower()
    assert normalize_name(name) == name


@pytest.mark.parametrize(("raw", "expected"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:DB8::1", "2001:db8::1"),
    ("[2001:db8:0:0::1]", "2001:db8::1"),
    ("www.example.com", "www.example.com"),
])
def test_normalize_identifier_accepts_ip_addresses(raw: str, expected: str) -> None:
    from certfleet.names import is_ip, normalize_identifier

    assert normalize_identifier(raw) == expected
    assert is_ip(expected) == (":" in expected or expected[0].isdigit())


@pytest.mark.parametrize("raw", ["1.2.3.4.5", "fe80::1%eth0", "[::1", "999.1.1.1", "1::2::3"])
def test_normalize_identifier_refuses_broken_addresses(raw: str) -> None:
    from certfleet.names import normalize_identifier

    with pytest.raises(ConfigError):
        normalize_identifier(raw)


@pytest.mark.parametrize("raw", ["ex\u0430mple.com", "xn--exmple-4nf.com", "p\u0430ypal.example",
                                 "\u03b1pple.example", "www.g\u043e\u043egle.example"])
def test_mixed_script_look_alikes_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"mixes scripts .*refused as a look-alike"):
        normalize_name(raw)


@pytest.mark.parametrize(("raw", "alabel"), [
    ("bücher.example", "xn--bcher-kva.example"), ("日本語.jp", "xn--wgv71a119e.jp"),
    ("東京タワー.jp", "xn--5ck2eqb538s34z.jp"), ("한국어.kr", "xn--3e0bk47br7k.kr"),
    ("παράδειγμα.gr", "xn--hxajbheg2az3al.gr"), ("mail-中国.cn", "xn--mail--9n1hm04c.cn"),
    ("xn--d1acufc.xn--p1ai", "xn--d1acufc.xn--p1ai"),
])
def test_names_a_language_writes_are_taken(raw: str, alabel: str) -> None:
    assert normalize_name(raw) == alabel
