"""A CA that hands out URLs at another origin (SSRF), after a good certificate was issued.

A hostile CA, or anything that speaks for it under a private ``ca_bundle``, names an
internal service in one of its URLs. certfleet must not send it anything: each such URL
ends the renewal with one line naming the URL and the CA's origin, before any connection
to it; version 1 stays active. The "internal service" is a second fake CA on another
port of the same host (as the reviewer's was), which logs every request it gets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .fakeca import FakeCA, pem
from .harness import Harness


@pytest.fixture
def other() -> Iterator[FakeCA]:
    service = FakeCA().start()
    yield service
    service.stop()


@pytest.fixture
def before(h: Harness) -> dict[str, str]:
    return h.issue_good()


def _at(other: FakeCA, path: str) -> str:
    return other.url(f"/internal{path}")


# (what, how the CA is made to name ``url``)
CASES: dict[str, Callable[[FakeCA, str], None]] = {
    "authorization": lambda ca, url: ca.tweak(
        "/order", lambda o: {**o, "authorizations": [url]}),
    "finalize": lambda ca, url: ca.tweak("/order", lambda o: {**o, "finalize": url}),
    "challenge": lambda ca, url: ca.tweak(
        "/authz/1", lambda a: {**a, "challenges": [{**a["challenges"][0], "url": url}]}),
    "certificate": lambda ca, url: ca.tweak("/finalize/1", lambda o: {**o, "certificate": url}),
    "order Location": lambda ca, url: ca.tweak("/order", lambda o: o, Location=url),
    "account Location": lambda ca, url: ca.tweak("/account", lambda a: a, Location=url),
    "newOrder": lambda ca, url: ca.tweak("/dir", lambda d: {**d, "newOrder": url}),
    "newNonce": lambda ca, url: ca.tweak("/dir", lambda d: {**d, "newNonce": url}),
    "renewalInfo": lambda ca, url: ca.tweak("/dir", lambda d: {**d, "renewalInfo": url}),
}


@pytest.mark.parametrize("what", CASES)
def test_a_url_at_another_origin_is_refused(ca: FakeCA, other: FakeCA, h: Harness,
                                            before: dict[str, str], what: str) -> None:
    url = _at(other, "/x")
    CASES[what](ca, url)
    line = h.refused(*h.issue("--force"), before=before)
    assert line == (f"x.example: failed: {url}: refused: not at the CA's origin "
                    f"http://127.0.0.1:{ca.port} (certfleet follows the CA's URLs to that "
                    "origin only)")
    assert other.requests == []


@pytest.mark.parametrize("where", ["another port", "another host", "another scheme"])
def test_the_origin_is_scheme_host_and_port(ca: FakeCA, h: Harness, before: dict[str, str],
                                            where: str) -> None:
    url = {"another port": f"http://127.0.0.1:{ca.port + 1}/authz/1",
           "another host": f"http://localhost:{ca.port}/authz/1",
           "another scheme": f"https://127.0.0.1:{ca.port}/authz/1"}[where]
    CASES["authorization"](ca, url)
    h.refused(*h.issue("--force"), f"{url}: refused: not at the CA's origin", before=before)


def test_an_alternate_chain_at_another_origin_is_not_fetched(
        ca: FakeCA, other: FakeCA, h: Harness, before: dict[str, str]) -> None:
    """Refused unfetched and passed over, with a warning naming it: the default chain, good,
    is kept (an alternate is optional)."""
    ca.alternates = [pem(ca.pki.cert)]
    url = _at(other, "/alt/0")
    ca.cert_headers = [("Link", f'<{url}>;rel="alternate"')]
    rc, out = h.issue("--force", "--preferred-chain", "No Such Root")
    assert rc == 0, out
    assert h.current() == "versions/2"
    assert f"{url}: refused: not at the CA's origin http://127.0.0.1:{ca.port}" in h.stderr
    assert other.requests == []


def test_an_account_at_another_origin_is_not_kept(ca: FakeCA, other: FakeCA, h: Harness,
                                                  before: dict[str, str]) -> None:
    """The account URL is kept in account.json and signed into every request as ``kid``:
    one at another origin is refused before it is kept or used."""
    [record] = list(h.state.rglob("account.json"))
    kept = record.read_bytes()
    orders = ca.count("POST /order")
    url = _at(other, "/acct")
    ca.tweak("/account", lambda a: a, Location=url)
    h.refused(*h.issue("--force"), f"{url}: refused", before=before)
    assert record.read_bytes() == kept
    assert ca.count("POST /order") == orders  # no request signed with it as kid
    assert other.requests == []


def test_every_authorization_url_is_checked(ca: FakeCA, other: FakeCA, h: Harness,
                                            before: dict[str, str]) -> None:
    """The second of two authorizations at another origin: refused as well as the first.
    Then the CA's own origin spelled in capitals (RFC 3986 §6.2.2.1): followed."""
    good = ca.url("/authz/1")
    ca.tweak("/order", lambda o: {**o, "authorizations": [good, _at(other, "/a2")]})
    h.refused(*h.issue("www." + h.name, "--force"), "/internal/a2: refused", before=before)
    assert other.requests == []
    CASES["authorization"](ca, f"HTTP://127.0.0.1:{ca.port}/authz/1")
    rc, out = h.issue("--force")
    assert rc == 0, out
    assert h.current() == "versions/2"
