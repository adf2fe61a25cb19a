"""A hostile or broken CA, one behaviour per test, after a good certificate was issued.

Each test first lets the fake CA issue a good certificate (version 1), then scripts one
hostile answer and renews with ``--force``. Every one must end in exit code 1 and one
output line naming what is wrong and where (URL or domain), with no terminal escape;
version 1 stays active and byte for byte complete, and no new version appears.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from .fakeca import FakeCA, TinyCA, csr_names, pem
from .harness import Harness

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x9b31m\nFAKE: line\r"
ERR = "urn:ietf:params:acme:error:"


@pytest.fixture
def before(h: Harness) -> dict[str, str]:
    """Version 1, issued by the fake CA before it turns hostile."""
    return h.issue_good()


def _forced(h: Harness) -> tuple[int, str]:
    return h.issue("--force")


# -- answers that are not what they claim to be -------------------------------------------------

def test_wrong_content_type_on_json(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    async def html(request: web.Request) -> web.Response:
        return ca.raw(b"<html><body>Welcome to nginx!</body></html>", "text/html")

    ca.overrides["/authz/1"] = html
    h.refused(*_forced(h), f"{ca.url('/authz/1')}: expected JSON, got text/html",
              before=before)


def test_wrong_content_type_on_certificate(ca: FakeCA, h: Harness,
                                           before: dict[str, str]) -> None:
    ca.cert_content_type = "text/html"
    h.refused(*_forced(h), f"{ca.url('/cert/1')}: expected application/pem-certificate-chain,"
              " got text/html", before=before)


def test_invalid_json(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    async def broken(request: web.Request) -> web.Response:
        return ca.raw(b'{"status": "valid", "certificate": ', "application/json")

    ca.overrides["/finalize/1"] = broken
    h.refused(*_forced(h), f"{ca.url('/finalize/1')}: invalid JSON: Expecting value",
              before=before)


def test_oversized_certificate(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    ca.issue_chain = lambda csr: b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 << 20)
    h.refused(*_forced(h), f"{ca.url('/cert/1')}: response of ", "exceeds 1048576",
              before=before)


def test_post_redirected_to_another_host(ca: FakeCA, h: Harness,
                                         before: dict[str, str]) -> None:
    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:1/cert")

    ca.overrides["/cert/1"] = away
    h.refused(*_forced(h), f"{ca.url('/cert/1')}: unexpected redirect (HTTP 302)",
              before=before)


# -- statuses RFC 8555 §7.1.6 does not know ----------------------------------------------------

def test_unknown_order_status_after_finalize(ca: FakeCA, h: Harness,
                                             before: dict[str, str]) -> None:
    ca.tweak("/finalize/1", lambda order: {**order, "status": "pondering\x1b[5m"})
    line = h.refused(*_forced(h), f"{ca.url('/finalize/1')}: order: unknown status "
                     "'pondering\\x1b[5m'", before=before)
    assert "certificate" not in line


def test_unknown_authorization_status(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    ca.tweak("/authz/1", lambda authz: {**authz, "status": "paused"})
    h.refused(*_forced(h), f"{ca.url('/authz/1')}: authorization: unknown status 'paused'",
              before=before)
    assert ca.count("POST /chall/1") == 1  # only the first, good run answered one


def test_unknown_challenge_status(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    def odd(authz: dict[str, Any]) -> dict[str, Any]:
        authz["challenges"][0]["status"] = "sleeping"
        return authz

    ca.tweak("/authz/1", odd)
    h.refused(*_forced(h), f"{ca.url('/authz/1')}: challenge: unknown status 'sleeping'",
              before=before)


# -- the order's own shape -----------------------------------------------------------------------

def test_authorization_for_a_name_not_ordered(ca: FakeCA, h: Harness,
                                              before: dict[str, str]) -> None:
    """The order is for x.example; the CA's authorization is for another name. Answering
    it would make certfleet prove control of a name it never asked for (with a DNS solver,
    update a TXT record there); it must refuse, before presenting anything."""
    ca.tweak("/authz/1", lambda authz: {**authz,
                                        "identifier": {"type": "dns", "value": "evil.example"}})
    answered = ca.count("POST /chall/1")
    h.refused(*_forced(h), ca.url("/authz/1"), "evil.example", before=before)
    assert ca.count("POST /chall/1") == answered


def test_new_order_without_location(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    async def nowhere(request: web.Request) -> web.StreamResponse:
        await ca.default(request)  # the order is made; only its URL is not given
        return ca.json(ca.order_json(), 201)

    ca.overrides["/order"] = nowhere
    asked = ca.count("POST /authz/*")
    h.refused(*_forced(h), f"{ca.url('/order')}: no usable order URL in answer", before=before)
    assert ca.count("POST /authz/*") == asked  # nothing was done for the unnamed order


def test_finalize_answers_invalid_with_error(ca: FakeCA, h: Harness,
                                             before: dict[str, str]) -> None:
    ca.tweak("/finalize/1", lambda order: {
        **order, "status": "invalid",
        "error": {"type": ERR + "badCSR", "detail": "key too weak", "status": 400}})
    h.refused(*_forced(h), "x.example: order failed: badCSR: key too weak", before=before)
    assert ca.count("POST /cert/1") == 1


# -- what was issued does not match what was asked for -------------------------------------------

def test_certificate_key_differs_from_csr(ca: FakeCA, h: Harness,
                                          before: dict[str, str]) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    ca.issue_chain = lambda csr: pem(ca.pki.leaf(other.public_key(), csr_names(csr)),
                                     ca.pki.cert)
    h.refused(*_forced(h), f"x.example: {ca.url('/cert/1')}: certificate public key does not "
              "match the CSR key", before=before)


@pytest.mark.parametrize(("names", "shown"), [
    (["evil.example"], "['evil.example']"),
    (["x.example", "evil.example"], "['evil.example', 'x.example']"),
    ([], "[]"),
])
def test_certificate_names_differ(ca: FakeCA, h: Harness, before: dict[str, str],
                                  names: list[str], shown: str) -> None:
    ca.issue_chain = lambda csr: pem(ca.pki.leaf(csr.public_key(), names), ca.pki.cert)
    h.refused(*_forced(h), f"x.example: {ca.url('/cert/1')}: certificate names {shown} "
              "differ from requested ['x.example']", before=before)


def test_chain_does_not_verify(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1())
    ca.issue_chain = lambda csr: pem(
        ca.pki.leaf(csr.public_key(), csr_names(csr), signer=impostor), ca.pki.cert)
    h.refused(*_forced(h), f"x.example: {ca.url('/cert/1')}: chain does not verify: "
              "CN=x.example is not signed by CN=Fake Intermediate E1", before=before)


def test_chain_from_another_ca(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    other = TinyCA(intermediate_cn="Fake Intermediate E1")  # same name, other key
    ca.issue_chain = lambda csr: pem(ca.pki.leaf(csr.public_key(), csr_names(csr)),
                                     other.cert)
    h.refused(*_forced(h), "chain does not verify: CN=x.example is not signed by "
              "CN=Fake Intermediate E1", before=before)


def test_leaf_without_issuer(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    ca.issue_chain = lambda csr: pem(ca.pki.leaf(csr.public_key(), csr_names(csr)))
    h.refused(*_forced(h), f"{ca.url('/cert/1')}: the CA sent no issuer certificate",
              before=before)


def test_private_key_in_chain(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    ca.issue_chain = lambda csr: pem(ca.pki.leaf(csr.public_key(), csr_names(csr))) + \
        ca.pki.key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    h.refused(*_forced(h), f"{ca.url('/cert/1')}: chain holds a PRIVATE KEY block",
              before=before)


# Certificates a parser must survive: cryptography parses extensions and keys lazily, so a
# certificate that loads can still fail when its names or key are read.

_SAN = ObjectIdentifier("2.5.29.17")
_STANDIN = ObjectIdentifier("2.5.29.99")   # same DER length as the SAN OID: patched in place
_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
_UNKNOWN_KEY = bytes.fromhex("06072a8648ce3d0209")


def _patched(cert: x509.Certificate, old: bytes, new: bytes) -> x509.Certificate:
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(old) == 1
    text = base64.encodebytes(der.replace(old, new))
    return x509.load_pem_x509_certificate(
        b"-----BEGIN CERTIFICATE-----\n" + text + b"-----END CERTIFICATE-----\n")


def _leaf_with_extra(tiny: TinyCA, csr: x509.CertificateSigningRequest,
                     value: bytes) -> x509.Certificate:
    """A leaf with a second extension whose OID is then patched to subjectAltName."""
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([])).issuer_name(tiny.cert.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=90))
               .add_extension(x509.UnrecognizedExtension(_STANDIN, value), critical=False))
    if value != b"\x30\x03\x82\x01":
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in csr_names(csr)]),
            critical=False)
    return _patched(builder.sign(tiny.key, hashes.SHA256()),
                    b"\x06\x03\x55\x1d\x63", b"\x06\x03\x55\x1d\x11")


def test_certificate_with_two_subject_alt_names(ca: FakeCA, h: Harness,
                                                before: dict[str, str]) -> None:
    """RFC 5280 §4.2: an extension appears at most once. The second SAN could name
    anything; the certificate must be refused, cleanly."""
    ca.issue_chain = lambda csr: pem(_leaf_with_extra(ca.pki, csr, x509.SubjectAlternativeName(
        [x509.DNSName("evil.example")]).public_bytes()), ca.pki.cert)
    h.refused(*_forced(h), f"x.example: {ca.url('/cert/1')}: malformed certificate: ",
              before=before)


def test_certificate_with_unreadable_subject_alt_name(ca: FakeCA, h: Harness,
                                                      before: dict[str, str]) -> None:
    ca.issue_chain = lambda csr: pem(_leaf_with_extra(ca.pki, csr, b"\x30\x03\x82\x01"),
                                     ca.pki.cert)
    h.refused(*_forced(h), f"x.example: {ca.url('/cert/1')}: malformed certificate: ",
              before=before)


def test_certificate_with_unknown_key_algorithm(ca: FakeCA, h: Harness,
                                                before: dict[str, str]) -> None:
    ca.issue_chain = lambda csr: pem(_patched(ca.pki.leaf(csr.public_key(), csr_names(csr)),
                                              _EC_PUBLIC_KEY, _UNKNOWN_KEY), ca.pki.cert)
    h.refused(*_forced(h), f"x.example: {ca.url('/cert/1')}: malformed certificate: ",
              before=before)


def test_issuer_with_unknown_key_algorithm(ca: FakeCA, h: Harness,
                                           before: dict[str, str]) -> None:
    ca.issue_chain = lambda csr: pem(ca.pki.leaf(csr.public_key(), csr_names(csr)),
                                     _patched(ca.pki.cert, _EC_PUBLIC_KEY, _UNKNOWN_KEY))
    h.refused(*_forced(h), f"x.example: {ca.url('/cert/1')}: malformed certificate: ",
              before=before)


@pytest.mark.parametrize("preferred", [[], ["--preferred-chain", "No Such Root"]],
                         ids=["default chain", "preferred chain"])
def test_issuer_of_an_unknown_x509_version(ca: FakeCA, h: Harness, before: dict[str, str],
                                           preferred: list[str]) -> None:
    """An X.509 version field of 1 (v2) makes cryptography raise InvalidVersion, which is no
    ValueError; with a preferred chain, the chain is read before it is verified."""
    der = ca.pki.cert.public_bytes(serialization.Encoding.DER)
    assert der.count(bytes.fromhex("a003020102")) == 1
    v2 = base64.encodebytes(der.replace(bytes.fromhex("a003020102"),
                                        bytes.fromhex("a003020101")))
    ca.issue_chain = lambda csr: pem(ca.pki.leaf(csr.public_key(), csr_names(csr))) + \
        b"-----BEGIN CERTIFICATE-----\n" + v2 + b"-----END CERTIFICATE-----\n"
    h.refused(*h.issue("--force", *preferred), f"x.example: {ca.url('/cert/1')}: ",
              before=before)


# -- URLs and headers that do not parse ------------------------------------------------------

def test_malformed_order_location(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    async def bad(request: web.Request) -> web.StreamResponse:
        await ca.default(request)
        return ca.json(ca.order_json(), 201, Location="http://[::1/order/1")

    ca.overrides["/order"] = bad
    h.refused(*_forced(h), ca.url("/order"), before=before)


def test_malformed_alternate_link(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    """An alternate chain is optional: a Link that is no URL is passed over, not followed,
    and does not stop the default chain (nor the one good alternate the fake CA links)."""
    ca.alternates = [pem(ca.pki.cert)]
    ca.cert_headers = [("Link", '<http://[zz]/alt>;rel="alternate"'),
                       ("Link", '<http://[::1/alt>; rel=alternate'),
                       ("Link", '<http://127.0.0.1:99999/alt>;rel="alternate"')]
    rc, out = h.issue("--force", "--preferred-chain", "No Such Root")
    assert rc == 0, out
    assert h.current() == "versions/2"
    assert ca.requests[-1] == "POST /cert/1/alt/0"  # the good one, and only it
    assert ca.count("POST /cert/1/alt/*") == 1


def test_malformed_url_in_directory(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    ca.tweak("/dir", lambda d: {**d, "newOrder": "http://[::1/order"})
    h.refused(*_forced(h), "http://[::1/order: not a valid URL", before=before)


def test_redirect_to_a_port_out_of_range(ca: FakeCA, h: Harness,
                                         before: dict[str, str]) -> None:
    async def away(request: web.Request) -> web.Response:
        return ca.raw(b"", "text/plain", 302, Location="http://127.0.0.1:99999/dir")

    ca.overrides["/dir"] = away
    h.refused(*_forced(h), ca.directory_url, before=before)


# -- text meant for a terminal ---------------------------------------------------------------------

def test_escapes_in_the_orders_error_object(ca: FakeCA, h: Harness,
                                            before: dict[str, str]) -> None:
    """The order goes to processing, then invalid, with an error object full of escapes."""
    ca.tweak("/finalize/1", lambda order: {**order, "status": "processing"})

    def failed(order: dict[str, Any]) -> dict[str, Any]:
        return {**order, "status": "invalid", "error": {
            "type": ERR + "serverInternal\x1b[8m", "detail": f"no{ESCAPES}",
            "subproblems": [{"type": ERR + "caa", "detail": f"CAA{ESCAPES}",
                             "identifier": {"type": "dns", "value": "x.example"}}]}}

    ca.tweak("/order/1", failed)
    line = h.refused(*_forced(h), "x.example: order failed: serverInternal\\x1b[8m: "
                     "no\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\nFAKE: line\\r", before=before)
    assert "FAKE" not in line.split("\\n")[0]


def test_escapes_in_subproblems(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return ca.problem("rejectedIdentifier", "some names\x1b[31m are refused", 400,
                          subproblems=[
                              {"type": ERR + "caa\x1b[1m", "detail": f"CAA{ESCAPES}",
                               "identifier": {"type": "dns", "value": f"x.example{ESCAPES}"}},
                              {"type": ERR + "dns", "detail": "\u202egnp.exe",
                               "identifier": {"type": "dns", "value": "\x00"}}])

    ca.overrides["/finalize/1"] = refuse
    line = h.refused(*_forced(h), f"{ca.url('/finalize/1')}: rejectedIdentifier: some "
                     "names\\x1b[31m are refused; x.example\\x1b[2J", before=before)
    assert "caa\\x1b[1m: CAA\\x1b[2J" in line
    assert "; \\x00: dns: \\u202egnp.exe" in line


def test_escapes_in_the_challenge_error(ca: FakeCA, h: Harness,
                                        before: dict[str, str]) -> None:
    ca.validate = False

    def invalid(authz: dict[str, Any]) -> dict[str, Any]:
        if ca.count("POST /chall/1") < 2:
            return authz  # still pending before the challenge is answered
        challenge = {**authz["challenges"][0], "status": "invalid", "error": {
            "type": ERR + "incorrectResponse", "detail": f"got{ESCAPES}"}}
        return {**authz, "status": "invalid", "challenges": [challenge]}

    ca.tweak("/authz/1", invalid)
    h.refused(*_forced(h), "x.example: validation failed: incorrectResponse: "
              "got\\x1b[2J\\x1b]0;pwned\\x07", before=before)


@pytest.mark.parametrize("status", ["invalid", "pending"])
def test_escapes_in_the_authorizations_identifier(ca: FakeCA, h: Harness,
                                                  before: dict[str, str], status: str) -> None:
    """The name in an authorization is the CA's text too: it must be escaped like the rest
    (``invalid``: refused at once; ``pending``: the challenge fails, naming it)."""
    ca.validate = False

    def renamed(authz: dict[str, Any]) -> dict[str, Any]:
        authz = {**authz, "identifier": {"type": "dns", "value": f"x.example{ESCAPES}"}}
        if status == "invalid" or ca.count("POST /chall/1") >= 2:
            authz["status"] = "invalid"
        return authz

    ca.tweak("/authz/1", renamed)
    h.refused(*_forced(h), "x.example\\x1b[2J", before=before)


# -- Retry-After and alternate chains at the command line ------------------------------------------

@pytest.mark.parametrize("value", ["-5", "soon", "1.5", "0x10", "Fri, 31 Dec 9999 25:61:99 GMT"])
def test_unparseable_retry_after_falls_back_to_short_polls(
        ca: FakeCA, h: Harness, before: dict[str, str], value: str) -> None:
    """Retry-After that is no delay and no date: polled at short intervals, issued."""
    ca.validate = False

    def slow(authz: dict[str, Any]) -> dict[str, Any]:
        if ca.count("POST /authz/1") >= 5:  # the good run's two, the fetch, two polls
            authz["status"] = "valid"
        return authz

    ca.tweak("/authz/1", slow, **{"Retry-After": value})
    ca.tweak("/chall/1", lambda c: c, **{"Retry-After": value})
    rc, out = _forced(h)
    assert rc == 0, out
    assert h.current() == "versions/2"


def test_thousands_of_alternate_links(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    """1,000 alternates (20 Link headers of 50 links each, 57 KB: within the HTTP layer's
    64 KiB for a head): at most 10 alternate chains are fetched, and the default chain is
    kept when none leads to the preferred root."""
    ca.alternates = [ca.pki.cert.public_bytes(serialization.Encoding.PEM)]
    links = [f'<{ca.url(f"/cert/1/alt/{i}")}>;rel="alternate"' for i in range(1000)]
    ca.cert_headers = [("Link", ", ".join(links[i:i + 50])) for i in range(0, 1000, 50)]
    rc, out = h.issue("--force", "--preferred-chain", "No Such Root")
    assert rc == 0, out
    assert ca.count("POST /cert/1/alt/*") == 10
    assert h.current() == "versions/2"
    assert (h.cert_dir / "chain.pem").read_bytes() == pem(ca.pki.cert)


def test_thousands_of_link_headers(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    """500 separate short Link headers: the HTTP layer refuses the answer (more than 256
    headers); that is one clear failure naming the URL, and no alternate is fetched."""
    ca.alternates = [ca.pki.cert.public_bytes(serialization.Encoding.PEM)]
    ca.cert_headers = [("Link", f'<{ca.url(f"/a/{i}")}>;rel="alternate"') for i in range(500)]
    h.refused(*h.issue("--force", "--preferred-chain", "No Such Root"),
              f"{ca.url('/cert/1')}: ", "too many headers", before=before)
    assert ca.count("POST /cert/1/alt/*") == 0


def test_headers_beyond_64_kib(ca: FakeCA, h: Harness, before: dict[str, str]) -> None:
    """5,000 alternates in Link headers of 300 KB in all: refused as too large, by name."""
    links = [f'<{ca.url(f"/cert/1/alt/{i}")}>;rel="alternate"' for i in range(5000)]
    ca.cert_headers = [("Link", ", ".join(links[i:i + 50])) for i in range(0, 5000, 50)]
    h.refused(*h.issue("--force", "--preferred-chain", "No Such Root"),
              f"{ca.url('/cert/1')}: ", "headers exceed 65536 bytes", before=before)
    assert ca.count("POST /cert/1/alt/*") == 0
