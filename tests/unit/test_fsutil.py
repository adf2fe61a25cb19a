"""certfleet.fsutil on real directories: atomic writes, modes, symlinks, secure dirs."""

from __future__ import annotations

import errno
import os
import pwd
import stat
import subprocess
import sys
import time
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


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_is_leftover_only_for_temporary_names_of_dead_processes(tmp_path: Path) -> None:
    dead = _dead_pid()
    assert fsutil.is_leftover(f".cert.pem{fsutil.TMP_MARK}{dead}-0123456789ab")
    assert fsutil.is_leftover(f".1{fsutil.TMP_MARK}{dead}-abcdefabcdef")
    assert not fsutil.is_leftover(fsutil.temp_name(tmp_path / "cert.pem").name)  # this process
    assert not fsutil.is_leftover(f".cert.pem{fsutil.TMP_MARK}1-0123456789ab")  # init lives
    for name in (f"www.tmp-{dead}-a.example.com",          # a certificate's own directory
                 f"www.tmp-{dead}-0123456789ab",
                 f"cert.pem.tmp-{dead}-0123456789ab",      # not hidden
                 f".cert.pem.tmp-{dead}-0123456789a",      # not temp_name's random part
                 f".cert.pem.tmp-{dead}-0123456789abc",
                 f".cert.pem.tmp-{dead}-0123456789AB",
                 f".cert.pem.tmp-x{dead}-0123456789ab",
                 f".cert.pem.tmp-{dead}x-0123456789ab",
                 f".cert.pem.tmp-{dead}", f".tmp-{dead}-0123456789ab",
                 ".cert.pem.tmp--0123456789ab", "cert.pem"):
        assert not fsutil.is_leftover(name), name


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


# -- the atomic switch of a link ----------------------------------------------------------------

class Crash(BaseException):
    """The process dies here: nothing after it runs, no ``except OSError`` catches it."""


DIRECTORY_CHANGES = ("symlink", "replace", "rename", "unlink", "remove", "rmdir")


@pytest.mark.parametrize("survives", [0, 1])
def test_replace_symlink_crashing_at_any_step_leaves_a_whole_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, survives: int) -> None:
    """A crash after any number of the switch's steps leaves ``current`` pointing at the old
    version or the new one, never missing: the switch is one rename over the old link."""
    link = tmp_path / "current"
    fsutil.replace_symlink(link, "versions/1")
    steps: list[str] = []

    def crashing(name: str) -> object:
        real = getattr(os, name)

        def step(*args: object, **kwargs: object) -> object:
            steps.append(name)
            if len(steps) > survives:
                raise Crash(name)
            return real(*args, **kwargs)
        return step

    for name in DIRECTORY_CHANGES:
        monkeypatch.setattr(os, name, crashing(name))
    with pytest.raises(Crash):
        fsutil.replace_symlink(link, "versions/2")
    monkeypatch.undo()
    assert os.readlink(link) == "versions/1", steps


def test_replace_symlink_steps_then_the_new_link(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch is a temporary link renamed over the old one, and nothing else."""
    link = tmp_path / "current"
    fsutil.replace_symlink(link, "versions/1")
    steps: list[tuple[str, str]] = []
    for name in DIRECTORY_CHANGES:
        real = getattr(os, name)

        def step(*args: object, _real: object = real, _name: str = name, **kw: object) -> object:
            steps.append((_name, Path(str(args[-1])).name))
            return _real(*args, **kw)  # type: ignore[operator]
        monkeypatch.setattr(os, name, step)
    fsutil.replace_symlink(link, "versions/2")
    monkeypatch.undo()
    assert [name for name, _ in steps] == ["symlink", "replace"]
    assert steps[1][1] == "current"
    assert steps[0][1].startswith(".current" + fsutil.TMP_MARK)
    assert os.readlink(link) == "versions/2"
    assert os.listdir(tmp_path) == ["current"]


READER = """
import os, sys
link, stop = sys.argv[1], sys.argv[2]
reads = misses = 0
print("ready", flush=True)
while not os.path.exists(stop):
    for _ in range(200):
        try:
            os.readlink(link)
            os.stat(link)
            reads += 1
        except FileNotFoundError:
            misses += 1
print(reads, misses, flush=True)
"""


def test_replace_symlink_never_shows_a_reader_a_missing_link(tmp_path: Path) -> None:
    """Another process reading ``current`` while it is switched hundreds of times always
    finds it (nginx reading the stable links during a renewal sees the old or the new)."""
    for version in ("1", "2"):
        (tmp_path / "versions" / version).mkdir(parents=True)
    link, stop = tmp_path / "current", tmp_path / "stop"
    fsutil.replace_symlink(link, "versions/1")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(link), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None
    try:
        assert reader.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 1.5
        switches = 0
        while switches < 2000 and time.monotonic() < deadline:
            switches += 1
            fsutil.replace_symlink(link, f"versions/{switches % 2 + 1}")
    finally:
        stop.touch()
        reads, misses = map(int, reader.stdout.readline().split())
        reader.wait(timeout=30)
    assert switches >= 50
    assert reads > 0
    assert misses == 0, f"{misses} of {reads + misses} reads found no link"


def test_replace_symlink_failure_is_a_store_error_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "current"
    fsutil.replace_symlink(link, "versions/1")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StoreError, match=r"current: cannot switch link: Input/output error$"):
        fsutil.replace_symlink(link, "versions/2")
    monkeypatch.undo()
    assert os.readlink(link) == "versions/1"
    assert os.listdir(tmp_path) == ["current"]


# -- directories of another user ------------------------------------------------------------------

@pytest.fixture
def nobody() -> int:
    """The uid of ``nobody``; chown needs root (CI runs as root: there it must not skip)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("a directory owned by another user needs root to make [CI is set]")
        pytest.skip("a directory owned by another user needs root to make")
    return pwd.getpwnam("nobody").pw_uid


def test_secure_dir_refuses_a_directory_another_user_owns(tmp_path: Path, nobody: int) -> None:
    """Its owner could swap files under certfleet (a key, a version): never used."""
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    os.chown(path, nobody, -1)
    for check in (fsutil.secure_dir, fsutil.check_dir):
        with pytest.raises(StoreError, match=f"owned by uid {nobody}, not by this user"):
            check(path)
    os.chown(path, os.geteuid(), -1)
    assert fsutil.secure_dir(path) == path
