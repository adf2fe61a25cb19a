"""What a hostile or broken CA can send before an order starts: each is one clear error."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from certfleet.cli import main

from .fakeca import FakeCA


@pytest.fixture
def fake_ca() -> Iterator[FakeCA]:
    ca = FakeCA().start()
    yield ca
    ca.stop()


def _issue(ca: FakeCA, tmp_path: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["issue", "x.example", "--state-dir", str(tmp_path / "state"),
                   "--directory", ca.directory_url, "--insecure-http",
                   "--webroot", str(tmp_path)])
    return rc, out.getvalue()


def _expect_failure(ca: FakeCA, tmp_path: Path, words: str) -> str:
    rc, out = _issue(ca, tmp_path)
    assert rc == 1
    assert out.startswith("x.example: failed: ")
    assert words in out
    assert out.count("\n") == 1
    assert not (tmp_path / "state" / "certs" / "x.example" / "current").exists()
    return out


def test_oversized_directory(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"{" + b" " * (2 << 20) + b"}", content_type="application/json")

    fake_ca.overrides["/dir"] = huge
    _expect_failure(fake_ca, tmp_path, "exceeds 1048576")


def test_oversized_chunked_body(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(40):
            await response.write(b" " * 65536)
        await response.write_eof()
        return response

    fake_ca.overrides["/dir"] = chunked  # type: ignore[assignment]
    _expect_failure(fake_ca, tmp_path, "response exceeds 1048576 bytes")


def test_redirect_to_other_host_refused(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:1/dir")

    fake_ca.overrides["/dir"] = away
    _expect_failure(fake_ca, tmp_path, "redirect to another host refused: http://127.0.0.2:1/dir")


def test_redirect_same_host_followed(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/dir2")

    real_dir = fake_ca._handle
    fake_ca.overrides["/dir"] = moved

    async def dir2(request: web.Request) -> web.StreamResponse:
        fake_ca.overrides.pop("/dir")
        request2 = request.clone(rel_url="/dir")
        return await real_dir(request2)

    fake_ca.overrides["/dir2"] = dir2  # type: ignore[assignment]
    rc, out = _issue(fake_ca, tmp_path)  # the fake CA issues end to end once it is found
    assert rc == 0, out
    assert out.startswith("x.example: issued (expires ")
    assert "GET /dir2" in fake_ca.requests


def test_non_json_directory(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    fake_ca.overrides["/dir"] = html
    _expect_failure(fake_ca, tmp_path, "expected JSON, got text/html")


def test_invalid_json(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(text='{"newNonce": ', content_type="application/json")

    fake_ca.overrides["/dir"] = broken
    _expect_failure(fake_ca, tmp_path, "invalid JSON")


def test_directory_with_http_url_refused(fake_ca: FakeCA, tmp_path: Path) -> None:
    # Allowed plain http for the directory does not let the CA point elsewhere insecurely
    # when it is https: here the whole test CA is http, so check the missing-field path.
    async def partial(request: web.Request) -> web.Response:
        return fake_ca.json({"newNonce": "x"})

    fake_ca.overrides["/dir"] = partial
    _expect_failure(fake_ca, tmp_path, "field 'newAccount' is missing")


def test_missing_replay_nonce(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.send_nonces = False
    _expect_failure(fake_ca, tmp_path, "no Replay-Nonce in answer")


def test_problem_with_terminal_escapes(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def evil(request: web.Request) -> web.Response:
        return fake_ca.json({"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                             "detail": "no\x1b[2J\x1b]0;pwned\x07\nFAKE: line",
                             "subproblems": [{"type": "urn:ietf:params:acme:error:caa",
                                              "detail": "CAA \x1b[31mred",
                                              "identifier": {"type": "dns",
                                                             "value": "x.example"}}]}, 400)

    fake_ca.overrides["/order"] = evil
    out = _expect_failure(fake_ca, tmp_path, "rejectedIdentifier: no\\x1b[2J")
    assert "\x1b" not in out
    assert "; x.example: caa: CAA \\x1b[31mred" in out


def test_unknown_order_status(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def odd(request: web.Request) -> web.Response:
        b = fake_ca.base
        return fake_ca.json({"status": "pondering", "identifiers": [],
                             "authorizations": [], "finalize": f"{b}/f"}, 201,
                            Location=f"{b}/order/1")

    fake_ca.overrides["/order"] = odd
    _expect_failure(fake_ca, tmp_path, "order: unknown status 'pondering'")


def test_bad_nonce_forever_is_bounded(fake_ca: FakeCA, tmp_path: Path) -> None:
    async def bad(request: web.Request) -> web.Response:
        return fake_ca.json({"type": "urn:ietf:params:acme:error:badNonce",
                             "detail": "nope"}, 400)

    fake_ca.overrides["/account"] = bad
    _expect_failure(fake_ca, tmp_path, "badNonce 101 times in a row; giving up")
    assert fake_ca.requests.count("POST /account") == 101
