"""http-01 through the state directory, for a separate ``certfleet serve`` to answer.

Touches ``STATE/challenges/`` only: ``present`` writes ``<token>`` holding the name being
validated and the key authorization (one line each), ``cleanup`` removes it, and
``read_token`` is what ``serve`` calls for each request. Tokens are checked as base64url
before they become file names; files are created without following symlinks.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .. import fsutil
from ..errors import ChallengeError, StoreError, safe_text
from ..protocol.challenges import HTTP_01
from ..protocol.messages import token_is_safe
from . import Solver

MAX_TOKEN_FILE = 4096


class TokenDirSolver(Solver):
    """Presents http-01 responses as files for ``certfleet serve``."""

    challenge_type = HTTP_01

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def present(self, name: str, token: str, key_auth: str) -> None:
        if not token_is_safe(token):
            raise ChallengeError(f"refusing unsafe token {safe_text(token)!r}")
        try:
            fsutil.write_atomic(self.directory / token, f"{name}\n{key_auth}\n".encode(),
                                mode=0o600)
        except StoreError as exc:
            raise ChallengeError(f"{name}: cannot present token: {exc}") from exc

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        if token_is_safe(token):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / token)


def read_token(directory: Path, token: str) -> tuple[str, str] | None:
    """(name, key authorization) presented for ``token``, or None."""
    if not token_is_safe(token):
        return None
    try:
        data = fsutil.read_small(directory / token, MAX_TOKEN_FILE)
    except (FileNotFoundError, StoreError):
        return None
    name, _, rest = data.decode("ascii", "replace").partition("\n")
    key_auth = rest.strip()
    return (name, key_auth) if name and key_auth else None


class StatelessSolver(Solver):
    """Nothing to present: the load balancers answer ``token.thumbprint`` themselves.

    Tokens are still checked, because the load balancers' snippet only matches base64url.
    """

    challenge_type = HTTP_01

    async def present(self, name: str, token: str, key_auth: str) -> None:
        if not token_is_safe(token):
            raise ChallengeError(f"refusing unsafe token {safe_text(token)!r}")

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        return None
