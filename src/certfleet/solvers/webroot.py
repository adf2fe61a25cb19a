"""http-01 by files in a challenge directory served by some web server (the seed's ``-C dir``).

Touches only ``<dir>/<token>`` files it creates itself: tokens are checked as base64url
first. The directory is reached as a local deploy target is (``deploy.dircheck.open_dir``):
from ``/`` one component at a time, never through a symlink (a site's owner could
otherwise point the webroot at a directory of root's), each refused if others may write
it (a sticky directory on the way aside). Files are created exclusively without following
symlinks, and removed, relative to that directory's descriptor, never by path.

Unlike a deploy target's, the webroot's directories may belong to another user or be
written by a group: the seed's webroot lies in the site owner's home
(``/home/USER/htdocs``). What goes there is a token anyone may fetch; with every step
taken through a descriptor and no link followed, that owner can make the challenge fail
(as they could anyway, by serving something else), but not move the write elsewhere: a
directory of root's cannot be moved into their tree without write access to it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .. import fsutil
from ..deploy.dircheck import Missing, Refused, Trust, open_dir
from ..errors import ChallengeError, safe_text
from ..protocol.challenges import HTTP_01
from ..protocol.messages import token_is_safe
from . import Solver


class WebrootSolver(Solver):
    """Writes ``token`` files holding the key authorization."""

    challenge_type = HTTP_01

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # A deploy target's walk; any owner or group may hold the way (module docstring).
        self.trust = Trust(frozenset({0, os.geteuid()}), any_owner=True, any_group=True,
                           owners="anyone", reached="the webroot is", hint="", group_hint="")

    def _open(self) -> int | None:
        """The webroot's descriptor; None if it does not exist."""
        try:
            return open_dir(os.path.abspath(self.directory), self.trust)
        except Missing:
            return None
        except Refused as exc:
            raise ChallengeError(f"{self.directory}: webroot refused: {exc}") from None
        except OSError as exc:  # e.g. a directory this user may not look into
            raise ChallengeError(f"{self.directory}: {exc.strerror or exc}") from None

    async def present(self, name: str, token: str, key_auth: str) -> None:
        if not token_is_safe(token):
            raise ChallengeError(f"refusing unsafe token {safe_text(token)!r}")
        if (fd := self._open()) is None:
            raise ChallengeError(f"{self.directory}: challenge directory does not exist")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(token, dir_fd=fd)  # a leftover of an interrupted run, same token
            fsutil.write_new(token, key_auth.encode("ascii"), 0o644, dir_fd=fd)
        except OSError as exc:
            raise ChallengeError(f"{self.directory / token}: cannot write challenge file: "
                                 f"{exc.strerror}") from exc
        finally:
            os.close(fd)

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        if not token_is_safe(token) or (fd := self._open()) is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(token, dir_fd=fd)
        finally:
            os.close(fd)
