"""A local clock that disagrees with the CA's refuses renewal decisions, clearly."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web

from .fleet_helpers import run_cli

SKEW = timedelta(hours=20)


@pytest.fixture
def skewed_ca() -> Iterator[str]:
    """A directory whose Date header runs 20 hours ahead (all a clock check reads)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    requests: list[str] = []

    async def directory(request: web.Request) -> web.Response:
        requests.append(request.path)
        body = {k: f"{base}/{k}" for k in ("newNonce", "newAccount", "newOrder",
                                           "revokeCert", "keyChange")}
        return web.json_response(body, headers={
            "Date": format_datetime(datetime.now(UTC) + SKEW, usegmt=True)})

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/dir", directory)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"{base}/dir"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)


def _config(tmp_path: Path, directory: str, skew: int) -> Path:
    (tmp_path / "domains.txt").write_text("clock.example.com\n")
    config = tmp_path / "certfleet.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\ndomains = "{tmp_path}/domains.txt"\n'
                      f'[ca]\ndirectory = "{directory}"\nallow_http = true\n'
                      f'max_clock_skew = {skew}\n[challenge]\nhttp_listen = "127.0.0.1:1"\n')
    return config


def test_skewed_clock_refuses_to_decide(skewed_ca: str, tmp_path: Path) -> None:
    rc, out = run_cli("run", "--config", str(_config(tmp_path, skewed_ca, 300)))
    assert rc == 1
    assert out.startswith("certfleet: the local clock (")
    assert "differs from the CA's (" in out
    assert "more than max_clock_skew = 300s; refusing to decide renewals" in out
    assert not (tmp_path / "state" / "certs" / "clock.example.com" / "current").exists()
    record = json.loads((tmp_path / "state" / "clock.json").read_text())
    assert abs(record["skew_seconds"] - SKEW.total_seconds()) < 60


def test_skew_within_the_limit_goes_on(skewed_ca: str, tmp_path: Path) -> None:
    rc, out = run_cli("run", "--config", str(_config(tmp_path, skewed_ca, 86400)))
    assert "refusing to decide renewals" not in out
    assert out.startswith("clock.example.com: failed: ")  # the fake CA can do no more
    assert rc == 1
