"""``[store]``: which store holds certificates, state and accounts, and how to reach it.

Touches the files the section names (the database password, the database's CA, the local
key that encrypts private keys in the database) and nothing else. The file backend, the
default, takes no other key; ``postgresql`` needs ``dsn``, a password (``password_file``
or ``CERTFLEET_DB_PASSWORD``) and ``key_file``, and ``ca_file`` for TCP.
"""

from __future__ import annotations

import os

from ..spec import StoreSettings
from ..store.dsn import parse_dsn
from . import values
from .sections import read_secret
from .tomlfile import Table

ENV_DB_PASSWORD = "CERTFLEET_DB_PASSWORD"  # noqa: S105 - a variable name
BACKENDS = ("files", "postgresql")
KEY_BYTES = 32


def _backend(value: str) -> str:
    if value not in BACKENDS:
        raise ValueError(f"backend {value!r}: use one of {', '.join(BACKENDS)}")
    return value


def _dsn(value: str) -> str:
    parse_dsn(value)
    return value


def _holder(value: str) -> str:
    if not value or len(value) > 200 or not value.isprintable():
        raise ValueError("holder must be a printable name of at most 200 characters")
    return value


def store(table: Table) -> StoreSettings:
    """``[store]``, every fault at its key's line."""
    backend = table.check("backend", str, "a string", _backend) or "files"
    dsn = table.check("dsn", str, "a postgresql:// URL", _dsn)
    ca_file = table.path_of("ca_file")
    lease = table.check("lease_seconds", (int, float), "a number of seconds",
                        values.seconds("lease_seconds", 5, 3600))
    holder = table.check("holder", str, "a string", _holder)
    password = read_secret(table, "password_file")
    key_text = read_secret(table, "key_file")
    table.finish()
    if backend == "files":
        extra = [k for k in ("dsn", "ca_file", "password_file", "key_file", "lease_seconds",
                             "holder") if table.data.get(k) is not None]
        for option in extra:
            table.problems.add(table.where(option),
                               f"{option} is for backend = \"postgresql\"")
        return StoreSettings()
    if os.environ.get(ENV_DB_PASSWORD):
        password = os.environ[ENV_DB_PASSWORD]
    where = table.where("backend")
    if dsn is None and table.data.get("dsn") is None:
        table.problems.add(where, "backend = \"postgresql\" needs dsn = "
                                  "\"postgresql://USER@HOST/DATABASE\"")
    if password is None and table.data.get("password_file") is None:
        table.problems.add(where, "backend = \"postgresql\" needs the database password: "
                                  f"password_file or {ENV_DB_PASSWORD}")
    key = _key(table, key_text)
    if dsn is not None and parse_dsn(dsn).host is not None and ca_file is None and \
            table.data.get("ca_file") is None:
        table.problems.add(table.where("dsn"), "TLS to the database is verified: give "
                                               "ca_file (the CA that signed its certificate)")
    if ca_file is not None and not ca_file.is_file():
        table.problems.add(table.where("ca_file"), f"{ca_file}: no such file")
    return StoreSettings(backend=backend, dsn=dsn, password=password, ca_file=ca_file,
                         key=key, lease_seconds=float(lease or 120.0),
                         holder=holder or os.uname().nodename)  # gethostname(), no socket


def _key(table: Table, text: str | None) -> bytes | None:
    """The local key: 64 hex digits (``certfleet store new-key FILE`` writes one)."""
    if text is None:
        if table.data.get("key_file") is None:
            table.problems.add(table.where("backend"), "backend = \"postgresql\" needs "
                               "key_file (make one with: certfleet store new-key FILE)")
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        table.problems.add(table.where("key_file"), f"{table.data.get('key_file')}: must "
                           f"hold {KEY_BYTES * 2} hex digits (certfleet store new-key FILE)")
        return None
    return key
