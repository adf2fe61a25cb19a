"""http-01 answered by certfleet itself: a small aiohttp listener.

Touches one listening socket. It answers only ``GET /.well-known/acme-challenge/<token>``
for a token currently presented, and only when the Host header is the name being
validated; everything else is 404, nothing is listed, requests are size-bounded, and each
validation request is logged. The same responder serves in-process during a run
(``HttpServerSolver``, tokens in memory) and as ``certfleet serve`` (tokens read from the
state directory, see ``token_dir``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from ..errors import ChallengeError, ConfigError, safe_text
from ..protocol.challenges import HTTP_01, HTTP_01_PREFIX
from ..protocol.messages import token_is_safe
from . import Solver

log = logging.getLogger(__name__)
MAX_REQUEST = 8192
Lookup = Callable[[str], "tuple[str, str] | None"]  # token -> (name, key authorization)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` to a (host, port) pair."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536 \
            or not host:
        raise ConfigError(f"listen address {text!r}: expected HOST:PORT")
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


class Responder:
    """The listener: answers validation requests from ``lookup``."""

    def __init__(self, host: str, port: int, lookup: Lookup) -> None:
        self.host, self.port, self.lookup = host, port, lookup
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     max_line_size=MAX_REQUEST, max_field_size=MAX_REQUEST)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ChallengeError(f"cannot listen on {self.host}:{self.port}: "
                                 f"{exc.strerror or exc}") from exc

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.path.removeprefix(HTTP_01_PREFIX)
        entry = None
        if request.method == "GET" and request.path.startswith(HTTP_01_PREFIX) \
                and token_is_safe(token):
            entry = self.lookup(token)
        ok = entry is not None and host_matches(request.host, entry[0])
        client = request.remote
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            client = f"{client} (for {safe_text(forwarded, 60)})"
        log.info("http-01 request from %s: Host %s, token %s -> %s", client,
                 safe_text(request.host, 80), safe_text(token or request.path, 120),
                 "200" if ok else "404")
        if not ok or entry is None:
            return web.Response(status=404, text="not found\n")
        return web.Response(text=entry[1], content_type="text/plain")


class HttpServerSolver(Solver):
    """The in-process responder (``--http-listen HOST:PORT``): tokens live in memory."""

    challenge_type = HTTP_01

    def __init__(self, host: str, port: int) -> None:
        self._tokens: dict[str, tuple[str, str]] = {}
        self._responder = Responder(host, port, self._tokens.get)

    async def __aenter__(self) -> HttpServerSolver:
        await self._responder.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._responder.stop()

    async def present(self, name: str, token: str, key_auth: str) -> None:
        if not token_is_safe(token):
            raise ChallengeError(f"refusing unsafe token {safe_text(token)!r}")
        self._tokens[token] = (name, key_auth)

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        self._tokens.pop(token, None)
