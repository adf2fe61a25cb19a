"""A CA that sends a path as challenge token gets nothing written anywhere."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from certfleet.cli import main

from .fakeca import FakeCA

HOSTILE = ["../../etc/passwd", "/etc/passwd", "..", "a/b" * 20, "tok en" * 8, "x" * 10,
           "%2e%2e%2fetc%2fpasswd__________", "A" * 43 + "\n", "A" * 300]


@pytest.fixture
def fake_ca() -> Iterator[FakeCA]:
    ca = FakeCA().start()
    yield ca
    ca.stop()


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("token", HOSTILE)
def test_hostile_token_writes_nothing(fake_ca: FakeCA, tmp_path: Path, token: str) -> None:
    fake_ca.token = token
    work = tmp_path / "work"
    webroot = work / "webroot" / "deep" / "er"
    webroot.mkdir(parents=True)
    state = tmp_path / "state"
    before = _tree(work)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["issue", "x.example", "--state-dir", str(state), "--directory",
                   fake_ca.directory_url, "--insecure-http", "--webroot", str(webroot)])
    assert rc == 1
    assert out.getvalue().startswith("x.example: failed: x.example: CA sent an unsafe "
                                     "challenge token")
    assert "\n" not in out.getvalue().rstrip("\n")
    assert _tree(work) == before
    assert not (state / "certs" / "x.example" / "current").exists()
    assert not any("passwd" in p for p in _tree(tmp_path))
    assert not any(r.startswith("POST /chall") for r in fake_ca.requests)


def test_plain_http_ca_refused_without_flag(fake_ca: FakeCA, tmp_path: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["issue", "x.example", "--state-dir", str(tmp_path / "s"), "--directory",
                   fake_ca.directory_url, "--webroot", str(tmp_path)])
    assert rc == 1
    assert out.getvalue() == ("certfleet: command line (--directory): a plain http:// directory "
                              "needs allow_http = true (--insecure-http; for test servers only)\n")
    assert not (tmp_path / "s").exists()  # refused before anything was made
    assert fake_ca.requests == []
