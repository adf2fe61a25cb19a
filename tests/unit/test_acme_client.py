"""certfleet.acme_client over real sockets: the in-process fake CA (``tests/adversarial/
fakeca.py``, plain http on loopback) for the ACME conversation, and a small TLS server for
certificate verification. The directory, the nonce pool, signed POSTs and badNonce, GETs and
their redirects, the body cap, Link headers, problem documents and transport failures."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certfleet import acme_client
from certfleet.acme_client import AcmeClient, Response, problem_error
from certfleet.errors import AcmeProblem, BadNonce, ProtocolError, RateLimited, TransportError
from certfleet.http11 import Pool, Reply

from ..adversarial.fakeca import FakeCA
from .pki import CA, new_key

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ERR = "urn:ietf:params:acme:error:"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
def ca() -> Iterator[FakeCA]:
    fake = FakeCA().start()
    yield fake
    fake.stop()


class Recorder:
    """A signer that records what it is asked to sign and returns a recognizable JWS."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Mapping[str, Any] | None]] = []

    def __call__(self, url: str, nonce: str, payload: Mapping[str, Any] | None
                 ) -> Mapping[str, Any]:
        self.calls.append((url, nonce, payload))
        return {"protected": nonce, "payload": json.dumps(payload), "signature": "sig"}

    @property
    def nonces(self) -> list[str]:
        return [nonce for _, nonce, _ in self.calls]


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro
    return asyncio.run(main())


async def with_client(ca: FakeCA, use: Callable[[AcmeClient], Awaitable[Any]],
                      **options: Any) -> Any:
    async with AcmeClient(ca.directory_url, allow_http=True, **options) as client:
        return await use(client)


# -- the directory and the nonce pool (RFC 8555 §7.1.1, §7.2) ---------------------------------

def test_directory_is_fetched_once_per_session(ca: FakeCA) -> None:
    async def use(client: AcmeClient) -> None:
        first = await client.directory()
        assert first.new_order == ca.url("/order")
        assert await client.directory() is first

    run(with_client(ca, use))
    assert ca.count("GET /dir") == 1


def quiet_directory(ca: FakeCA) -> None:
    """The directory answered without a Replay-Nonce (as Boulder's is)."""
    async def answer(request: web.Request) -> web.StreamResponse:
        normal = await ca.default(request)
        del normal.headers["Replay-Nonce"]
        return normal

    ca.overrides["/dir"] = answer


def test_nonces_come_from_answers_and_newnonce_only_when_the_pool_is_empty(ca: FakeCA) -> None:
    signer = Recorder()

    async def use(client: AcmeClient) -> None:
        for _ in range(3):
            await client.post(ca.url("/account"), {"onlyReturnExisting": True}, signer)

    run(with_client(ca, use))
    assert ca.count("HEAD /nonce") == 0
    assert ca.requests.count("POST /account") == 3
    # The directory's answer brought nonce1, used first, then each POST uses the one its
    # predecessor's answer brought.
    assert signer.nonces == ["nonce1", "nonce2", "nonce3"]


def test_newnonce_is_asked_when_no_answer_brought_one(ca: FakeCA) -> None:
    quiet_directory(ca)
    signer = Recorder()

    async def use(client: AcmeClient) -> None:
        for _ in range(3):
            await client.post(ca.url("/account"), {"onlyReturnExisting": True}, signer)

    run(with_client(ca, use))
    assert ca.count("HEAD /nonce") == 1
    assert signer.nonces == ["n2", "nonce3", "nonce4"]  # (the directory took number 1)


def test_the_newest_nonce_is_used_first(ca: FakeCA) -> None:
    signer = Recorder()

    async def use(client: AcmeClient) -> list[str]:
        await client.directory()   # its answer brings a nonce
        await client.get(ca.url("/order/1"))  # so does this one: the newer
        await client.post(ca.url("/account"), None, signer)
        return signer.nonces

    nonces = run(with_client(ca, use))
    assert ca.count("HEAD /nonce") == 0
    assert nonces == ["nonce2"]


@pytest.mark.parametrize(("nonce", "kept"), [("x" * 256, False), ("nönce", False),
                                           ("y" * 255, True)])
def test_a_nonce_is_pooled_only_if_it_is_plausible(ca: FakeCA, nonce: str, kept: bool) -> None:
    """A huge or non-ASCII Replay-Nonce is not kept (nor sent back to the CA)."""
    async def answer(request: web.Request) -> web.StreamResponse:
        return ca.raw(b'{"status": "valid"}', "application/json", **{"Replay-Nonce": nonce})

    ca.overrides["/account"] = answer
    signer = Recorder()

    async def use(client: AcmeClient) -> None:
        for _ in range(2):
            await client.post(ca.url("/account"), None, signer)

    run(with_client(ca, use))
    # The directory's answer brought "nonce1"; the POST's answer brought ``nonce``, or
    # nothing usable, and then newNonce is asked.
    assert signer.nonces == ["nonce1", nonce if kept else "n3"]


def test_no_nonce_from_newnonce_is_an_error(ca: FakeCA) -> None:
    ca.send_nonces = False

    async def use(client: AcmeClient) -> None:
        await client.post(ca.url("/account"), None, Recorder())

    with pytest.raises(ProtocolError, match=r"/nonce: no Replay-Nonce in answer \(HTTP 200\)"):
        run(with_client(ca, use))


# -- signed requests (RFC 8555 §6.2, §6.3, §6.5) -----------------------------------------------

def test_post_sends_the_signers_jws_as_jose_json(ca: FakeCA) -> None:
    seen: dict[str, Any] = {}

    async def account(request: web.Request) -> web.StreamResponse:
        seen.update(headers=dict(request.headers), body=await request.read())
        return await ca.default(request)

    ca.overrides["/account"] = account
    signer = Recorder()

    async def use(client: AcmeClient) -> Response:
        return await client.post(ca.url("/account"), {"termsOfServiceAgreed": True}, signer,
                                 accept="application/pem-certificate-chain")

    response = run(with_client(ca, use))
    assert signer.calls[0][0] == ca.url("/account")
    assert signer.calls[0][2] == {"termsOfServiceAgreed": True}
    assert json.loads(seen["body"]) == {"protected": signer.nonces[0],
                                        "payload": '{"termsOfServiceAgreed": true}',
                                        "signature": "sig"}
    assert seen["headers"]["Content-Type"] == "application/jose+json"
    assert seen["headers"]["Accept"] == "application/pem-certificate-chain"
    assert seen["headers"]["User-Agent"] == acme_client.USER_AGENT
    assert seen["headers"]["User-Agent"].startswith("certfleet/")
    assert response.status == 200
    assert response.location == ca.url("/acct/1")
    assert response.json() == {"status": "valid"}


def test_post_as_get_signs_an_empty_payload_and_sends_no_accept(ca: FakeCA) -> None:
    seen: dict[str, str] = {}

    async def order(request: web.Request) -> web.StreamResponse:
        seen.update(request.headers)
        return await ca.default(request)

    ca.overrides["/order/1"] = order
    signer = Recorder()

    async def use(client: AcmeClient) -> Response:
        return await client.post_as_get(ca.url("/order/1"), signer)

    response = run(with_client(ca, use))
    assert signer.calls[0][2] is None
    assert "Accept" not in seen   # certfleet asked for nothing in particular
    assert response.json()["status"] == "pending"


def test_bad_nonce_is_retried_with_the_nonce_it_brought(ca: FakeCA) -> None:
    tries: list[int] = []

    async def flaky(request: web.Request) -> web.StreamResponse:
        tries.append(1)
        if len(tries) <= 2:
            return ca.problem("badNonce", "stale", 400)
        return await ca.default(request)

    ca.overrides["/account"] = flaky
    signer = Recorder()
    response = run(with_client(ca, lambda c: c.post(ca.url("/account"), None, signer)))
    assert response.status == 200
    assert len(signer.calls) == 3
    assert ca.count("HEAD /nonce") == 0   # the retries used the nonces of the errors
    assert len(set(signer.nonces)) == 3


@pytest.mark.parametrize("limit", [0, 3])
def test_bad_nonce_forever_gives_up_after_the_limit(ca: FakeCA, limit: int) -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        return ca.problem("badNonce", "stale", 400)

    ca.overrides["/account"] = never
    signer = Recorder()
    with pytest.raises(ProtocolError, match=rf"/account: badNonce {limit + 1} times in a row; "
                                            "giving up"):
        run(with_client(ca, lambda c: c.post(ca.url("/account"), None, signer),
                        max_bad_nonce=limit))
    assert len(signer.calls) == limit + 1


def test_the_default_bad_nonce_limit_is_a_hundred_retries() -> None:
    assert AcmeClient("https://ca.example/dir").max_bad_nonce == 100


def test_an_error_answer_raises_its_problem(ca: FakeCA) -> None:
    async def limited(request: web.Request) -> web.StreamResponse:
        return ca.json({"type": f"{ERR}rateLimited", "detail": "too many",
                        "subproblems": [{"type": f"{ERR}rejectedIdentifier", "detail": "no",
                                         "identifier": {"type": "dns", "value": "a.example"}},
                                        {"type": f"{ERR}caa", "detail": "caa"}]},
                       429, **{"Retry-After": "120"})

    ca.overrides["/order"] = limited
    with pytest.raises(RateLimited) as caught:
        run(with_client(ca, lambda c: c.post(ca.url("/order"), {}, Recorder())))
    error = caught.value
    assert (error.url, error.status, error.retry_after) == (ca.url("/order"), 429, 120.0)
    assert error.subproblems == (("a.example", f"{ERR}rejectedIdentifier", "no"),
                                 ("?", f"{ERR}caa", "caa"))
    assert str(error) == (f"{ca.url('/order')}: rateLimited: too many; a.example: "
                          "rejectedIdentifier: no; ?: caa: caa")


def test_status_399_is_an_answer_and_400_an_error(ca: FakeCA) -> None:
    for status, ok in ((299, True), (400, False)):
        async def answer(request: web.Request, status: int = status) -> web.StreamResponse:
            return ca.json({"type": f"{ERR}malformed", "detail": "x"}, status)

        ca.overrides["/account"] = answer
        if ok:
            response = run(with_client(ca, lambda c: c.post(ca.url("/account"), None,
                                                            Recorder())))
            assert response.status == status
        else:
            with pytest.raises(AcmeProblem, match="malformed: x"):
                run(with_client(ca, lambda c: c.post(ca.url("/account"), None, Recorder())))


def test_a_redirect_answering_a_post_is_refused(ca: FakeCA) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"", "text/plain", 302, Location=ca.url("/order/1"))

    ca.overrides["/order"] = moved
    with pytest.raises(ProtocolError, match=r"/order: unexpected redirect \(HTTP 302\)"):
        run(with_client(ca, lambda c: c.post(ca.url("/order"), {}, Recorder())))
    assert ca.count("POST /order/1") == 0


@pytest.mark.parametrize("status", [300, 399])
def test_any_3xx_answering_a_post_is_refused(ca: FakeCA, status: int) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json", status)

    ca.overrides["/order"] = moved
    with pytest.raises(ProtocolError, match="unexpected redirect"):
        run(with_client(ca, lambda c: c.post(ca.url("/order"), {}, Recorder())))


# -- unauthenticated GETs and their redirects ---------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_get_follows_same_origin_redirects(ca: FakeCA, status: int) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"", "text/plain", status, Location="/dir")

    ca.overrides["/old-dir"] = moved
    response = run(with_client(ca, lambda c: c.get(ca.url("/old-dir"))))
    assert response.url == ca.url("/dir")
    assert "newNonce" in response.json()


def test_get_refuses_a_redirect_to_another_origin(ca: FakeCA) -> None:
    for elsewhere in ("http://127.0.0.2:1/dir", f"https://127.0.0.1:{ca.port}/dir",
                      "http://localhost/dir"):
        async def moved(request: web.Request, where: str = elsewhere) -> web.StreamResponse:
            return ca.raw(b"", "text/plain", 302, Location=where)

        ca.overrides["/old-dir"] = moved
        with pytest.raises(TransportError, match=f"redirect to another host refused: "
                                                 f"{elsewhere}"):
            run(with_client(ca, lambda c: c.get(ca.url("/old-dir"))))


def test_get_follows_at_most_three_redirects(ca: FakeCA) -> None:
    async def hop(request: web.Request) -> web.StreamResponse:
        n = int(request.path.rsplit("/", 1)[1])
        return ca.raw(b"", "text/plain", 302, Location=f"/hop/{n + 1}")

    async def last(request: web.Request) -> web.StreamResponse:
        return ca.json({"arrived": True})

    ca.prefixes["/hop/"] = hop
    ca.overrides["/hop/3"] = last
    response = run(with_client(ca, lambda c: c.get(ca.url("/hop/0"))))
    assert response.json() == {"arrived": True}
    ca.overrides["/hop/4"] = last
    del ca.overrides["/hop/3"]
    with pytest.raises(TransportError, match=r"/hop/0: more than 3 redirects"):
        run(with_client(ca, lambda c: c.get(ca.url("/hop/0"))))


def test_a_redirect_without_location_is_the_answer(ca: FakeCA) -> None:
    async def odd(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json", 302)

    ca.overrides["/odd"] = odd
    response = run(with_client(ca, lambda c: c.get(ca.url("/odd"))))
    assert response.status == 302


def test_get_error_is_a_problem_naming_the_url_reached(ca: FakeCA) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"", "text/plain", 301, Location="/gone")

    async def gone(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"<html>gone</html>", "text/html", 404)

    ca.overrides["/renewal"] = moved
    ca.overrides["/gone"] = gone
    with pytest.raises(ProtocolError, match=r"/gone: HTTP 404: <html>gone</html>$"):
        run(with_client(ca, lambda c: c.get(ca.url("/renewal"))))
    for status, fails in ((399, False), (400, True)):
        async def answer(request: web.Request, status: int = status) -> web.StreamResponse:
            return ca.raw(b"x", "text/plain", status)

        ca.overrides["/x"] = answer
        if fails:
            with pytest.raises(ProtocolError, match=f"HTTP {status}"):
                run(with_client(ca, lambda c: c.get(ca.url("/x"))))
        else:
            assert run(with_client(ca, lambda c: c.get(ca.url("/x")))).status == status


# -- URLs, schemes, TLS ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://ca.example/dir", "ftp://ca.example/dir", "https:///dir",
                                 "file:///etc/passwd"])
def test_only_https_urls_unless_allowed(url: str) -> None:
    with pytest.raises(ProtocolError, match="refusing non-https URL from the CA"):
        AcmeClient(url)


def test_plain_http_allowed_only_when_asked() -> None:
    assert AcmeClient("http://ca.example/dir", allow_http=True).allow_http
    with pytest.raises(ProtocolError, match="refusing non-https"):
        AcmeClient("ftp://ca.example/dir", allow_http=True)
    with pytest.raises(ProtocolError, match="not a valid URL"):
        AcmeClient("https://ca.example:99999/dir")


def test_a_directory_naming_a_plain_http_url_is_refused(ca: FakeCA) -> None:
    ca.tweak("/dir", lambda d: {**d, "newOrder": "ftp://elsewhere/order"})
    with pytest.raises(ProtocolError, match="ftp://elsewhere/order: refusing non-https"):
        run(with_client(ca, lambda c: c.directory()))


def test_a_malformed_directory_names_its_url(ca: FakeCA) -> None:
    ca.tweak("/dir", lambda d: {k: v for k, v in d.items() if k != "newNonce"})
    with pytest.raises(ProtocolError, match=rf"{ca.url('/dir')}: directory: field 'newNonce'"):
        run(with_client(ca, lambda c: c.directory()))


def test_post_checks_the_url_before_sending(ca: FakeCA) -> None:
    with pytest.raises(ProtocolError, match="refusing non-https"):
        run(with_client(ca, lambda c: c.post("ftp://elsewhere/x", None, Recorder())))
    assert ca.requests == []


@asynccontextmanager
async def tls_server(cert_pem: bytes, key_pem: bytes, handler: Handler, tmp: Path
                     ) -> AsyncIterator[int]:
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def _server_pair(tmp_path: Path) -> tuple[CA, bytes, bytes]:
    root = CA("Test TLS Root")
    key = new_key()
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(root.name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(root.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (tmp_path / "root.pem").write_bytes(root.pem)
    return root, cert, key_pem


def test_a_ca_bundle_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    bundle = tmp_path / "missing.pem"

    async def scenario() -> None:
        async with AcmeClient("https://ca.test/dir", ca_bundle=bundle):
            pass

    with pytest.raises(TransportError, match=rf"^{bundle}: not a usable CA bundle: "
                                             r"\[Errno 2\] No such file or directory$"):
        run(scenario())


def test_tls_is_verified_against_the_given_bundle(tmp_path: Path) -> None:
    _, cert, key = _server_pair(tmp_path)

    async def hello(request: web.Request) -> web.StreamResponse:
        return web.json_response({"hello": True})

    async def go(bundle: Path | None) -> Response:
        async with tls_server(cert, key, hello, tmp_path) as port, \
                AcmeClient(f"https://127.0.0.1:{port}/dir", ca_bundle=bundle) as client:
            return await client.get(f"https://127.0.0.1:{port}/dir")

    assert asyncio.run(go(tmp_path / "root.pem")).json() == {"hello": True}
    with pytest.raises(TransportError, match="TLS certificate not trusted: "):
        asyncio.run(go(None))
    other = CA("Another Root")
    (tmp_path / "other.pem").write_bytes(other.pem)
    with pytest.raises(TransportError, match="TLS certificate not trusted"):
        asyncio.run(go(tmp_path / "other.pem"))


def test_tls_is_set_up_once_and_only_when_https_is_spoken(
        tmp_path: Path, ca: FakeCA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a trust store costs tens of milliseconds: a session over plain http never
    does it, a session over https does it once for all its connections, against the
    bundle given. (An https link from a plain-http directory is refused now: another
    origin, ``ca_origin``.)"""
    _, cert, key = _server_pair(tmp_path)
    made: list[str | None] = []
    real = ssl.create_default_context

    def counted(purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH, *, cafile: str | None = None,
                **kwargs: Any) -> ssl.SSLContext:
        if purpose == ssl.Purpose.SERVER_AUTH:  # a client's, not the test server's
            made.append(cafile)
        return real(purpose, cafile=cafile, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)

    async def hello(request: web.Request) -> web.StreamResponse:
        return web.json_response({"hello": True})

    run(with_client(ca, lambda c: c.directory()))
    assert made == []

    async def linked(bundle: Path) -> list[Any]:
        async with tls_server(cert, key, hello, tmp_path) as port, \
                AcmeClient(f"https://127.0.0.1:{port}/dir", ca_bundle=bundle,
                           connections=2) as client:
            url = f"https://127.0.0.1:{port}/x"
            both = await asyncio.gather(client.get(url), client.get(url))  # two connections
            return [answer.json() for answer in both]

    assert run(linked(tmp_path / "root.pem")) == [{"hello": True}] * 2
    assert made == [str(tmp_path / "root.pem")]
    (tmp_path / "other.pem").write_bytes(CA("Another Root").pem)
    with pytest.raises(TransportError, match="TLS certificate not trusted"):
        run(linked(tmp_path / "other.pem"))
    with pytest.raises(TransportError, match=r"missing.pem: not a usable CA bundle"):
        run(linked(tmp_path / "missing.pem"))


# -- what comes back: size, encoding, links, dates ------------------------------------------------

def test_bodies_are_capped_at_one_mebibyte(ca: FakeCA) -> None:
    for size, fits in ((acme_client.MAX_BODY, True), (acme_client.MAX_BODY + 1, False)):
        async def big(request: web.Request, size: int = size) -> web.StreamResponse:
            return ca.raw(b"x" * size, "application/octet-stream")

        ca.overrides["/big"] = big
        if fits:
            response = run(with_client(ca, lambda c: c.get(ca.url("/big"))))
            assert len(response.body) == size
        else:
            with pytest.raises(TransportError, match=f"response of {size} bytes exceeds "
                                                     f"{acme_client.MAX_BODY}"):
                run(with_client(ca, lambda c: c.get(ca.url("/big"))))


def test_a_body_without_length_is_capped_while_read(ca: FakeCA) -> None:
    for chunks, fits in ((16, True), (17, False)):
        async def streamed(request: web.Request, chunks: int = chunks) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(chunks):
                await response.write(b" " * 65536)
            await response.write_eof()
            return response

        ca.overrides["/stream"] = streamed
        if fits:
            response = run(with_client(ca, lambda c: c.get(ca.url("/stream"))))
            assert len(response.body) == 16 * 65536 == acme_client.MAX_BODY
        else:
            with pytest.raises(TransportError, match=r"/stream: response exceeds 1048576 bytes"):
                run(with_client(ca, lambda c: c.get(ca.url("/stream"))))


def test_a_compressed_body_is_not_inflated(ca: FakeCA) -> None:
    """Inflating would let 1 MiB on the wire become gigabytes in memory."""
    packed = gzip.compress(b'{"status": "valid"}' + b" " * 5_000_000)

    async def bomb(request: web.Request) -> web.StreamResponse:
        return ca.raw(packed, "application/json", **{"Content-Encoding": "gzip"})

    ca.overrides["/bomb"] = bomb
    response = run(with_client(ca, lambda c: c.get(ca.url("/bomb"))))
    assert response.body == packed
    with pytest.raises(ProtocolError, match="invalid JSON"):
        response.json()


def test_link_headers_are_resolved_and_read(ca: FakeCA) -> None:
    async def linked(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json", extra=[
            ("Link", '</dir>;rel="index", <alt/1>; rel=alternate'),
            ("Link", f'<{ca.url("/cert/1/alt/2")}>;title="x"; REL = "alternate"'),
            ("Link", 'no-brackets;rel="alternate"'),
            ("Link", '<http://[zz]/bad>;rel="alternate"'),
        ])

    ca.overrides["/cert/1"] = linked
    response = run(with_client(ca, lambda c: c.get(ca.url("/cert/1"))))
    assert response.link("alternate") == [ca.url("/cert/alt/1"), ca.url("/cert/1/alt/2")]
    assert response.link("index") == [ca.url("/dir")]
    assert response.link("up") == []


def test_at_most_a_hundred_links(ca: FakeCA) -> None:
    one = ", ".join(f"<{ca.url(f'/alt/{i}')}>;rel=alternate" for i in range(150))

    async def many(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json", extra=[("Link", one)] * 3)

    ca.overrides["/cert/1"] = many
    response = run(with_client(ca, lambda c: c.get(ca.url("/cert/1"))))
    assert response.link("alternate") == [ca.url(f"/alt/{i}") for i in range(100)]


def test_the_date_of_the_last_answer_is_noted(ca: FakeCA) -> None:
    async def dated(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json", Date="Sun, 29 Nov 2026 12:00:00 GMT")

    ca.overrides["/dated"] = dated

    async def use(client: AcmeClient) -> datetime | None:
        assert client.server_date is None
        await client.get(ca.url("/dated"))
        return client.server_date

    assert run(with_client(ca, use)) == NOW


@pytest.mark.parametrize(("value", "expected"), [
    ("Sun, 29 Nov 2026 12:00:00 GMT", NOW),
    ("Sun, 29 Nov 2026 12:00:00 -0000", NOW),   # RFC 2822's "no zone known": taken as UTC
    ("Sun, 29 Nov 2026 13:00:00 +0100", NOW),
    ("yesterday", None), ("", None), (None, None),
])
def test_date_values(value: str | None, expected: datetime | None) -> None:
    client = AcmeClient("https://ca.example/dir")
    client._note_date(value)
    assert client.server_date == expected
    if expected is not None:
        assert client.server_date is not None
        assert client.server_date.utcoffset() is not None


def test_requests_are_counted_by_method(ca: FakeCA) -> None:
    async def use(client: AcmeClient) -> AcmeClient:
        await client.post(ca.url("/account"), None, Recorder())
        await client.get(ca.url("/order/1"))
        return client

    quiet_directory(ca)
    client = run(with_client(ca, use))
    assert dict(client.requests) == {"GET": 2, "HEAD": 1, "POST": 1}
    assert client.total_requests == 4


# -- transport failures ----------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_nothing_listening_is_a_transport_error() -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}/dir"

    async def go() -> None:
        async with AcmeClient(url, allow_http=True) as client:
            await client.directory()

    with pytest.raises(TransportError) as caught:
        asyncio.run(go())
    assert str(caught.value) == f"{url}: cannot connect: Connection refused"


def test_a_ca_that_never_answers_times_out(ca: FakeCA) -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return await ca.default(request)

    ca.overrides["/dir"] = stall
    with pytest.raises(TransportError, match=r"/dir: timed out$"):
        run(with_client(ca, lambda c: c.directory(), timeout=0.3))


def test_a_connection_cut_mid_answer_is_a_transport_error(ca: FakeCA) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"{")
        assert request.transport is not None
        request.transport.close()
        return response

    ca.overrides["/dir"] = cut
    with pytest.raises(TransportError, match=r"/dir: "):
        run(with_client(ca, lambda c: c.directory()))


def test_a_transport_failure_is_named_with_control_characters_escaped() -> None:
    """The pool's message reaches the operator through safe_text: a hostile Location cannot
    move the cursor when the request to it fails (here refused before connecting: no control
    character is ever sent in a request line)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/\x1b[31mred"

    async def use() -> None:
        async with AcmeClient(url, allow_http=True) as client:
            await client.get(url)

    with pytest.raises(TransportError, match="not a request target") as caught:
        asyncio.run(use())
    assert "\x1b" not in str(caught.value)
    assert "\\x1b[31mred" in str(caught.value)


def test_close_twice_and_reopen(ca: FakeCA) -> None:
    async def go() -> None:
        client = AcmeClient(ca.directory_url, allow_http=True)
        await client.close()
        await client.get(ca.url("/dir"))   # opens on first use
        await client.open()                # already open: the same session
        await client.close()
        await client.close()
        await client.get(ca.url("/dir"))   # and again after closing
        await client.close()

    asyncio.run(go())
    assert ca.count("GET /dir") == 2


# -- responses and problem documents as values -----------------------------------------------------

def test_response_values() -> None:
    response = Response("https://ca.example/acme/order/1", 201,
                        {"Content-Type": " Application/JSON ; charset=utf-8",
                         "Location": "../authz/2", "Retry-After": "30"}, b'{"a": 1}',
                        (("alternate", "https://ca.example/alt/1"), ("up", "https://up")))
    assert response.content_type == "application/json"
    assert response.location == "https://ca.example/acme/authz/2"
    assert response.retry_after(NOW) == 30.0
    assert response.link("up") == ["https://up"]
    assert response.json() == {"a": 1}
    bare = Response("https://ca.example/x", 200, {}, b"{}")
    assert bare.content_type == ""
    assert bare.location is None
    assert bare.retry_after(NOW) is None
    with pytest.raises(ProtocolError, match=r"^https://ca.example/x: expected JSON, got no "
                                            "Content-Type$"):
        bare.json()
    problem = Response("https://ca.example/x", 400,
                       {"Content-Type": "application/problem+json"}, b'{"type": 5}')
    assert problem.json() == {"type": 5}
    html = Response("https://ca.example/x", 200, {"Content-Type": "text/html"}, b"{}")
    with pytest.raises(ProtocolError, match=r"expected JSON, got text/html$"):
        html.json()
    broken = Response("https://ca.example/x", 200, {"Content-Type": "application/json"}, b"{")
    with pytest.raises(ProtocolError, match=r"^https://ca.example/x: invalid JSON: "):
        broken.json()


def test_header_names_are_looked_up_in_any_case() -> None:
    headers = acme_client._headers(Reply(200, (("replay-nonce", "first"), ("link", "<x>"),
                                               ("replay-nonce", "second")), b""))
    assert headers["Replay-Nonce"] == "first"       # the first of repeated headers
    assert headers.get("LINK") == "<x>"
    assert "REPLAY-NONCE" in headers
    assert "Location" not in headers
    assert headers.get("Location", "none") == "none"
    assert 5 not in headers
    with pytest.raises(KeyError):
        _ = headers["Location"]


def test_problem_error_values() -> None:
    url = "https://ca.example/acme/order"
    body = json.dumps({"type": f"{ERR}badNonce", "detail": "old"}).encode()
    error = problem_error(url, Response(url, 400, {"Retry-After": "60"}, body), NOW)
    assert isinstance(error, BadNonce)
    assert (error.url, error.status, error.detail, error.retry_after) == (url, 400, "old", 60.0)
    text = Response(url, 503, {}, b"\x1b[2J" + b"x" * 300)
    error = problem_error(url, text, NOW)
    assert type(error) is ProtocolError
    assert str(error) == f"{url}: HTTP 503: \\x1b[2J" + "x" * 196
    not_problem = problem_error(url, Response(url, 500, {}, b"[1]"), NOW)
    assert type(not_problem) is ProtocolError


def test_join_and_same_origin() -> None:
    assert acme_client._join("https://ca.example/a/b", "c") == "https://ca.example/a/c"
    assert acme_client._join("https://ca.example/a/b", "https://x.example/") == \
        "https://x.example/"
    assert acme_client._join("https://ca.example/a", "http://[zz]/") is None
    assert acme_client._join("https://ca.example/a", "https://ca.example:99999/") is None
    same = acme_client._same_origin
    assert same("https://ca.example/a", "https://CA.example:443/b") is False  # port named
    assert same("https://ca.example/a", "https://CA.example/b")
    assert not same("https://ca.example/a", "http://ca.example/a")
    assert not same("https://ca.example/a", "https://ca.example:8443/a")
    assert not same("https://ca.example/a", "https://cb.example/a")
    assert not same("https://ca.example/a", "https://[::1/a")


# -- what the mutation run found missing -----------------------------------------------------------

def test_links_beyond_the_caps_are_not_read(ca: FakeCA) -> None:
    """At most 100 Link headers, 100 values each: what comes after is never looked at."""
    good = f'<{ca.url("/alt/late")}>;rel="alternate"'
    junk = "no-brackets;rel=alternate"     # not a link: skipped

    async def late_value(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json",
                      extra=[("Link", ", ".join([junk] * 100 + [good]))])

    async def late_header(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json", extra=[("Link", junk)] * 100 + [("Link", good)])

    async def in_time(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json",
                      extra=[("Link", ", ".join([junk] * 99 + [good]))] * 1
                      + [("Link", junk)] * 98 + [("Link", good)])

    for handler, found in ((late_value, []), (late_header, []),
                           (in_time, [ca.url("/alt/late")] * 2)):
        ca.overrides["/cert/1"] = handler
        response = run(with_client(ca, lambda c: c.get(ca.url("/cert/1"))))
        assert response.link("alternate") == found


def test_a_malformed_link_value_spoils_nothing_after_it(ca: FakeCA) -> None:
    async def mixed(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json", extra=[(
            "Link", f'<{ca.url("/half")};rel="alternate", {ca.url("/x")}>;rel="alternate", '
                    f'<{ca.url("/alt/1")}>;rel="alternate"')])

    ca.overrides["/cert/1"] = mixed
    response = run(with_client(ca, lambda c: c.get(ca.url("/cert/1"))))
    assert response.link("alternate") == [ca.url("/alt/1")]


def test_a_relation_type_that_is_a_uri(ca: FakeCA) -> None:
    """RFC 8288 §2.1.2: extension relation types are URIs, '=' and all."""
    rel = "https://rel.example/types?kind=X"

    async def linked(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"{}", "application/json",
                      extra=[("Link", f'<{ca.url("/other")}>; rel="{rel}"')])

    ca.overrides["/cert/1"] = linked
    response = run(with_client(ca, lambda c: c.get(ca.url("/cert/1"))))
    assert response.link(rel) == [ca.url("/other")]


def test_an_error_body_that_is_not_utf8_is_shown_escaped(ca: FakeCA) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        return ca.raw(b"\xff\xfeoops", "text/html", 500)

    ca.overrides["/order"] = broken
    with pytest.raises(ProtocolError) as caught:
        run(with_client(ca, lambda c: c.post(ca.url("/order"), {}, Recorder())))
    assert str(caught.value) == f"{ca.url('/order')}: HTTP 500: \ufffd\ufffdoops"


def _http_date(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize("method", ["post", "get"])
def test_retry_after_as_a_date_is_counted_from_now(ca: FakeCA, method: str) -> None:
    async def limited(request: web.Request) -> web.StreamResponse:
        return ca.json({"type": f"{ERR}rateLimited", "detail": "slow down"}, 429,
                       **{"Retry-After": _http_date(120)})

    ca.overrides["/limited"] = limited

    async def use(client: AcmeClient) -> Response:
        if method == "post":
            return await client.post(ca.url("/limited"), {}, Recorder())
        return await client.get(ca.url("/limited"))

    with pytest.raises(RateLimited) as caught:
        run(with_client(ca, use))
    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 121


def test_now_is_aware_utc() -> None:
    now = AcmeClient("https://ca.example/dir").now()
    assert now.tzinfo is UTC
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5


def test_response_retry_after_as_a_date() -> None:
    response = Response("https://ca.example/x", 503,
                        {"Retry-After": "Sun, 29 Nov 2026 12:05:00 GMT"}, b"")
    assert response.retry_after(NOW) == 300.0


def test_the_time_limits() -> None:
    """30 seconds a request (RFC 8555 gives none; a hung CA must not hang a run), at most
    10 of them to connect."""
    async def pools() -> tuple[Pool, Pool]:
        default = AcmeClient("https://ca.example/dir")
        short = AcmeClient("https://ca.example/dir", timeout=4)
        await default.open()
        await short.open()
        assert default._pool is not None
        assert short._pool is not None
        return default._pool, short._pool

    default, short = asyncio.run(pools())
    assert (default.timeout, default.connect_timeout) == (30.0, 10.0)
    assert (short.timeout, short.connect_timeout) == (4, 4)


@pytest.mark.parametrize(("connections", "expected"), [(None, 4), (2, 2)])
def test_connections_to_the_ca_are_bounded(ca: FakeCA, connections: int | None,
                                           expected: int) -> None:
    busy = {"now": 0, "most": 0}

    async def slow(request: web.Request) -> web.StreamResponse:
        busy["now"] += 1
        busy["most"] = max(busy["most"], busy["now"])
        await asyncio.sleep(0.2)
        busy["now"] -= 1
        return ca.json({})

    ca.overrides["/slow"] = slow
    options = {} if connections is None else {"connections": connections}

    async def use(client: AcmeClient) -> None:
        await asyncio.gather(*(client.get(ca.url("/slow")) for _ in range(7)))

    run(with_client(ca, use, **options))
    assert busy["most"] == expected


def test_the_client_keeps_to_its_request_rate(ca: FakeCA) -> None:
    """At 2 requests/s (a burst of one), the directory and two GETs take at least a
    second. Only a lower bound: a loaded machine makes the run longer, never shorter."""
    async def use(client: AcmeClient) -> float:
        start = asyncio.get_running_loop().time()
        await client.directory()
        await client.get(ca.url("/dir"))
        await client.get(ca.url("/dir"))
        return asyncio.get_running_loop().time() - start

    assert run(with_client(ca, use, rate=2.0)) >= 0.99
    assert ca.count("GET /dir") == 3


def test_the_nonce_pool_keeps_the_newest_64(ca: FakeCA) -> None:
    async def quiet(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, body=b"{}",
                            headers={"Content-Type": "application/json"})

    ca.overrides["/account"] = quiet      # its answers bring no nonce
    signer = Recorder()

    async def use(client: AcmeClient) -> None:
        for _ in range(70):               # 71 nonces offered, 64 kept
            await client.get(ca.url("/order/1"))
        for _ in range(65):
            await client.post(ca.url("/account"), None, signer)

    run(with_client(ca, use))
    assert ca.count("HEAD /nonce") == 1
    # The directory's nonce1 and the GETs' nonce2 to nonce71: the newest 64 are kept.
    assert signer.nonces[:2] == ["nonce71", "nonce70"]
    assert signer.nonces[63] == "nonce8"
    assert signer.nonces[64] == "n72"     # the pool ran dry: newNonce


def test_https_is_allowed_with_plain_http(ca: FakeCA) -> None:
    client = AcmeClient("https://ca.example/dir", allow_http=True)
    client._check_url("https://ca.example/order")
    with pytest.raises(ProtocolError) as caught:
        AcmeClient("http://ca.example/dir")
    assert str(caught.value) == ("http://ca.example/dir: refusing non-https URL from the CA "
                                 "(plain http only with --insecure-http)")


def test_post_as_get_asks_for_what_it_accepts(ca: FakeCA) -> None:
    seen: dict[str, str] = {}

    async def cert(request: web.Request) -> web.StreamResponse:
        seen.update(request.headers)
        return ca.raw(b"chain", acme_client.PEM_CHAIN)

    ca.overrides["/cert/9"] = cert
    response = run(with_client(ca, lambda c: c.post_as_get(
        ca.url("/cert/9"), Recorder(), accept=acme_client.PEM_CHAIN)))
    assert seen["Accept"] == "application/pem-certificate-chain"
    assert response.body == b"chain"


def test_only_method_url_and_status_are_logged(ca: FakeCA,
                                               caplog: pytest.LogCaptureFixture) -> None:
    tries: list[int] = []

    async def flaky(request: web.Request) -> web.StreamResponse:
        tries.append(1)
        if len(tries) == 1:
            return ca.problem("badNonce", "stale", 400)
        return await ca.default(request)

    ca.overrides["/account"] = flaky
    with caplog.at_level(logging.DEBUG, logger="certfleet.acme_client"):
        run(with_client(ca, lambda c: c.post(ca.url("/account"), {"secret": "s3cr3t"},
                                             Recorder())))
    assert caplog.messages == [
        f"GET {ca.url('/dir')} -> 200",
        f"POST {ca.url('/account')} -> 400",
        f"badNonce from {ca.url('/account')}; retrying with the nonce it returned",
        f"POST {ca.url('/account')} -> 200",
    ]
    assert "s3cr3t" not in caplog.text
