"""http-01 by files in a challenge directory served by some web server (the seed's ``-C dir``).

Touches only ``<dir>/<token>`` files it creates itself: tokens are checked as base64url
first, files are created exclusively without following symlinks, and removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .. import fsutil
from ..errors import ChallengeError, safe_text
from ..protocol.challenges import HTTP_01
from ..protocol.messages import token_is_safe
from . import Solver


class WebrootSolver(Solver):
    """Writes ``token`` files holding the key authorization."""

    challenge_type = HTTP_01

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, token: str) -> Path:
        if not token_is_safe(token):
            raise ChallengeError(f"refusing unsafe token {safe_text(token)!r}")
        return self.directory / token

    async def present(self, name: str, token: str, key_auth: str) -> None:
        path = self._path(token)
        if not self.directory.is_dir():
            raise ChallengeError(f"{self.directory}: challenge directory does not exist")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a leftover of an interrupted run with the same token
        try:
            fsutil.write_new(path, key_auth.encode("ascii"), 0o644)
        except OSError as exc:
            raise ChallengeError(f"{path}: cannot write challenge file: {exc.strerror}") from exc

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        if token_is_safe(token):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / token)
