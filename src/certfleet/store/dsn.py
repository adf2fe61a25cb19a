"""The PostgreSQL connection string of ``[store] dsn``, checked into values. Touches nothing.

Accepted: ``postgresql://USER@HOST[:PORT]/DATABASE`` over TCP, always with TLS verified
(``sslmode=verify-full``, the default and the only mode for TCP), or
``postgresql://USER@/DATABASE?host=/run/postgresql`` through a unix socket in that
directory (no TLS: the socket's own permissions guard it). A password in the string is
refused: it would end up in every place the configuration is copied to.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from ..protocol.frozen import frozen

DEFAULT_PORT = 5432


@frozen
class Dsn:
    user: str
    database: str
    host: str | None        # None: the unix socket in ``socket_dir``
    port: int
    socket_dir: str | None

    @property
    def socket(self) -> str | None:
        return None if self.socket_dir is None else \
            f"{self.socket_dir.rstrip('/')}/.s.PGSQL.{self.port}"

    def shown(self) -> str:
        where = f"{self.host}:{self.port}" if self.host else f"{self.socket}"
        return f"{self.user}@{where}/{self.database}"


def parse_dsn(text: str) -> Dsn:
    """The parts of ``text``; ``ValueError`` saying what is wrong (never the password)."""
    try:
        parts = urlsplit(text)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"not a postgresql:// URL: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("must start with postgresql://")
    if parts.password is not None:
        raise ValueError("holds a password: put it in password_file or "
                         "CERTFLEET_DB_PASSWORD instead")
    if not parts.username:
        raise ValueError("names no user (postgresql://USER@HOST/DATABASE)")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError("names no database (postgresql://USER@HOST/DATABASE)")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - {"host", "sslmode"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} (host and sslmode are known)")
    socket_dir = query.get("host")
    if socket_dir is not None and (parts.hostname or not socket_dir.startswith("/")):
        raise ValueError("host= names a unix socket directory (an absolute path), and then "
                         "the URL has no host of its own")
    if socket_dir is None and not parts.hostname:
        raise ValueError("names no host")
    sslmode = query.get("sslmode", "verify-full" if socket_dir is None else "disable")
    if socket_dir is None and sslmode != "verify-full":
        raise ValueError(f"sslmode={sslmode}: over TCP only verify-full is allowed "
                         "(the database's certificate and name are always checked)")
    if socket_dir is not None and sslmode != "disable":
        raise ValueError("a unix socket has no TLS: leave sslmode out")
    return Dsn(unquote(parts.username), database, parts.hostname, port, socket_dir)
