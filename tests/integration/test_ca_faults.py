"""A CA that is down, slow, erring or rate-limiting: one clear error per certificate, the
current certificate untouched, and the next attempt not before Retry-After or the backoff."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from certfleet.acme_client import AcmeClient
from certfleet.errors import TransportError

from .fleet_helpers import run_cli

Answer = Callable[[str], web.Response]


class FlakyCA:
    """Serves a directory and nonces; every other resource answers with ``self.answer``."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []
        self.answer: Answer = lambda path: web.Response(status=500, text="boom")
        self.directory_answer: Answer | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        headers = {"Replay-Nonce": f"n{len(self.requests)}"}
        if request.path == "/dir":
            if self.directory_answer is not None:
                return self.directory_answer(request.path)
            return web.json_response({k: f"{self.base}/{k}" for k in (
                "newNonce", "newAccount", "newOrder", "revokeCert", "keyChange")},
                headers=headers)
        if request.path == "/newNonce":
            return web.Response(headers=headers)
        if request.path == "/hang":
            await asyncio.sleep(3)  # longer than the client's timeout
        response = self.answer(request.path)
        response.headers.update(headers)
        return response

    def start(self) -> FlakyCA:
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def ca() -> Iterator[FlakyCA]:
    flaky = FlakyCA().start()
    yield flaky
    flaky.stop()


def _config(tmp_path: Path, directory: str) -> Path:
    (tmp_path / "domains.txt").write_text("flaky.example.com\n")
    config = tmp_path / "certfleet.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\ndomains = "{tmp_path}/domains.txt"\n'
                      f'[ca]\ndirectory = "{directory}"\nallow_http = true\n'
                      'max_clock_skew = 0\n[challenge]\nhttp_listen = "127.0.0.1:1"\n')
    return config


def _backoff(tmp_path: Path) -> dict[str, object]:
    state = json.loads((tmp_path / "state" / "certs" / "flaky.example.com" /
                        "state.json").read_text())
    return dict(state["backoff"])


def problem(status: int, kind: str, detail: str, retry_after: str | None = None) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return lambda path: web.json_response(
        {"type": f"urn:ietf:params:acme:error:{kind}", "detail": detail}, status=status,
        content_type="application/problem+json", headers=headers)


def test_rate_limited_with_retry_after(ca: FlakyCA, tmp_path: Path) -> None:
    ca.answer = problem(429, "rateLimited", "too many new orders", "7200")
    config = _config(tmp_path, f"{ca.base}/dir")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    assert out.startswith(f"flaky.example.com: failed: {ca.base}/newAccount: rateLimited: "
                          "too many new orders")
    wait = datetime.fromisoformat(str(_backoff(tmp_path)["until"])) - datetime.now(UTC)
    assert 7100 < wait.total_seconds() <= 7200          # Retry-After, not the 5 minutes
    before = len(ca.requests)
    rc, out = run_cli("run", "--config", str(config))   # cron, soon after
    assert rc == 1
    assert "next attempt after" in out
    assert len(ca.requests) == before                   # the CA is not asked again
    rc, out = run_cli("run", "--config", str(config), "--force")
    assert len(ca.requests) > before                    # --force overrides the wait


def test_server_errors_and_503_retry_after(ca: FlakyCA, tmp_path: Path) -> None:
    ca.answer = lambda path: web.Response(status=500, text="<html>oops</html>")
    rc, out = run_cli("run", "--config", str(_config(tmp_path, f"{ca.base}/dir")))
    assert rc == 1
    assert "flaky.example.com: failed: " in out
    assert "HTTP 500: <html>oops</html>" in out
    ca.answer = problem(503, "serverInternal", "maintenance", "Fri, 31 Dec 2100 23:59:59 GMT")
    rc, out = run_cli("run", "--config", str(_config(tmp_path, f"{ca.base}/dir")), "--force")
    assert rc == 1
    assert "serverInternal: maintenance" in out
    wait = datetime.fromisoformat(str(_backoff(tmp_path)["until"])) - datetime.now(UTC)
    assert 6.9 * 86400 < wait.total_seconds() <= 7 * 86400  # absurd Retry-After: a week


def test_a_ca_that_cannot_open_the_account_is_tried_twice_a_run_not_once_a_certificate(
        ca: FlakyCA, tmp_path: Path) -> None:
    """The account is opened before the certificates start; when that fails, the first
    certificate tries once more and the others, which waited on that try, share its failure
    (against a CA that times out, each try costs a timeout)."""
    config = _config(tmp_path, f"{ca.base}/dir")
    names = [f"flaky{i}.example.com" for i in range(4)]
    (tmp_path / "domains.txt").write_text("".join(f"{name}\n" for name in names))
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    assert ca.requests.count("POST /newAccount") == 2
    for name in names:
        assert f"{name}: failed: " in out
        assert f"{ca.base}/newAccount: HTTP 500" in out.split(f"{name}: failed: ")[1].split("\n")[0]


def test_unreachable_ca(tmp_path: Path) -> None:
    rc, out = run_cli("run", "--config", str(_config(tmp_path, "http://127.0.0.1:9/dir")))
    assert rc == 1
    assert out.startswith("flaky.example.com: failed: http://127.0.0.1:9/dir: cannot connect: ")


def test_ca_that_never_answers_times_out(ca: FlakyCA) -> None:
    async def go() -> None:
        async with AcmeClient(f"{ca.base}/hang", allow_http=True, timeout=1.0) as client:
            await client.get(f"{ca.base}/hang")

    with pytest.raises(TransportError, match="/hang: timed out"):
        asyncio.run(go())
