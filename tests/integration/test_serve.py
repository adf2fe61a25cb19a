"""`certfleet serve`: the Work host's responder, as a real process."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from certfleet.solvers.token_dir import TokenDirSolver
from tests import waits

TOKEN = "T" * 20 + "_-" + "x" * 21
OTHER = "U" * 43


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path, subprocess.Popen[str]]]:
    port = _free_port()
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "certfleet", "serve", "--listen", f"127.0.0.1:{port}",
         "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + waits.PROCESS
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("certfleet serve did not start: " + proc.communicate()[1])
    yield port, state, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _get(port: int, path: str, host: str, method: str = "GET",
         headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     headers={"Host": host, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serve_answers_only_presented_tokens_for_their_name(
        served: tuple[int, Path, subprocess.Popen[str]]) -> None:
    port, state, proc = served
    solver = TokenDirSolver(state / "challenges")
    asyncio.run(solver.present("www.example.com", TOKEN, f"{TOKEN}.thumb"))
    prefix = "/.well-known/acme-challenge/"
    assert _get(port, prefix + TOKEN, "www.example.com") == (200, f"{TOKEN}.thumb")
    assert _get(port, prefix + TOKEN, "WWW.EXAMPLE.COM:80")[0] == 200
    assert _get(port, prefix + TOKEN, "other.example.com")[0] == 404      # other host
    assert _get(port, prefix + OTHER, "www.example.com")[0] == 404        # not presented
    assert _get(port, prefix, "www.example.com")[0] == 404                # no listing
    assert _get(port, "/index.html", "www.example.com")[0] == 404         # other path
    assert _get(port, prefix + "../state/x", "www.example.com")[0] == 404
    assert _get(port, prefix + TOKEN, "www.example.com", method="POST")[0] == 404
    assert _get(port, prefix + TOKEN, "www.example.com",
                headers={"X-Big": "a" * 20000})[0] in (400, 413, 431)  # oversized request
    asyncio.run(solver.cleanup("www.example.com", TOKEN, f"{TOKEN}.thumb"))
    assert _get(port, prefix + TOKEN, "www.example.com")[0] == 404        # cleaned up
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=waits.PROCESS)
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if "http-01 request" in line]
    assert len(lines) >= 8
    assert f"Host www.example.com, token {TOKEN} -> 200" in lines[0]
    assert "from 127.0.0.1" in lines[0]
    assert "Host other.example.com" in err
