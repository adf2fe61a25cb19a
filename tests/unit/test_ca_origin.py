"""certfleet.ca_origin, and the client that applies it: a URL from the CA is followed only
at the directory URL's origin (scheme, host, port, compared as the connection is made),
and one elsewhere is refused before any connection to it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from certfleet import ca_origin
from certfleet.acme_client import AcmeClient
from certfleet.errors import ProtocolError

from ..adversarial.fakeca import FakeCA

DIRECTORY = "https://ca.example/acme/directory"


@pytest.fixture
def ca() -> Iterator[FakeCA]:
    fake = FakeCA().start()
    yield fake
    fake.stop()


@pytest.mark.parametrize(("url", "expected"), [
    ("https://ca.example/dir", ("https", "ca.example", 443)),
    ("HTTPS://CA.Example:443/x?y=1", ("https", "ca.example", 443)),
    ("http://ca.example/", ("http", "ca.example", 80)),
    ("http://ca.example:8080", ("http", "ca.example", 8080)),
    ("https://[::1]:14000/dir", ("https", "::1", 14000)),
    ("https://user@ca.example/", ("https", "ca.example", 443)),
])
def test_origin_is_normalised(url: str, expected: tuple[str, str, int]) -> None:
    assert ca_origin.origin(url) == expected


@pytest.mark.parametrize("url", ["", "ftp://ca.example/", "https://", "https://ca:99999/",
                                 "https://[::1/", "/relative/path", "https://ca.example:0/"])
def test_no_origin_for_what_is_no_http_url(url: str) -> None:
    assert ca_origin.origin(url) is None


@pytest.mark.parametrize("url", [
    "https://ca.example/acme/new-order",
    "https://CA.EXAMPLE/acme/order/1",
    "https://ca.example:443/acme/authz/1",
    "HTTPS://ca.example/cert/1",
    "https://acct@ca.example/acme/acct/1",  # userinfo is not where the connection goes
])
def test_the_same_origin_is_followed(url: str) -> None:
    ca_origin.require(url, DIRECTORY)


@pytest.mark.parametrize("url", [
    "https://ca.example:8443/acme/order/1",           # another port
    "http://ca.example/acme/order/1",                 # another scheme
    "http://ca.example:443/acme/order/1",             # another scheme, same port
    "https://internal.example/admin",                 # another host
    "https://sub.ca.example/acme/order/1",            # a subdomain is another host
    "https://ca.example.evil.example/x",              # a suffix is another host
    "https://ca.example@169.254.169.254/latest",      # the host is after the @
    "https://169.254.169.254#@ca.example/",           # the rest is a fragment
    "https://ca.example./acme/order/1",               # the absolute name: spelled apart
    "https://127.0.0.1/x",
    "not a url",
])
def test_another_origin_is_refused(url: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        ca_origin.require(url, DIRECTORY)
    message = str(caught.value)
    assert message.endswith(": refused: not at the CA's origin https://ca.example:443 "
                            "(certfleet follows the CA's URLs to that origin only)")
    assert "\n" not in message


def test_the_refusal_escapes_the_url() -> None:
    with pytest.raises(ProtocolError) as caught:
        ca_origin.require("https://x.example/\x1b[2J" + "A" * 5000, DIRECTORY)
    message = str(caught.value)
    assert message.startswith("https://x.example/\\x1b[2J")
    assert len(message) < 500


def test_an_ipv6_origin_is_shown_in_brackets() -> None:
    with pytest.raises(ProtocolError, match=r"origin https://\[::1\]:14000 "):
        ca_origin.require("https://[::2]:14000/x", "https://[::1]:14000/dir")


# -- the client: refused before any connection ------------------------------------------------

def _no_connection(listener: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing connected to the "internal service"


def _signer(url: str, nonce: str, payload: Any) -> dict[str, Any]:
    return {"protected": nonce, "payload": "", "signature": "sig"}


def test_a_post_elsewhere_is_refused_before_connecting(
        ca: FakeCA, silent_ca: socket.socket) -> None:
    port = silent_ca.getsockname()[1]

    async def go() -> None:
        async with AcmeClient(ca.directory_url, allow_http=True) as client:
            for send in (lambda url: client.post(url, {"csr": "x"}, _signer),
                         lambda url: client.post_as_get(url, _signer),
                         client.get):
                with pytest.raises(ProtocolError, match="refused: not at the CA's origin"):
                    await send(f"http://127.0.0.1:{port}/internal")

    asyncio.run(go())
    _no_connection(silent_ca)
    assert ca.requests == []  # not even the directory: the check comes first


@pytest.mark.parametrize("entry", ["newNonce", "newAccount", "newOrder", "revokeCert",
                                   "keyChange", "renewalInfo"])
def test_a_directory_naming_another_origin_is_refused(
        ca: FakeCA, silent_ca: socket.socket, entry: str) -> None:
    elsewhere = f"http://127.0.0.1:{silent_ca.getsockname()[1]}/{entry}"
    ca.tweak("/dir", lambda d: {**d, entry: elsewhere})

    async def go() -> None:
        async with AcmeClient(ca.directory_url, allow_http=True) as client:
            await client.directory()

    with pytest.raises(ProtocolError) as caught:
        asyncio.run(go())
    assert str(caught.value) == (f"{elsewhere}: refused: not at the CA's origin "
                                 f"http://127.0.0.1:{ca.port} (certfleet follows the CA's "
                                 "URLs to that origin only)")
    _no_connection(silent_ca)
    assert ca.requests == ["GET /dir"]

