"""certfleet.fsutil on real directories: atomic writes, modes, symlinks, secure dirs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from certfleet import fsutil
from certfleet.errors import StoreError


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_write_atomic_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    fsutil.write_atomic(path, b"old")
    assert path.read_bytes() == b"old"
    fsutil.write_atomic(path, b"new content")
    assert path.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["cert.pem"]


def test_write_atomic_default_mode(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    fsutil.write_atomic(path, b"x")
    assert mode_of(path) == 0o644


def test_write_atomic_key_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "privkey.pem"
    fsutil.write_atomic(path, b"secret", mode=0o600)
    assert mode_of(path) == 0o600


def test_write_atomic_narrows_mode_of_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "privkey.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    fsutil.write_atomic(path, b"secret", mode=0o600)
    assert mode_of(path) == 0o600


def test_write_atomic_mode_not_widened_by_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        fsutil.write_atomic(tmp_path / "cert.pem", b"x", mode=0o644)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "cert.pem") == 0o644


def test_write_atomic_into_missing_dir_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot write"):
        fsutil.write_atomic(tmp_path / "missing" / "f", b"x")
    assert os.listdir(tmp_path) == []


def test_write_atomic_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    link = tmp_path / "cert.pem"
    link.symlink_to(victim)
    fsutil.write_atomic(link, b"new")
    assert victim.read_bytes() == b"untouched"
    assert not link.is_symlink()
    assert link.read_bytes() == b"new"


def test_write_new_refuses_existing_file_and_symlink(tmp_path: Path) -> None:
    existing = tmp_path / "f"
    existing.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        fsutil.write_new(existing, b"x", 0o600)
    assert existing.read_bytes() == b"keep"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    with pytest.raises(FileExistsError):
        fsutil.write_new(link, b"x", 0o600)
    assert not (tmp_path / "target").exists()


def test_temp_name_is_hidden_marked_and_beside(tmp_path: Path) -> None:
    tmp = fsutil.temp_name(tmp_path / "cert.pem")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".cert.pem" + fsutil.TMP_MARK)
    assert tmp != fsutil.temp_name(tmp_path / "cert.pem")


def test_replace_symlink(tmp_path: Path) -> None:
    link = tmp_path / "current"
    fsutil.replace_symlink(link, "versions/1")
    assert os.readlink(link) == "versions/1"
    fsutil.replace_symlink(link, "versions/2")
    assert os.readlink(link) == "versions/2"
    assert os.listdir(tmp_path) == ["current"]


def test_secure_dir_creates_0700(tmp_path: Path) -> None:
    path = fsutil.secure_dir(tmp_path / "a" / "b")
    assert path.is_dir()
    assert mode_of(path) == 0o700


def test_secure_dir_accepts_existing_private_dir(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o755)
    assert fsutil.secure_dir(tmp_path / "d") == tmp_path / "d"


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_secure_dir_refuses_writable_by_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "d"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(StoreError, match="writable by group or others"):
        fsutil.secure_dir(path)


def test_secure_dir_refuses_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(StoreError, match="symlinks are not followed"):
        fsutil.secure_dir(link)


def test_secure_dir_refuses_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(StoreError):
        fsutil.secure_dir(link)
    assert not (tmp_path / "nowhere").exists()


def test_secure_dir_refuses_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(StoreError):
        fsutil.secure_dir(tmp_path / "f")


def test_read_small(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert fsutil.read_small(path, limit=10) == b"x" * 10
    with pytest.raises(StoreError, match="larger than 9 bytes"):
        fsutil.read_small(path, limit=9)


def test_read_small_refuses_symlink_and_missing(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"secret")
    (tmp_path / "link").symlink_to(tmp_path / "f")
    with pytest.raises(StoreError, match="cannot read"):
        fsutil.read_small(tmp_path / "link")
    with pytest.raises(FileNotFoundError):  # absence is the caller's to judge
        fsutil.read_small(tmp_path / "missing")


def test_write_exclusive_never_writes_over(tmp_path: Path) -> None:
    path = tmp_path / "certfleet.toml"
    fsutil.write_exclusive(path, b"new\n", 0o644)
    assert path.read_bytes() == b"new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.symlink("elsewhere", tmp_path / "link")
    for existing in (path, tmp_path / "link"):
        with pytest.raises(FileExistsError):
            fsutil.write_exclusive(existing, b"other\n", 0o644)
    assert path.read_bytes() == b"new\n"
    assert not (tmp_path / "elsewhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certfleet.toml", "link"]
