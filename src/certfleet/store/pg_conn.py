"""One connection to the shared PostgreSQL store, used by one thread at a time.

Touches the network connection to the database only (pg8000, imported here and only when
the ``postgresql`` backend is opened). Over TCP the server's certificate is verified
against ``[store] ca_file`` and its name against the host in the DSN (verify-full). Every
driver fault becomes ``StoreError`` naming the database (never the password); a broken
connection is dropped and the next call opens a new one, so a restarted database costs
the calls in flight, not the process.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import StoreError
from ..spec import StoreSettings
from .dsn import parse_dsn

CONNECT_TIMEOUT = 30.0     # seconds; also bounds every read on the socket
STATEMENT_TIMEOUT = "60s"  # a statement stuck on a lock fails instead of hanging a run


class Db:
    """A lazily opened connection; ``run`` and ``transaction`` serialize callers."""

    def __init__(self, settings: StoreSettings) -> None:
        assert settings.dsn is not None
        self.settings = settings
        self.dsn = parse_dsn(settings.dsn)
        self.where = f"database {self.dsn.shown()}"
        self._conn: Any = None
        self._lock = threading.RLock()

    def _connect(self) -> Any:
        import pg8000.native

        kwargs: dict[str, Any] = {"user": self.dsn.user, "database": self.dsn.database,
                                  "password": self.settings.password,
                                  "timeout": CONNECT_TIMEOUT,
                                  "application_name": "certfleet"}
        if self.dsn.host is not None:
            kwargs.update(host=self.dsn.host, port=self.dsn.port,
                          ssl_context=_tls(self.settings))
        else:
            kwargs["unix_sock"] = self.dsn.socket
        try:
            conn = pg8000.native.Connection(**kwargs)
            conn.run(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        except (pg8000.native.Error, OSError) as exc:
            raise StoreError(f"{self.where}: cannot connect: {_reason(exc)}") from None
        return conn

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """One statement, committed by itself (the driver's autocommit: one round trip);
        its rows."""
        import pg8000.native

        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            try:
                return Tx(self._conn).run(sql, **params)
            except (pg8000.native.InterfaceError, OSError) as exc:
                self.close()
                raise StoreError(f"{self.where}: connection lost: {_reason(exc)}") from None
            except pg8000.native.DatabaseError as exc:
                raise StoreError(f"{self.where}: {_reason(exc)}") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """``with db.transaction() as tx:`` statements committed together, or none of them."""
        import pg8000.native

        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            try:
                conn.run("BEGIN")
                yield Tx(conn)
                conn.run("COMMIT")
            except (pg8000.native.InterfaceError, OSError) as exc:
                self.close()  # the connection is gone or in an unknown state
                raise StoreError(f"{self.where}: connection lost: {_reason(exc)}") from None
            except BaseException as exc:
                try:
                    conn.run("ROLLBACK")
                except (pg8000.native.Error, OSError):
                    self.close()
                if isinstance(exc, pg8000.native.DatabaseError):
                    raise StoreError(f"{self.where}: {_reason(exc)}") from None
                raise

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()


class Tx:
    """Statements inside one open transaction."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        rows = self._conn.run(sql, **params)
        return [list(row) for row in rows] if rows else []

    def one(self, sql: str, **params: Any) -> list[Any] | None:
        rows = self.run(sql, **params)
        return rows[0] if rows else None


def _tls(settings: StoreSettings) -> ssl.SSLContext:
    """verify-full: the server's chain up to ``ca_file`` and its name."""
    if settings.ca_file is None:
        raise StoreError("TLS to the database is verified: [store] ca_file is required")
    try:
        context = ssl.create_default_context(cafile=str(settings.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise StoreError(f"{settings.ca_file}: cannot load the database's CA: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _reason(exc: BaseException) -> str:
    """The server's message (pg8000 gives a dict of the error's fields), else the text."""
    first = exc.args[0] if exc.args else exc
    if isinstance(first, dict):
        return f"{first.get('M', 'error')} ({first.get('C', '?')})"
    return str(first) or type(exc).__name__
