"""Every parser of what a CA sends, fed arbitrary values: it returns, or it raises one of
certfleet's own errors (``CertfleetError`` or ``protocol.messages.MalformedMessage``), never
anything else. And whatever it returns or raises is fit for a terminal.

The parsers: ``protocol.messages`` (Directory, Order, Authorization, Challenge, Problem,
Identifier, AccountResource ``.from_json``, and what callers then read from them),
``protocol.ari.parse_window``, ``protocol.timing.parse_retry_after`` (and what its value
feeds: ``clamp``, ``backoff.after_failure``, ``ari.recheck_after``), ``certs.split_pem_chain``
and ``certs.verify_issued`` (arbitrary bytes, PEM frames of junk, mutated certificates),
``issue._top_issuer`` (the alternate-chain chooser), ``acme_client.problem_error``, and the
``Response`` accessors over headers (``json``, ``location``, ``retry_after``, ``link`` via
``acme_client._links``), the CA-URL checks (``AcmeClient._check_url``, ``_same_origin``)
and the Date header (``AcmeClient._note_date``).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ObjectIdentifier
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from certfleet import acme_client
from certfleet.acme_client import AcmeClient, Response, problem_error
from certfleet.certs import split_pem_chain, verify_issued
from certfleet.errors import AcmeProblem, CertfleetError, ProtocolError, safe_text
from certfleet.order import top_issuer as _top_issuer
from certfleet.protocol import ari, backoff
from certfleet.protocol.messages import (
    AccountResource,
    Authorization,
    Challenge,
    Directory,
    Identifier,
    MalformedMessage,
    Order,
    Problem,
    token_is_safe,
)
from certfleet.protocol.timing import MAX_POLL, MIN_POLL, clamp, parse_retry_after

from .pki import CA, NOT_AFTER, NOT_BEFORE, _name, new_key

T = TypeVar("T")
OURS = (CertfleetError, MalformedMessage)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def survives(parse: Callable[..., T], *args: Any) -> T | None:
    """``parse(*args)``; None if it raised one of certfleet's errors (anything else fails)."""
    try:
        return parse(*args)
    except OURS as exc:
        message = str(exc)
    assert message  # an error says what is wrong
    return None


# -- values a CA could send -----------------------------------------------------------------

URLS = st.sampled_from([
    "https://ca.example/acme/x", "http://127.0.0.1:14000/dir", "/relative/path", "",
    "http://[", "http://[::1/x", "http://[zz]/x", "https://ca.example:99999/x",
    "https://ca.example:-1/", "javascript:alert(1)", "file:///etc/passwd",
    "https://\x1b[2J.example/", "https://ca.example/\u202egnp", "//other.example/x",
])
TEXT = st.one_of(st.text(max_size=30), URLS,
                 st.sampled_from(["\x1b[31m", "\x00", "\r\nX-Forged: 1", "\u202e", "\ud800"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)
ERR = "urn:ietf:params:acme:error:"
STATUS = st.one_of(st.sampled_from(["valid", "pending", "ready", "processing", "invalid",
                                    "expired", "deactivated", "revoked", "", "VALID",
                                    "pondering\x1b[5m"]), json_values)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, value, value, json_values)


def shaped(required: dict[str, st.SearchStrategy[Any]],
           optional: dict[str, st.SearchStrategy[Any]] | None = None,
           ) -> st.SearchStrategy[Any]:
    """An object with the right keys, usually the right kind of values, sometimes junk."""
    return st.fixed_dictionaries({k: maybe(v) for k, v in required.items()},
                                 optional={k: maybe(v) for k, v in (optional or {}).items()})


identifier = shaped({"type": st.sampled_from(["dns", "ip", "email"]),
                     "value": st.one_of(TEXT, st.just("x.example"))})
problem = st.recursive(
    shaped({"type": st.one_of(st.sampled_from([ERR + "badNonce", ERR + "caa", "about:blank",
                                               ERR, ERR + "\x1b[2J"]), TEXT)},
           {"detail": TEXT, "status": st.integers(), "identifier": identifier}),
    lambda children: shaped({"type": st.just(ERR + "rejectedIdentifier")},
                            {"subproblems": st.lists(children, max_size=3),
                             "detail": TEXT}),
    max_leaves=6,
)
challenge = shaped({"type": st.sampled_from(["http-01", "dns-01", "tls-alpn-01"]),
                    "url": URLS, "status": STATUS},
                   {"token": st.one_of(TEXT, st.just("A" * 43)), "error": problem})
authorization = shaped({"identifier": identifier, "status": STATUS,
                        "challenges": st.lists(challenge, max_size=3)},
                       {"wildcard": st.booleans(), "expires": TEXT})
order = shaped({"status": STATUS, "identifiers": st.lists(identifier, max_size=3),
                "authorizations": st.lists(URLS, max_size=3), "finalize": URLS},
               {"certificate": URLS, "error": problem, "expires": TEXT, "profile": TEXT})
directory = shaped(
    dict.fromkeys(("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"), URLS),
    {"renewalInfo": URLS, "meta": shaped({}, {
        "termsOfService": URLS, "externalAccountRequired": st.booleans(),
        "profiles": st.dictionaries(TEXT, json_values, max_size=3)})})
account = shaped({"status": STATUS}, {"contact": st.lists(TEXT, max_size=3), "orders": URLS})
TIMES = st.one_of(st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
                  st.datetimes().map(lambda d: d.isoformat()),
                  st.sampled_from(["2026-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "Z", "",
                                   "9999-12-31T23:59:59.999999+00:00",
                                   "0001-01-01T00:00:00-23:59"]), TEXT)
renewal_info = shaped({"suggestedWindow": shaped({"start": TIMES, "end": TIMES})},
                      {"explanationURL": URLS})

ANY_JSON = {"Directory": directory, "Order": order, "Authorization": authorization,
            "Challenge": challenge, "Problem": problem, "Identifier": identifier,
            "AccountResource": account}
PARSERS: dict[str, Callable[[Any], Any]] = {
    "Directory": Directory.from_json, "Order": Order.from_json,
    "Authorization": Authorization.from_json, "Challenge": Challenge.from_json,
    "Problem": Problem.from_json, "Identifier": Identifier.from_json,
    "AccountResource": AccountResource.from_json,
}


def _use(parsed: Any) -> None:
    """What callers read from a parsed message: it must work on anything that parsed."""
    if isinstance(parsed, Authorization):
        assert isinstance(parsed.name, str)
        parsed.challenge("http-01")
        failure = parsed.failure()
        if failure is not None:
            _use(failure)
    elif isinstance(parsed, Problem):
        assert isinstance(parsed.short_type, str)
        for sub in parsed.subproblems:
            _use(sub)
    elif isinstance(parsed, Directory):
        assert all(isinstance(url, str) for url in parsed.urls())
    elif isinstance(parsed, Order):
        assert all(isinstance(url, str) for url in parsed.authorizations)
        if parsed.error is not None:
            _use(parsed.error)
    elif isinstance(parsed, Challenge):
        token_is_safe(parsed.token)


# -- protocol.messages ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(PARSERS))
@SETTINGS
@given(data=st.data())
def test_messages_parse_or_raise_malformed_message(kind: str, data: st.DataObject) -> None:
    value = data.draw(st.one_of(ANY_JSON[kind], json_values, ANY_JSON[kind]), label=kind)
    parsed = survives(PARSERS[kind], value)
    if parsed is not None:
        _use(parsed)


@SETTINGS
@given(st.one_of(renewal_info, json_values))
def test_ari_parse_window(value: Any) -> None:
    window = survives(ari.parse_window, value)
    if window is not None:
        start, end, explanation = window
        assert start.tzinfo is not None
        assert end.tzinfo is not None
        assert start <= end
        assert explanation is None or isinstance(explanation, str)
        ari.schedule(None, 1, start, end, explanation, NOW, 0.5)


@SETTINGS
@given(st.text(max_size=60), st.datetimes(timezones=st.just(UTC)))
@example("1000000000000", NOW)
@example("9" * 5000, NOW)
@example("Fri, 31 Dec 9999 23:59:59 GMT", NOW)
@example("Sat, 01 Jan 10000 00:00:00 GMT", NOW)
@example("Fri, 31 Dec 9999 23:59:59 -2359", datetime(1, 1, 1, tzinfo=UTC))
@example("Mon, 01 Jan 0001 00:00:00 +2359", datetime(9999, 12, 31, tzinfo=UTC))
@example("-5", NOW)
@example("\u0661\u0662", NOW)
def test_retry_after_and_what_it_feeds(value: str, now: datetime) -> None:
    seconds = survives(parse_retry_after, value, now)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)
    if seconds is not None:
        assert MIN_POLL <= clamp(seconds) <= MAX_POLL
        assert backoff.after_failure(None, NOW, "e", seconds).failures == 1
        later = ari.recheck_after(seconds, NOW)
        assert NOW < later <= NOW + timedelta(days=1)
    response = Response("https://ca.example/x", 200, {"Retry-After": value}, b"")
    assert response.retry_after(now) == seconds


# -- certs ----------------------------------------------------------------------------------

_CA = CA("Hypothesis CA")
_KEY = new_key()
_LEAF_PEM = _CA.issue(_KEY.public_key(), ["x.example"])
_LEAF_DER = x509.load_pem_x509_certificate(_LEAF_PEM).public_bytes(serialization.Encoding.DER)
_CA_DER = _CA.cert.public_bytes(serialization.Encoding.DER)


def _pem(der: bytes, label: bytes = b"CERTIFICATE") -> bytes:
    return (b"-----BEGIN " + label + b"-----\n" + base64.encodebytes(der)
            + b"-----END " + label + b"-----\n")


@st.composite
def mutated(draw: st.DrawFn, der: bytes) -> bytes:
    """``der`` with a few bytes replaced, cut short, or with bytes inserted."""
    data = bytearray(der)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["replace", "insert", "delete"]))
        if how == "replace":
            data[where] = draw(st.integers(0, 255))
        elif how == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[where:where + draw(st.integers(1, 4))]
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def _with_extension(oid_value: bytes, *, keep_san: bool) -> bytes:
    """A leaf whose extra extension's OID is patched into subjectAltName's (same length):
    two SANs (``keep_san``), or one whose content is ``oid_value``."""
    standin = ObjectIdentifier("2.5.29.99")
    builder = (x509.CertificateBuilder().subject_name(_name("x.example"))
               .issuer_name(_CA.name).public_key(_KEY.public_key()).serial_number(7)
               .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
               .add_extension(x509.UnrecognizedExtension(standin, oid_value), critical=False))
    if keep_san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("x.example")]), critical=False)
    der = builder.sign(_CA.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return der.replace(b"\x06\x03\x55\x1d\x63", b"\x06\x03\x55\x1d\x11")


EC_KEY_OID, UNKNOWN_KEY_OID = bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex(
    "06072a8648ce3d0209")
TWO_SANS = _pem(_with_extension(
    x509.SubjectAlternativeName([x509.DNSName("evil.example")]).public_bytes(),
    keep_san=True)) + _CA.pem
BAD_SAN = _pem(_with_extension(b"\x30\x03\x82\x01", keep_san=False)) + _CA.pem
UNKNOWN_LEAF_KEY = _pem(_LEAF_DER.replace(EC_KEY_OID, UNKNOWN_KEY_OID)) + _CA.pem
UNKNOWN_ISSUER_KEY = _LEAF_PEM + _pem(_CA_DER.replace(EC_KEY_OID, UNKNOWN_KEY_OID))
X509_V2 = _LEAF_PEM + _pem(_CA_DER.replace(bytes.fromhex("a003020102"),
                                           bytes.fromhex("a003020101"), 1))

CHAIN_BYTES = st.one_of(
    st.binary(max_size=400),
    st.binary(max_size=300).map(_pem),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n",
            max_size=300).map(lambda t: b"-----BEGIN CERTIFICATE-----\n" + t.encode()
                              + b"\n-----END CERTIFICATE-----\n"),
    mutated(_LEAF_DER).map(lambda der: _pem(der) + _CA.pem),
    mutated(_CA_DER).map(lambda der: _LEAF_PEM + _pem(der)),
    st.lists(st.sampled_from([_LEAF_PEM, _CA.pem, b"\r\n", b"junk", _pem(b"", b"X")]),
             max_size=12).map(b"".join),
)


@SETTINGS
@given(CHAIN_BYTES)
@example(TWO_SANS).via("a leaf with two subjectAltName extensions")
@example(BAD_SAN).via("a leaf whose subjectAltName does not parse")
@example(UNKNOWN_LEAF_KEY).via("a leaf with a public key of an unknown algorithm")
@example(UNKNOWN_ISSUER_KEY).via("an issuer with a public key of an unknown algorithm")
@example(X509_V2).via("an issuer whose X.509 version field says v2")
def test_split_pem_chain_and_verify_issued(data: bytes) -> None:
    certs = survives(split_pem_chain, data, "where")
    assert certs is None or 1 <= len(certs) <= 10
    bundle = survives(verify_issued, data, _KEY.public_key(), ["x.example"], "where",
                      NOT_BEFORE + timedelta(days=1))  # while the leaf is valid
    if bundle is not None:
        assert bundle.names == ("x.example",)
        assert bundle.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")


@SETTINGS
@given(CHAIN_BYTES)
@example(X509_V2).via("an issuer whose X.509 version field says v2")
@example(TWO_SANS).via("a leaf with two subjectAltName extensions")
def test_top_issuer_of_an_alternate_chain(data: bytes) -> None:
    top = survives(_top_issuer, data)
    assert top is None or isinstance(top, str)


# -- acme_client --------------------------------------------------------------------------------

def _json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return b"{}"


BODIES = st.one_of(st.binary(max_size=300), json_values.map(_json_bytes),
                   problem.map(_json_bytes))


HEADER_VALUES = st.one_of(st.text(max_size=60), URLS, st.sampled_from([
    "1000000000000", "-1", "Fri, 31 Dec 9999 23:59:59 GMT", "application/json",
    "application/problem+json; charset=utf-8", "text/html", ""]))


@SETTINGS
@given(st.integers(100, 599), BODIES, HEADER_VALUES)
def test_problem_error(status: int, body: bytes, retry_after: str) -> None:
    url = "https://ca.example/acme/order"
    response = Response(url, status, {"Retry-After": retry_after,
                                      "Content-Type": "application/problem+json"}, body)
    error = problem_error(url, response, NOW)
    assert isinstance(error, AcmeProblem | ProtocolError)
    assert not CONTROL.search(str(error)), repr(str(error))
    if isinstance(error, AcmeProblem):
        assert error.retry_after is None or error.retry_after >= 0


@SETTINGS
@given(BODIES, HEADER_VALUES)
def test_response_json(body: bytes, content_type: str) -> None:
    response = Response("https://ca.example/x", 200, {"Content-Type": content_type}, body)
    survives(response.json)


@SETTINGS
@given(URLS | st.text(max_size=40), URLS | st.text(max_size=40))
@example("https://ca.example/order", "http://[::1/order/1")
@example("https://ca.example/order", "http://[zz]/order/1")
def test_response_location(url: str, location: str) -> None:
    response = Response(url, 201, {"Location": location}, b"")
    found = survives(lambda: response.location)
    assert found is None or isinstance(found, str)


LINK = st.one_of(
    st.text(max_size=80),
    st.builds(lambda u, r: f"<{u}>;rel=\"{r}\"", URLS | st.text(max_size=20),
              st.sampled_from(["alternate", "up", "index", "ALTERNATE", ""])),
    st.builds(lambda n: ", ".join(f"<https://ca.example/alt/{i}>; rel=alternate"
                                  for i in range(n)), st.integers(0, 500)),
)


@SETTINGS
@given(st.lists(LINK, max_size=20))
@example(['<http://[zz]/alt>;rel="alternate"'])
@example(["<http://[::1/alt>; rel=alternate"])
@example(['<https://ca.example/x>;rel="alternate"'] * 5000)
def test_link_headers(values: list[str]) -> None:
    url = "https://ca.example/acme/cert/1"
    links = survives(acme_client._links, values, url)
    if links is not None:
        assert len(links) <= 100
        response = Response(url, 200, {}, b"", links)
        assert all(isinstance(u, str) for u in response.link("alternate"))


@SETTINGS
@given(URLS | st.text(max_size=40))
@example("http://[::1/x")
@example("https://ca.example:99999/x")
def test_urls_from_the_ca(url: str) -> None:
    client = AcmeClient("https://ca.example/dir")
    survives(client._check_url, url)
    assert isinstance(survives(acme_client._same_origin, "https://ca.example/dir", url),
                      bool | None)


@SETTINGS
@given(st.text(max_size=60))
@example("Fri, 31 Dec 9999 23:59:59 +9999")
@example("Mon, 01 Jan 0001 00:00:00 +2359")
def test_date_header(value: str) -> None:
    client = AcmeClient("https://ca.example/dir")
    survives(client._note_date, value)
    assert client.server_date is None or client.server_date.tzinfo is not None


# -- what the parsers hand on, printed ---------------------------------------------------------

@SETTINGS
@given(TEXT, TEXT, st.lists(st.tuples(TEXT, TEXT, TEXT), max_size=3))
def test_acme_problem_message_is_terminal_safe(type_: str, detail: str,
                                               subs: list[tuple[str, str, str]]) -> None:
    message = str(AcmeProblem("https://ca.example/\x1b[2J", type_, detail, 400, tuple(subs)))
    assert not CONTROL.search(message), repr(message)


@SETTINGS
@given(st.text(max_size=400), st.integers(1, 400))
def test_safe_text(text: str, limit: int) -> None:
    shown = safe_text(text, limit)
    assert not CONTROL.search(shown)
    assert all(ch.isprintable() for ch in shown)
    assert len(shown) <= limit + 3


@SETTINGS
@given(TEXT)
def test_a_safe_token_is_a_plain_file_name(token: str) -> None:
    if token_is_safe(token):
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,256}", token)
