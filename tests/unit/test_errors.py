"""certfleet.errors: safe_text and the AcmeProblem message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certfleet.errors import (
    AccountDoesNotExist,
    AcmeProblem,
    AlreadyReplaced,
    BadNonce,
    BadPublicKey,
    CertfleetError,
    DomainProblem,
    ExternalAccountRequired,
    OrderNotReady,
    ProtocolError,
    RateLimited,
    Unauthorized,
    acme_problem,
    is_ca_fault,
    safe_tail,
    safe_text,
)


def test_plain_text_unchanged() -> None:
    assert safe_text("example.com: rejected (café)") == "example.com: rejected (café)"


def test_escapes_terminal_sequences() -> None:
    out = safe_text("a\x1b[2J\x1b]0;owned\x07b")
    assert "\x1b" not in out
    assert "\x07" not in out
    assert out == "a\\x1b[2J\\x1b]0;owned\\x07b"


def test_escapes_newlines_and_control_characters() -> None:
    assert safe_text("one\ntwo\rthree\tfour") == "one\\ntwo\\rthree\\tfour"
    assert safe_text("\x00\x7f\x85") == "\\x00\\x7f\\x85"
    assert safe_text("\u202e\u2028") == "\\u202e\\u2028"


def test_backslash_is_escaped_so_escapes_cannot_be_forged() -> None:
    assert safe_text("\\n") == "\\\\n"
    assert safe_text("\\n") != safe_text("\n")


def test_cuts_long_text() -> None:
    assert safe_text("a" * 1000) == "a" * 300 + "..."
    assert safe_text("a" * 300) == "a" * 300
    assert safe_text("abcdef", limit=3) == "abc..."


def test_cut_counts_characters_of_the_escaped_result() -> None:
    # The docstring promises "the result is cut to ``limit`` characters"; escapes count too,
    # or a line of control characters is 4-6 times longer than the limit.
    out = safe_text("\x1b" * 1000, limit=10)
    assert len(out) <= 10 + len("...")


def test_a_tail_keeps_the_end_of_long_or_escaped_text() -> None:
    assert safe_tail("short") == "short"
    assert safe_tail("a" * 1000 + "END") == "..." + "a" * 297 + "END"
    assert safe_tail("a" * 300) == "a" * 300
    escaped = safe_tail("x" * 100 + "\x1b" * 100 + "END", limit=20)
    assert escaped == "..." + r"\x1b" * 4 + "END"
    assert safe_tail("\u2028" * 50, limit=12) == "..." + r"\u2028" * 2


@given(st.text(max_size=400))
def test_output_is_printable(text: str) -> None:
    out = safe_text(text)
    assert all(ch.isprintable() for ch in out)


def _escaped_one_by_one(text: str, limit: int, tail: bool = False) -> str:
    """The definition: each character shown as it is or escaped, cut at ``limit``."""
    pieces = ["\\\\" if c == "\\" else {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or
              (c if c.isprintable() else
               f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
              for c in (reversed(text) if tail else text)]
    kept: list[str] = []
    for piece in pieces:
        if sum(map(len, kept)) + len(piece) > limit:
            return "..." + "".join(reversed(kept)) if tail else "".join(kept) + "..."
        kept.append(piece)
    return "".join(reversed(kept)) if tail else "".join(kept)


@given(st.text(alphabet=st.sampled_from("ab\\\n\x1b\u2028é "), max_size=12) | st.text(max_size=12),
       st.integers(min_value=0, max_value=14))
def test_escaping_is_the_same_with_or_without_the_shortcut(text: str, limit: int) -> None:
    assert safe_text(text, limit) == _escaped_one_by_one(text, limit)
    assert safe_tail(text, limit) == _escaped_one_by_one(text, limit, tail=True)


def test_acme_problem_message() -> None:
    exc = AcmeProblem(
        "https://ca/acme/new-order", "urn:ietf:params:acme:error:rejectedIdentifier",
        "Some of the identifiers requested were rejected", 400,
        subproblems=(
            ("_example.org", "urn:ietf:params:acme:error:malformed", "Invalid underscore"),
            ("example.net", "urn:ietf:params:acme:error:rejectedIdentifier", "will not issue"),
        ),
        retry_after=30.0,
    )
    assert isinstance(exc, ProtocolError)
    assert isinstance(exc, CertfleetError)
    assert exc.short_type == "rejectedIdentifier"
    assert exc.status == 400
    assert exc.retry_after == 30.0
    assert str(exc) == (
        "https://ca/acme/new-order: rejectedIdentifier: Some of the identifiers requested were "
        "rejected; _example.org: malformed: Invalid underscore; "
        "example.net: rejectedIdentifier: will not issue"
    )


def test_acme_problem_escapes_server_text() -> None:
    exc = AcmeProblem(
        "https://ca/x", "urn:ietf:params:acme:error:bad\x1b[31m", "detail\x1b[2J\nFAKE LOG", 400,
        subproblems=(("evil\x1b.example", "urn:x:y", "sub\rdetail"),),
    )
    text = str(exc)
    assert "\x1b" not in text
    assert "\n" not in text
    assert "\r" not in text
    assert "detail\\x1b[2J\\nFAKE LOG" in text
    assert "evil\\x1b.example" in text


@pytest.mark.parametrize(("short", "kind"), [
    ("badNonce", BadNonce), ("rateLimited", RateLimited), ("alreadyReplaced", AlreadyReplaced),
    ("orderNotReady", OrderNotReady), ("accountDoesNotExist", AccountDoesNotExist),
    ("externalAccountRequired", ExternalAccountRequired), ("unauthorized", Unauthorized),
    ("badPublicKey", BadPublicKey), ("dns", DomainProblem), ("connection", DomainProblem),
    ("tls", DomainProblem), ("incorrectResponse", DomainProblem), ("caa", AcmeProblem),
])
def test_problems_get_their_class_from_the_type(short: str, kind: type) -> None:
    exc = acme_problem("https://ca/x", "urn:ietf:params:acme:error:" + short, "d", 400)
    assert type(exc) is kind
    assert exc.short_type == short
    assert is_ca_fault(exc) is (kind is not DomainProblem)


def test_a_type_outside_the_acme_namespace_is_no_known_kind() -> None:
    exc = acme_problem("https://ca/x", "urn:example:badNonce", "d", 400)
    assert type(exc) is AcmeProblem
