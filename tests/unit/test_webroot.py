"""certfleet.solvers.webroot.WebrootSolver: token files, and nothing but token files."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from certfleet.errors import ChallengeError
from certfleet.solvers.webroot import WebrootSolver

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTH = TOKEN + ".NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def snapshot(root: Path) -> dict[str, bytes | str | None]:
    """Every path under ``root`` with its content (files) or link target (symlinks)."""
    out: dict[str, bytes | str | None] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = os.readlink(path)
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = None
    return out


@pytest.fixture
def webroot(tmp_path: Path) -> Path:
    path = tmp_path / "www" / ".well-known" / "acme-challenge"
    path.mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(b"root:x:0:0\n")
    return path


def test_present_writes_token_file_and_cleanup_removes_it(webroot: Path) -> None:
    solver = WebrootSolver(webroot)
    asyncio.run(solver.present("example.com", TOKEN, KEY_AUTH))
    path = webroot / TOKEN
    assert path.read_bytes() == KEY_AUTH.encode()
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o644
    assert os.listdir(webroot) == [TOKEN]
    asyncio.run(solver.cleanup("example.com", TOKEN, KEY_AUTH))
    assert os.listdir(webroot) == []


def test_cleanup_without_present_is_quiet(webroot: Path) -> None:
    asyncio.run(WebrootSolver(webroot).cleanup("example.com", TOKEN, KEY_AUTH))
    assert os.listdir(webroot) == []


def test_present_replaces_leftover_of_same_token(webroot: Path) -> None:
    (webroot / TOKEN).write_bytes(b"stale")
    asyncio.run(WebrootSolver(webroot).present("example.com", TOKEN, KEY_AUTH))
    assert (webroot / TOKEN).read_bytes() == KEY_AUTH.encode()


@pytest.mark.parametrize(
    "token",
    [
        "../../etc/passwd",
        "../../../etc/passwd-and-enough-characters",
        "..",
        "",
        "short",
        TOKEN + "==",
        TOKEN[:20] + "/x",
        "A" * 300,
    ],
)
def test_unsafe_token_writes_nothing(tmp_path: Path, webroot: Path, token: str) -> None:
    before = snapshot(tmp_path)
    solver = WebrootSolver(webroot)
    with pytest.raises(ChallengeError, match="unsafe token"):
        asyncio.run(solver.present("example.com", token, token + ".thumb"))
    asyncio.run(solver.cleanup("example.com", token, token + ".thumb"))
    assert snapshot(tmp_path) == before


def test_unsafe_token_is_escaped_in_the_error(webroot: Path) -> None:
    with pytest.raises(ChallengeError) as info:
        asyncio.run(WebrootSolver(webroot).present("example.com", "\x1b[2J" + TOKEN, KEY_AUTH))
    assert "\x1b" not in str(info.value)


def test_symlink_at_token_path_is_not_followed(tmp_path: Path, webroot: Path) -> None:
    victim = tmp_path / "etc" / "passwd"
    (webroot / TOKEN).symlink_to(victim)
    asyncio.run(WebrootSolver(webroot).present("example.com", TOKEN, KEY_AUTH))
    assert victim.read_bytes() == b"root:x:0:0\n"
    assert not (webroot / TOKEN).is_symlink()
    assert (webroot / TOKEN).read_bytes() == KEY_AUTH.encode()


def test_cleanup_of_symlink_removes_link_only(tmp_path: Path, webroot: Path) -> None:
    victim = tmp_path / "etc" / "passwd"
    (webroot / TOKEN).symlink_to(victim)
    asyncio.run(WebrootSolver(webroot).cleanup("example.com", TOKEN, KEY_AUTH))
    assert victim.read_bytes() == b"root:x:0:0\n"
    assert os.listdir(webroot) == []


def test_missing_directory(tmp_path: Path) -> None:
    solver = WebrootSolver(tmp_path / "missing")
    with pytest.raises(ChallengeError, match="does not exist"):
        asyncio.run(solver.present("example.com", TOKEN, KEY_AUTH))
    assert not (tmp_path / "missing").exists()


def test_challenge_type() -> None:
    assert WebrootSolver.challenge_type == "http-01"
