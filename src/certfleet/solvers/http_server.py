"""http-01 answered by certfleet itself, in-process: ``run --http-listen HOST:PORT``.

Touches one listening socket, through ``http_responder.Responder`` (the limits against
hostile clients, and why, are in ``http_limits``; request parsing and the Host rule in
``http_head``).
It answers only ``GET /.well-known/acme-challenge/<token>`` for a token currently
presented, and only when the Host header is the name being validated; everything else is
404, nothing is listed. The same responder serves as ``certfleet serve`` (tokens read from
the state directory, see ``token_dir`` and ``serve``).
"""

from __future__ import annotations

from types import TracebackType

from ..errors import ChallengeError, ConfigError, safe_text
from ..protocol.challenges import HTTP_01
from ..protocol.messages import token_is_safe
from . import Solver
from .http_head import MAX_HEAD, host_matches
from .http_limits import Limits
from .http_responder import Lookup, Responder

__all__ = ["MAX_HEAD", "HttpServerSolver", "Limits", "Lookup", "Responder", "host_matches",
           "parse_listen"]


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` to a (host, port) pair."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536 \
            or not host:
        raise ConfigError(f"listen address {text!r}: expected HOST:PORT")
    return host, int(port)


class HttpServerSolver(Solver):
    """The in-process responder (``--http-listen HOST:PORT``): tokens live in memory."""

    challenge_type = HTTP_01

    def __init__(self, host: str, port: int) -> None:
        self._tokens: dict[str, tuple[str, str]] = {}
        self._responder = Responder(host, port, self._tokens.get,
                                    demand=self._tokens.__len__)

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
