"""http-01 tokens in the shared store: ``run`` on any Work host presents them there and
``certfleet serve`` on every Work host answers from there, so the load balancers may send
a validation request to any Work host.

Touches ``certfleet_tokens`` only (through ``Db``). A token is a public value (the CA
sends it in the clear), so tokens are not fenced: a late token of a host that lost its
lease can only answer for an order it no longer records. Tokens older than a day, left by
a host killed between present and cleanup, go when the next one is presented.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..errors import ChallengeError, StoreError, safe_text
from ..protocol.challenges import HTTP_01
from ..protocol.messages import token_is_safe
from ..solvers import Solver
from .pg_conn import Db


class DbTokens:
    def __init__(self, db: Db) -> None:
        self.db = db

    def present(self, name: str, token: str, key_auth: str) -> object:
        """Presents ``token``; returns what identifies this presentation for ``cleanup``."""
        with self.db.transaction() as tx:
            tx.run("DELETE FROM certfleet_tokens WHERE created < now() - interval '1 day'")
            row = tx.run("""INSERT INTO certfleet_tokens (token, name, key_authorization,
                                                          created)
                            VALUES (:t, :n, :k, clock_timestamp()) ON CONFLICT (token) DO UPDATE
                            SET name = excluded.name,
                                key_authorization = excluded.key_authorization,
                                created = clock_timestamp()
                            RETURNING created""", t=token, n=name, k=key_auth)
        return row[0][0]

    def cleanup(self, token: str, presented: object) -> None:
        """Removes ``token`` if it is still this presentation's: a host that presented the
        same challenge after this one (it took over the order) keeps its own."""
        self.db.run("DELETE FROM certfleet_tokens WHERE token = :t AND created = :c",
                    t=token, c=presented)

    def read(self, token: str) -> tuple[str, str] | None:
        """(name, key authorization) presented for ``token``; None if there is none.
        ``StoreError`` if the database cannot be asked (``serve`` answers 503 and says why:
        the CA's error then tells "unavailable" from "no such token")."""
        if not token_is_safe(token):
            return None
        for attempt in range(2):  # a connection the server dropped (a restart) is opened again
            try:
                row = self.db.run("SELECT name, key_authorization FROM certfleet_tokens "
                                  "WHERE token = :t", t=token)
            except StoreError:
                if attempt:
                    raise
                continue
            return (row[0][0], row[0][1]) if row else None
        return None

    def count(self) -> int:
        try:
            return int(self.db.run("SELECT count(*) FROM certfleet_tokens")[0][0])
        except StoreError:
            return 0


class DbTokenSolver(Solver):
    """Presents http-01 responses in the shared store for every host's ``serve``."""

    challenge_type = HTTP_01

    def __init__(self, tokens: DbTokens) -> None:
        self.tokens = tokens
        self._presented: dict[str, object] = {}

    async def present(self, name: str, token: str, key_auth: str) -> None:
        if not token_is_safe(token):
            raise ChallengeError(f"refusing unsafe token {safe_text(token)!r}")
        try:
            self._presented[token] = await asyncio.to_thread(self.tokens.present, name,
                                                             token, key_auth)
        except StoreError as exc:
            raise ChallengeError(f"{name}: cannot present token: {exc}") from exc

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        presented = self._presented.pop(token, None)
        if presented is not None:
            with contextlib.suppress(StoreError):  # else removed with the day-old ones
                await asyncio.to_thread(self.tokens.cleanup, token, presented)
