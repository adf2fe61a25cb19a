"""Challenge solvers: ``present()`` and ``cleanup()`` per challenge kind, always paired.

Each solver touches only what it needs (a challenge directory, a socket, a DNS server).
A solver is an async context manager so that listeners start before the first ``present``
and stop after the last ``cleanup``.
"""

from __future__ import annotations

from types import TracebackType


class Solver:
    """Base class: answers one challenge type for the identifiers of an order."""

    challenge_type = ""

    async def __aenter__(self) -> Solver:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def present(self, name: str, token: str, key_auth: str) -> None:
        """Make the response for ``token`` visible to the CA."""
        raise NotImplementedError

    async def ready(self) -> None:
        """Called once after every response of an order is presented, before the CA is told.

        A solver whose responses take time to become visible (DNS propagation to every
        authoritative server) waits here, bounded, and raises ``ChallengeError`` if they
        do not appear; the default has nothing to wait for.
        """
        return None

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        """Remove what ``present`` made; must not fail if ``present`` did not finish."""
        raise NotImplementedError
