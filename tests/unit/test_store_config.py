"""``[store]``: every bad value is a file:line error; the file backend imports no driver;
``nginx-config`` lists several Work hosts in one upstream."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from certfleet import nginx_config
from certfleet.config import ConfigErrors, load_job
from certfleet.errors import ConfigError
from certfleet.store.dsn import parse_dsn

KEY = "ab" * 32


def _config(tmp_path: Path, store: str) -> Path:
    tmp_path.chmod(0o700)
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "key").chmod(0o600)
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o600)
    (tmp_path / "ca.pem").write_text("x\n")
    path = tmp_path / "certfleet.toml"
    path.write_text(f'state_dir = "{tmp_path}/state"\n[store]\n{store}')
    return path


GOOD = ('backend = "postgresql"\ndsn = "postgresql://cf@db.example.net/cf"\n'
        'password_file = "pw"\nca_file = "ca.pem"\nkey_file = "key"\n')


def test_a_good_section(tmp_path: Path) -> None:
    job = load_job(_config(tmp_path, GOOD + "lease_seconds = 30\nholder = \"w1\"\n"))
    assert job.store.shared
    assert job.store.key == bytes.fromhex(KEY)
    assert job.store.password == "secret"
    assert (job.store.lease_seconds, job.store.holder) == (30.0, "w1")
    assert "secret" not in repr(job.store)
    assert KEY not in repr(job.store)


def test_the_holder_is_the_host_name_unless_given(tmp_path: Path) -> None:
    import socket

    assert load_job(_config(tmp_path, GOOD)).store.holder == socket.gethostname()


def test_the_default_is_the_file_store(tmp_path: Path) -> None:
    assert not load_job(_config(tmp_path, "")).store.shared


@pytest.mark.parametrize(("change", "line", "phrase"), [
    (('backend = "postgresql"', 'backend = "mysql"'), 3, "use one of files, postgresql"),
    (("postgresql://cf@db", "postgresql://cf:pw@db"), 4, "holds a password"),
    (("postgresql://cf@db.example.net/cf", "postgresql://db.example.net/cf"), 4,
     "names no user"),
    (("/cf\"", "/cf?sslmode=require\""), 4, "only verify-full"),
    (("/cf\"", "/cf?foo=1\""), 4, "unknown parameter 'foo'"),
    (('ca_file = "ca.pem"\n', ""), 4, "give ca_file"),
    (('key_file = "key"', 'key_file = "pw"'), 7, "must hold 64 hex digits"),
    (('key_file = "key"', 'key_file = "nothing"'), 7, "no such file"),
    (('password_file = "pw"\n', ""), 3, "needs the database password"),
    (('dsn = "postgresql://cf@db.example.net/cf"\n', ""), 3, "needs dsn = "),
    (('ca_file = "ca.pem"', 'ca_file = "nowhere.pem"'), 6, "nowhere.pem: no such file"),
    (('key_file = "key"\n', ""), 3, "needs key_file (make one with"),
    (('key_file = "key"\n', 'key_file = "key"\nholder = ""\n'), 8,
     "holder must be a printable name"),
    (('key_file = "key"\n', 'key_file = "key"\nholder = "a\\tb"\n'), 8,
     "holder must be a printable name"),
])
def test_bad_values_name_their_line(tmp_path: Path, change: tuple[str, str], line: int,
                                    phrase: str) -> None:
    path = _config(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigErrors) as info:
        load_job(path)
    assert f"{path}:{line}: " in str(info.value)
    assert phrase in str(info.value)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, GOOD)
    (tmp_path / "key").chmod(0o644)
    with pytest.raises(ConfigErrors, match=r"certfleet.toml:7: .*key"):
        load_job(path)


def test_postgresql_options_with_the_file_store_are_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, 'dsn = "postgresql://cf@db/cf"\n')
    with pytest.raises(ConfigErrors, match=r":3: dsn is for backend = \"postgresql\""):
        load_job(path)


def test_a_unix_socket_needs_no_tls() -> None:
    dsn = parse_dsn("postgresql://cf@/cf?host=/run/postgresql")
    assert dsn.host is None
    assert dsn.socket == "/run/postgresql/.s.PGSQL.5432"
    with pytest.raises(ValueError, match="no TLS"):
        parse_dsn("postgresql://cf@/cf?host=/run/postgresql&sslmode=verify-full")


def test_the_file_backend_never_imports_the_driver(tmp_path: Path) -> None:
    path = _config(tmp_path, "")
    code = ("import sys; from certfleet.config import load_job; from certfleet.store import "
            f"open_store; open_store(load_job(__import__('pathlib').Path({str(path)!r})));"
            "print(sorted(m for m in sys.modules if m.startswith(('pg8000', "
            "'certfleet.store.p'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_several_work_hosts_make_one_upstream() -> None:
    text = nginx_config.lb_proxy(["192.0.2.11:8080", "192.0.2.12:8080"])
    assert "upstream certfleet_acme {" in text
    assert "server 192.0.2.11:8080 max_fails=1 fail_timeout=10s;" in text
    assert "server 192.0.2.12:8080 max_fails=1 fail_timeout=10s;" in text
    assert "proxy_pass http://certfleet_acme;" in text
    assert "proxy_next_upstream error timeout http_404" in text
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        nginx_config.lb_proxy(["192.0.2.11:8080", "h:80;"])
    assert "proxy_pass http://192.0.2.11:8080;" in nginx_config.lb_proxy(["192.0.2.11:8080"])


def test_serve_counts_the_shared_tokens_without_waiting_for_the_database() -> None:
    """`serve`'s caps follow the tokens presented in the shared store; counting them asks
    the database, in a worker thread: the event loop gets the last count at once."""
    from certfleet.serve import _Every

    release, asked = threading.Event(), threading.Event()

    def count() -> int:
        asked.set()
        release.wait(10)
        return 7

    async def body() -> tuple[int, int]:
        every = _Every(count)
        first = every()               # asks in the background; the last count meanwhile
        await asyncio.to_thread(asked.wait, 10)
        assert not release.is_set()
        release.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if every.value == 7:
                break
        return first, every()

    assert asyncio.run(body()) == (0, 7)


def test_a_dsn_is_shown_without_a_password_or_options() -> None:
    assert parse_dsn("postgresql://cf@db.example.net:6432/certs").shown() == \
        "cf@db.example.net:6432/certs"
    assert parse_dsn("postgresql://cf@db.example.net/certs").shown() == \
        "cf@db.example.net:5432/certs"
    assert parse_dsn("postgresql://cf@/certs?host=/run/postgresql").shown() == \
        "cf@/run/postgresql/.s.PGSQL.5432/certs"


@pytest.mark.parametrize(("text", "parts"), [
    ("postgresql://cf@db.example.net/certs", ("cf", "certs", "db.example.net", 5432, None)),
    ("postgres://cf@db.example.net:6432/certs", ("cf", "certs", "db.example.net", 6432, None)),
    ("postgresql://c%40f@db/my%2Ddb?sslmode=verify-full", ("c@f", "my-db", "db", 5432, None)),
    ("postgresql://cf@db/Xcerts", ("cf", "Xcerts", "db", 5432, None)),
    ("postgresql://cf@/certs?host=/run/pg/", ("cf", "certs", None, 5432, "/run/pg/")),
    ("postgresql://cf@:6000/certs?host=/run/pg&sslmode=disable",
     ("cf", "certs", None, 6000, "/run/pg")),
])
def test_the_parts_of_a_dsn(text: str, parts: tuple[object, ...]) -> None:
    dsn = parse_dsn(text)
    assert (dsn.user, dsn.database, dsn.host, dsn.port, dsn.socket_dir) == parts


@pytest.mark.parametrize(("text", "reason"), [
    ("postgresql://cf@db:99999/certs", "not a postgresql:// URL: Port out of range 0-65535"),
    ("mysql://cf@db/certs", "must start with postgresql://"),
    ("postgresql://cf:secret@db/certs", "holds a password: put it in password_file or "
                                        "CERTFLEET_DB_PASSWORD instead"),
    ("postgresql://db/certs", "names no user (postgresql://USER@HOST/DATABASE)"),
    ("postgresql://cf@db/", "names no database (postgresql://USER@HOST/DATABASE)"),
    ("postgresql://cf@db/a/b", "names no database (postgresql://USER@HOST/DATABASE)"),
    ("postgresql://cf@db/certs?sslmode=verify-full&connect_timeout=3&application_name=x",
     "unknown parameter 'application_name' (host and sslmode are known)"),
    ("postgresql://cf@db/certs?host=/run/pg", "host= names a unix socket directory (an "
     "absolute path), and then the URL has no host of its own"),
    ("postgresql://cf@/certs?host=run/pg", "host= names a unix socket directory (an "
     "absolute path), and then the URL has no host of its own"),
    ("postgresql://cf@/certs", "names no host"),
    ("postgresql://cf@db/certs?sslmode=require", "sslmode=require: over TCP only "
     "verify-full is allowed (the database's certificate and name are always checked)"),
    ("postgresql://cf@db/certs?sslmode=", "sslmode=: over TCP only verify-full is allowed "
     "(the database's certificate and name are always checked)"),
    ("postgresql://cf@/certs?host=/run/pg&sslmode=require",
     "a unix socket has no TLS: leave sslmode out"),
])
def test_every_refusal_of_a_dsn_says_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_dsn(text)
    assert str(caught.value) == reason
    assert "secret" not in str(caught.value)


def test_a_shared_token_lookup_retries_once_then_says_the_database_failed() -> None:
    from certfleet.errors import StoreError
    from certfleet.store.pg_tokens import DbTokens

    class Db:
        def __init__(self, answers: list[Any]) -> None:
            self.answers, self.asked = answers, 0

        def run(self, sql: str, **params: Any) -> list[list[Any]]:
            self.asked += 1
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer  # type: ignore[no-any-return]

    token = "t" * 43
    lost = StoreError("database cf@db:5432/cf: connection lost: network error")
    db = Db([lost, [["a.example", "ka"]]])     # a restart: the second connection answers
    assert DbTokens(db).read(token) == ("a.example", "ka")  # type: ignore[arg-type]
    db = Db([[]])
    assert DbTokens(db).read(token) is None  # type: ignore[arg-type]
    db = Db([lost, lost])
    with pytest.raises(StoreError, match="connection lost"):
        DbTokens(db).read(token)  # type: ignore[arg-type]
    assert db.asked == 2
    assert DbTokens(Db([])).read("../x") is None  # type: ignore[arg-type]
