"""Helpers for tests that run certfleet against a real Pebble."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli import run_shown


class Certfleet:
    """Runs the certfleet command line in-process against one lab and state directory."""

    def __init__(self, lab: object, state: Path) -> None:
        self.lab = lab
        self.state = state

    def common(self) -> list[str]:
        return ["--state-dir", str(self.state), "--directory", self.lab.directory_url,  # type: ignore[attr-defined]
                "--ca-bundle", str(self.lab.ca_bundle)]  # type: ignore[attr-defined]

    def listen(self) -> list[str]:
        return ["--http-listen", f"127.0.0.1:{self.lab.http_port}"]  # type: ignore[attr-defined]

    def run(self, command: str, *args: str) -> tuple[int, str]:
        return run_shown([command, *self.common(), *args])

    def issue(self, *args: str) -> tuple[int, str]:
        return self.run("issue", *args, *self.listen())


@pytest.fixture
def certfleet(pebble: object, tmp_path: Path) -> Certfleet:
    return Certfleet(pebble, tmp_path / "state")


def tree(path: Path) -> list[str]:
    """Every path below ``path``, relative, sorted: to compare before and after."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@contextlib.contextmanager
def webroot_server(directory: Path, port: int,
                   before: Callable[[str], None] | None = None) -> Iterator[list[str]]:
    """A plain web server serving ``directory`` at /.well-known/acme-challenge/ (the seed's
    Work-host nginx, ``rewrite /.well-known/acme-challenge/(.*) /$1``). Yields the paths
    served. ``before`` is called with each request's Host name first (e.g. to delay it)."""
    served: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if before is not None:
                before((self.headers.get("Host") or "").split(":")[0])
            token = self.path.removeprefix("/.well-known/acme-challenge/")
            path = directory / token
            if "/" in token or not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            served.append(token)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
