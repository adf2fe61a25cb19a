"""http-01 answered by certfleet itself: a small aiohttp listener running during the job.

Touches one listening socket. It answers only ``GET /.well-known/acme-challenge/<token>``
for a token presented in this run, and only when the Host header is the name being
validated; everything else is 404. Each validation request is logged.
"""

from __future__ import annotations

import ipaddress
import logging
from types import TracebackType

from aiohttp import web

from ..errors import ChallengeError, ConfigError, safe_text
from ..protocol.challenges import HTTP_01, HTTP_01_PREFIX
from ..protocol.messages import token_is_safe
from . import Solver

log = logging.getLogger(__name__)
MAX_REQUEST = 8192


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` to a (host, port) pair."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536 or not host:
        raise ConfigError(f"--http-listen {text!r}: expected HOST:PORT")
    return host, int(port)


def host_matches(header: str, name: str) -> bool:
    """Whether a Host header (maybe with a port) names ``name``."""
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(name)
    except ValueError:
        return host.rstrip(".") == name.lower()


class HttpServerSolver(Solver):
    """The built-in responder (``--http-listen HOST:PORT``)."""

    challenge_type = HTTP_01

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._tokens: dict[str, tuple[str, str]] = {}
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> HttpServerSolver:
        app = web.Application(client_max_size=MAX_REQUEST)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ChallengeError(f"cannot listen on {self.host}:{self.port}: "
                                 f"{exc.strerror or exc}") from exc
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def present(self, name: str, token: str, key_auth: str) -> None:
        if not token_is_safe(token):
            raise ChallengeError(f"refusing unsafe token {safe_text(token)!r}")
        self._tokens[token] = (name, key_auth)

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        self._tokens.pop(token, None)

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.path.removeprefix(HTTP_01_PREFIX)
        entry = self._tokens.get(token) if request.path.startswith(HTTP_01_PREFIX) else None
        ok = (request.method == "GET" and entry is not None
              and host_matches(request.host, entry[0]))
        log.info("http-01 request from %s: Host %s, path %s -> %s",
                 request.remote, safe_text(request.host, 80), safe_text(request.path, 120),
                 200 if ok else 404)
        if not ok or entry is None:
            return web.Response(status=404, text="not found\n")
        return web.Response(text=entry[1], content_type="text/plain")
