"""Per-certificate leases in the shared store, with fencing tokens.

Touches ``certfleet_leases`` only (through ``Db``). A claim takes a certificate whose
lease is free or expired and gives it a new token from one sequence, so every claim's
token is larger than every earlier one. Every write of the store (``fenced``) first
locks the lease row and checks that its token is still this host's: a host that lost
the lease (paused, partitioned, presumed dead) has its late writes refused with
``LeaseLost``, and the row lock orders the write against a concurrent claim. A thread
of this process extends the leases it holds every third of their length; a paused
process extends nothing, so its leases run out and other hosts may take them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Iterator

from ..errors import LeaseLost, StoreError
from .pg_conn import Db, Tx

log = logging.getLogger(__name__)


class Leases:
    """The leases this process holds, and the thread that keeps them."""

    def __init__(self, db: Db, keeper: Db, holder: str, seconds: float) -> None:
        self.db, self._keeper_db, self.seconds = db, keeper, seconds
        self.holder = f"{holder}/{os.getpid()}/{secrets.token_hex(4)}"
        self.held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, name: str) -> int | None:
        """A new token for ``name`` if no live lease of another holder is on it."""
        row = self.db.run(
            """INSERT INTO certfleet_leases AS l (name, holder, token, expires)
               VALUES (:n, :h, nextval('certfleet_fencing'),
                       clock_timestamp() + make_interval(secs => :s))
               ON CONFLICT (name) DO UPDATE
                   SET holder = excluded.holder, token = excluded.token,
                       expires = excluded.expires
                   WHERE l.expires < clock_timestamp()
               RETURNING token""", n=name, h=self.holder, s=self.seconds)
        if not row:
            return None
        token = int(row[0][0])
        with self._lock:
            self.held[name] = token
        self._keep()
        return token

    def holder_of(self, name: str) -> str:
        row = self.db.run("SELECT holder, to_char(expires AT TIME ZONE 'UTC', 'HH24:MI:SS') "
                          "FROM certfleet_leases WHERE name = :n", n=name)
        return f"{row[0][0]} until {row[0][1]} UTC" if row else "nobody"

    def release(self, name: str) -> None:
        with self._lock:
            token = self.held.pop(name, None)
        if token is not None:
            self.db.run("UPDATE certfleet_leases SET expires = '-infinity' "
                        "WHERE name = :n AND token = :t", n=name, t=token)

    def holds(self, name: str) -> bool:
        return name in self.held

    @contextlib.contextmanager
    def fenced(self, name: str) -> Iterator[Tx]:
        """A transaction that goes through only while this host's token is the latest
        for ``name``; it also extends the lease."""
        token = self.held.get(name)
        if token is None:
            raise StoreError(f"{name}: written without holding its lease")
        with self.db.transaction() as tx:
            ok = tx.one("""UPDATE certfleet_leases
                           SET expires = greatest(expires,
                               clock_timestamp() + make_interval(secs => :s))
                           WHERE name = :n AND token = :t RETURNING token""",
                        n=name, t=token, s=self.seconds)
            if ok is None:
                raise LeaseLost(f"{name}: another Work host claimed it since this one did "
                                f"(token {token} is stale); nothing written")
            yield tx

    def _keep(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._keeper, name="certfleet-leases",
                                            daemon=True)
            self._thread.start()

    def _keeper(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            with self._lock:
                tokens = dict(self.held)
            if not tokens:
                continue
            try:
                kept = self._keeper_db.run(
                    """UPDATE certfleet_leases
                       SET expires = clock_timestamp() + make_interval(secs => :s)
                       WHERE holder = :h AND token = ANY(CAST(:t AS bigint[]))
                       RETURNING name""",
                    s=self.seconds, h=self.holder, t=list(tokens.values()))
            except StoreError as exc:
                log.warning("cannot extend leases: %s", exc)
                continue
            for name in set(tokens) - {row[0] for row in kept}:
                log.warning("%s: lease lost to another Work host", name)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for name in list(self.held):
            with contextlib.suppress(StoreError):
                self.release(name)
        self._keeper_db.close()
