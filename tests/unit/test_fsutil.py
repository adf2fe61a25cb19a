"""certfleet.fsutil on real directories: atomic writes, modes, symlinks, secure dirs."""

from __future__ import annotations

import errno
import os
import pickle
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from certfleet import fsutil
from certfleet.errors import ConfigError, StoreError
from tests.conftest import need_root


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


def test_write_exclusive_into_a_missing_directory_names_the_cause(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"/gone/key\.pem: cannot write: No such file or "
                                         r"directory$"):
        fsutil.write_exclusive(tmp_path / "gone" / "key.pem", b"k", 0o600)


# -- the atomic switch of a link ----------------------------------------------------------------

class Crash(BaseException):
    """The process dies here: nothing after it runs, no ``except OSError`` catches it."""


DIRECTORY_CHANGES = ("symlink", "replace", "rename", "unlink", "remove", "rmdir")


@pytest.mark.parametrize("survives", [0, 1, 2])
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


def _record_steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    for name in DIRECTORY_CHANGES:
        real = getattr(os, name)

        def step(*args: object, _real: object = real, _name: str = name, **kw: object) -> object:
            steps.append((_name, Path(str(args[-1])).name))
            return _real(*args, **kw)  # type: ignore[operator]
        monkeypatch.setattr(os, name, step)
    return steps


def test_replace_symlink_steps_then_the_new_link(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a link that is there, the switch is a temporary link renamed over it, and
    nothing else (the link made in place is refused: one is there)."""
    link = tmp_path / "current"
    fsutil.replace_symlink(link, "versions/1")
    steps = _record_steps(monkeypatch)
    fsutil.replace_symlink(link, "versions/2")
    monkeypatch.undo()
    assert [name for name, _ in steps] == ["symlink", "symlink", "replace"]
    assert steps[0][1] == steps[2][1] == "current"
    assert steps[1][1].startswith(".current" + fsutil.TMP_MARK)
    assert os.readlink(link) == "versions/2"
    assert os.listdir(tmp_path) == ["current"]


def test_a_link_where_there_is_none_is_made_in_place(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A first link (the stable links and ``current`` of a new certificate) needs no
    temporary name and no rename: ``symlink`` makes it whole."""
    link = tmp_path / "cert.pem"
    steps = _record_steps(monkeypatch)
    fsutil.replace_symlink(link, "current/cert.pem")
    monkeypatch.undo()
    assert steps == [("symlink", "cert.pem")]
    assert os.readlink(link) == "current/cert.pem"
    link.unlink()
    link.symlink_to("current/other.pem")  # a dangling link is there too: replaced
    fsutil.replace_symlink(link, "current/cert.pem")
    assert os.readlink(link) == "current/cert.pem"
    assert os.listdir(tmp_path) == ["cert.pem"]


READER = """
import os, sys
link, stop = sys.argv[1], sys.argv[2]
reads = misses = 0
print("ready", flush=True)
while True:
    if reads + misses and os.path.exists(stop):
        break
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
        # At least 200 switches whatever the machine's load, and more for up to 1.5 s.
        deadline = time.monotonic() + 1.5
        switches = 0
        while switches < 200 or (switches < 2000 and time.monotonic() < deadline):
            switches += 1
            fsutil.replace_symlink(link, f"versions/{switches % 2 + 1}")
    finally:
        stop.touch()
        reads, misses = map(int, reader.stdout.readline().split())
        reader.wait(timeout=30)
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
    need_root("a directory owned by another user")
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


# -- as another user ---------------------------------------------------------------------------

def as_user(uid: int, work: Callable[[], object]) -> object:
    """``work()`` in a forked child that is ``uid`` through and through (real, effective and
    saved IDs, no groups): certfleet run by an ordinary user. Its exception comes back as
    ``"Name: message"``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                result: object = ("ok", work())
            except Exception as exc:
                result = ("raised", f"{type(exc).__name__}: {exc}")
            os.write(write, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    return value if kind == "ok" else f"raised {value}"


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may enter (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="certfleet-fsutil-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# -- fsync_dir, write_new, write_atomic ---------------------------------------------------------

def test_fsync_dir_takes_only_a_directory(tmp_path: Path) -> None:
    fsutil.fsync_dir(tmp_path)
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        fsutil.fsync_dir(tmp_path / "f")


def test_data_is_synced_before_the_rename_that_publishes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What survives a power cut, which no test can cut: a file's bytes reach the disk
    before the rename that makes them the file, and the directory's entry after it. The
    order of the calls is the promise here."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        calls.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fsutil.write_atomic(tmp_path / "f", b"data", 0o644)
    fsutil.replace_symlink(tmp_path / "link", "f")  # a new link: made in place
    fsutil.replace_symlink(tmp_path / "link", "f")  # over one that is there: renamed
    assert calls[0][0] == "fsync"
    assert calls[0][1].startswith(f"{tmp_path}/.f{fsutil.TMP_MARK}")
    assert calls[1:] == [("replace", f"{tmp_path}/f"), ("fsync", str(tmp_path)),
                         ("fsync", str(tmp_path)),
                         ("replace", f"{tmp_path}/link"), ("fsync", str(tmp_path))]


def test_a_file_read_in_short_pieces_is_read_whole(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Network and FUSE file systems may return fewer bytes than asked before the end."""
    real = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real(fd, min(n, 3)))
    (tmp_path / "f").write_bytes(b"0123456789")
    assert fsutil.read_small(tmp_path / "f") == b"0123456789"


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o400])
def test_write_new_gives_the_mode_at_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              mode: int) -> None:
    """Never, not even before the first byte, is the file more open than its mode: a
    reader who opened it in such a moment would keep reading what is written later."""
    seen: list[int] = []
    real = os.fchmod

    def fchmod(fd: int, new: int) -> None:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real(fd, new)

    monkeypatch.setattr(os, "fchmod", fchmod)
    old = os.umask(0)
    try:
        fsutil.write_new(tmp_path / "key", b"secret", mode)
    finally:
        os.umask(old)
    assert seen == [mode]
    assert mode_of(tmp_path / "key") == mode
    assert (tmp_path / "key").read_bytes() == b"secret"


def test_write_new_writes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Short writes (a signal, a pipe-sized chunk) are continued, not dropped."""
    real = os.write

    def short(fd: int, data: bytes | memoryview) -> int:
        return real(fd, bytes(data[:1000]))

    monkeypatch.setattr(os, "write", short)
    data = bytes(range(256)) * 40
    fsutil.write_new(tmp_path / "f", data, 0o644)
    assert (tmp_path / "f").read_bytes() == data


def test_write_atomic_failure_names_the_file_and_the_cause(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(StoreError, match=r"/dir: cannot write: Is a directory$"):
        fsutil.write_atomic(tmp_path / "dir", b"x")
    assert os.listdir(tmp_path) == ["dir"]


# -- processes and leftovers ----------------------------------------------------------------------

def test_process_gone() -> None:
    assert not fsutil.process_gone(os.getpid())
    assert fsutil.process_gone(_dead_pid())
    assert not fsutil.process_gone(1)


def test_process_gone_only_asks(tmp_path: Path) -> None:
    """The question is signal 0: a live process is neither stopped nor disturbed."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not fsutil.process_gone(child.pid)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.3)
    finally:
        child.kill()
        child.wait()


def test_a_process_of_another_user_counts_as_alive(nobody: int) -> None:
    """Signalling it is not permitted: it exists, and its files are not swept."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert fsutil.process_gone(child.pid) is False       # root may signal it
        assert as_user(nobody, lambda: fsutil.process_gone(child.pid)) is False
    finally:
        child.kill()
        child.wait()


def test_remove_leftover_file_directory_and_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_bytes(b"keep")
    leftovers = tmp_path / "leftovers"
    leftovers.mkdir()
    (leftovers / "file").write_bytes(b"x")
    (leftovers / "tree" / "sub").mkdir(parents=True)
    (leftovers / "tree" / "sub" / "f").write_bytes(b"x")
    (leftovers / "link").symlink_to(victim)
    for name in ("file", "tree", "link", "missing"):
        fsutil.remove_leftover(leftovers / name)
    assert os.listdir(leftovers) == []
    assert (victim / "keep").read_bytes() == b"keep"


@pytest.mark.parametrize("what", ["file", "tree"])
def test_remove_leftover_never_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     what: str) -> None:
    """A leftover that cannot be removed is left for the next sweep; the run goes on."""
    path = tmp_path / what
    if what == "tree":
        (path / "sub").mkdir(parents=True)
    else:
        path.write_bytes(b"x")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "unlink", refuse)
    monkeypatch.setattr(os, "rmdir", refuse)
    fsutil.remove_leftover(path)
    monkeypatch.undo()
    assert path.exists()


# -- reading files --------------------------------------------------------------------------------

def test_read_small_refuses_a_fifo_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(StoreError, match=r"/fifo: not a regular file$"):
        fsutil.read_small(tmp_path / "fifo")
    with pytest.raises(StoreError, match=r"/fifo: not a regular file$"):
        fsutil.read_private(tmp_path / "fifo")


def test_read_small_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 10)
    with pytest.raises(StoreError, match=rf"^{tmp_path}/f: larger than 9 bytes$"):
        fsutil.read_small(tmp_path / "f", limit=9)
    with pytest.raises(StoreError, match=rf"^{tmp_path}/f/x: cannot read: Not a directory$"):
        fsutil.read_small(tmp_path / "f" / "x")
    (tmp_path / "link").symlink_to(tmp_path / "f")
    with pytest.raises(StoreError, match=r"/link: cannot read: Too many levels of symbolic"):
        fsutil.read_small(tmp_path / "link")


def test_a_file_that_grows_while_read_is_refused() -> None:
    """/proc files say size 0 and have content: like a file appended to while read."""
    with pytest.raises(StoreError, match=r"^/proc/self/status: changed while being read$"):
        fsutil.read_small(Path("/proc/self/status"))


@pytest.mark.parametrize(("mode", "was"), [(0o644, 0o644), (0o640, 0o640), (0o604, 0o604),
                                           (0o700, None), (0o600, None), (0o400, None)])
def test_read_private_makes_a_readable_key_private_again(tmp_path: Path, mode: int,
                                                         was: int | None) -> None:
    key = tmp_path / "privkey.pem"
    key.write_bytes(b"key")
    key.chmod(mode)
    assert fsutil.read_private(key) == (b"key", was)
    assert mode_of(key) == (mode if was is None else 0o600)


def test_read_private_leaves_other_users_files_and_other_kinds_alone(
        tmp_path: Path, nobody: int) -> None:
    key = tmp_path / "privkey.pem"
    key.write_bytes(b"key")
    key.chmod(0o644)
    os.chown(key, nobody, -1)
    assert fsutil.read_private(key) == (b"key", None)
    assert mode_of(key) == 0o644
    os.mkfifo(tmp_path / "fifo", 0o644)
    with pytest.raises(StoreError, match="not a regular file"):
        fsutil.read_private(tmp_path / "fifo")
    assert mode_of(tmp_path / "fifo") == 0o644


def test_read_private_refuses_links_and_names_the_file(tmp_path: Path) -> None:
    key = tmp_path / "privkey.pem"
    key.write_bytes(b"k" * 10)
    (tmp_path / "link").symlink_to(key)
    with pytest.raises(StoreError, match=r"/link: cannot read: Too many levels of symbolic"):
        fsutil.read_private(tmp_path / "link")
    with pytest.raises(StoreError, match=rf"^{key}: larger than 5 bytes$"):
        fsutil.read_private(key, limit=5)
    with pytest.raises(FileNotFoundError):
        fsutil.read_private(tmp_path / "missing")


# -- read_trusted: input files that decide what certfleet does ---------------------------------

def trusted(path: Path, mode: int = 0o644, data: bytes = b"setting = 1\n") -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o755, 0o444, 0o640])
def test_read_trusted_takes_a_file_only_its_owner_can_write(tmp_path: Path, mode: int) -> None:
    path = trusted(tmp_path / "certfleet.toml", mode)
    assert fsutil.read_trusted(path, 100) == b"setting = 1\n"


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666, 0o620, 0o602])
def test_read_trusted_refuses_a_file_others_can_write(tmp_path: Path, mode: int) -> None:
    path = trusted(tmp_path / "certfleet.toml", mode)
    with pytest.raises(ConfigError, match=rf"^{path}: writable by group or others \(mode "
                                          rf"{mode:o}\); chmod go-w it$"):
        fsutil.read_trusted(path, 100)


@pytest.mark.parametrize(("mode", "ok"), [(0o600, True), (0o400, True), (0o700, True),
                                          (0o640, False), (0o604, False), (0o610, False)])
def test_a_secret_must_be_private(tmp_path: Path, mode: int, ok: bool) -> None:
    path = trusted(tmp_path / "tsig.key", mode)
    if ok:
        assert fsutil.read_trusted(path, 100, secret=True) == b"setting = 1\n"
        return
    with pytest.raises(ConfigError, match=rf"^{path}: a secret readable by group or others "
                                          rf"\(mode {mode:o}\); chmod 600 it$"):
        fsutil.read_trusted(path, 100, secret=True)
    assert fsutil.read_trusted(path, 100) == b"setting = 1\n"  # fine when not a secret


@pytest.mark.parametrize(("mode", "ok"), [(0o755, True), (0o700, True), (0o1777, True),
                                          (0o1770, True), (0o775, False), (0o757, False),
                                          (0o777, False)])
def test_read_trusted_refuses_a_directory_others_can_write(tmp_path: Path, mode: int,
                                                          ok: bool) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = trusted(folder / "domains.txt")
    folder.chmod(mode)
    if ok:   # a sticky directory (/tmp) lets no one replace another's file
        assert fsutil.read_trusted(path, 100) == b"setting = 1\n"
        return
    with pytest.raises(ConfigError, match=rf"^{path}: its directory {folder} is writable by "
                                          rf"group or others \(mode {mode:o}\), who could "
                                          "replace it$"):
        fsutil.read_trusted(path, 100)


def test_read_trusted_follows_a_link_and_checks_what_it_leads_to(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    path = trusted(real / "certfleet.toml")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    link = open_dir / "certfleet.toml"
    link.symlink_to(path)
    assert fsutil.read_trusted(link, 100) == b"setting = 1\n"  # the link's folder is not it
    real.chmod(0o777)
    with pytest.raises(ConfigError, match=f"its directory {real} is writable"):
        fsutil.read_trusted(link, 100)


def test_read_trusted_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo", 0o600)
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/fifo: not a regular file$"):
        fsutil.read_trusted(tmp_path / "fifo", 100)   # and never opened: no hang
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: not a regular file$"):
        fsutil.read_trusted(tmp_path, 100)
    with pytest.raises(FileNotFoundError):
        fsutil.read_trusted(tmp_path / "missing", 100)
    trusted(tmp_path / "f")
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/f/x: cannot read: Not a directory$"):
        fsutil.read_trusted(tmp_path / "f" / "x", 100)


def test_read_trusted_size_limit_is_a_config_error(tmp_path: Path) -> None:
    path = trusted(tmp_path / "domains.txt", data=b"x" * 11)
    assert fsutil.read_trusted(path, 11) == b"x" * 11
    with pytest.raises(ConfigError, match=rf"^{path}: larger than 10 bytes$"):
        fsutil.read_trusted(path, 10)


def test_read_trusted_refuses_a_file_replaced_while_opened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = trusted(tmp_path / "certfleet.toml")
    evil = trusted(tmp_path / "evil", data=b"reload = ['/bin/sh']\n")
    real = os.open

    def swap(file: object, flags: int, *args: object, **kwargs: object) -> int:
        if file == path:
            os.rename(evil, path)   # between the checks and the open
        return real(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", swap)
    with pytest.raises(ConfigError, match=rf"^{path}: replaced while being opened$"):
        fsutil.read_trusted(path, 100)


def test_read_trusted_open_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = trusted(tmp_path / "certfleet.toml")

    def refuse(*_args: object, **_kwargs: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ConfigError, match=rf"^{path}: cannot read: Permission denied$"):
        fsutil.read_trusted(path, 100)


def test_read_trusted_owners(tmp_path: Path, nobody: int) -> None:
    """As root: root's files only. An ordinary user: its own and root's, nobody else's."""
    folder = tmp_path / "etc"
    folder.mkdir()
    path = trusted(folder / "certfleet.toml")
    assert fsutil.read_trusted(path, 100)
    for owner in (nobody, 1):
        os.chown(path, owner, -1)
        with pytest.raises(ConfigError, match=rf"^{path}: owned by uid {owner}, not by this "
                                              "user or root; whoever owns it decides what "
                                              "certfleet runs$"):
            fsutil.read_trusted(path, 100)
        os.chown(path, 0, -1)
        os.chown(folder, owner, -1)
        with pytest.raises(ConfigError, match=rf"^{path}: its directory {folder} is owned by "
                                              rf"uid {owner}, who could replace it$"):
            fsutil.read_trusted(path, 100)
        os.chown(folder, 0, -1)


def test_read_trusted_as_an_ordinary_user(shared: Path, nobody: int) -> None:
    mine = shared / "mine"
    mine.mkdir()
    os.chown(mine, nobody, -1)
    own = trusted(mine / "certfleet.toml")
    os.chown(own, nobody, -1)
    roots = trusted(shared / "domains.txt")
    other = trusted(shared / "other.toml")
    os.chown(other, 1, -1)
    with pytest.raises(ConfigError, match=f"owned by uid {nobody}"):
        fsutil.read_trusted(own, 100)            # root does not take nobody's settings
    assert as_user(nobody, lambda: fsutil.read_trusted(own, 100)) == b"setting = 1\n"
    assert as_user(nobody, lambda: fsutil.read_trusted(roots, 100)) == b"setting = 1\n"
    assert as_user(nobody, lambda: fsutil.read_trusted(other, 100)) == (
        f"raised ConfigError: {other}: owned by uid 1, not by this user or root; whoever "
        "owns it decides what certfleet runs")


def test_check_dir_as_an_ordinary_user(shared: Path, nobody: int) -> None:
    mine = shared / "state"
    mine.mkdir(mode=0o700)
    os.chown(mine, nobody, -1)
    with pytest.raises(StoreError, match=f"owned by uid {nobody}, not by this user"):
        fsutil.check_dir(mine)                   # not root's
    assert as_user(nobody, lambda: fsutil.check_dir(mine)) == mine
    assert as_user(nobody, lambda: fsutil.check_dir(shared)) == (
        f"raised StoreError: {shared}: owned by uid 0, not by this user")


def test_check_dir_messages(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=rf"^{tmp_path}/missing: cannot inspect: No such file "
                                         "or directory$"):
        fsutil.check_dir(tmp_path / "missing")
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(StoreError, match=rf"^{tmp_path}/f: not a directory \(symlinks are "
                                         r"not followed\)$"):
        fsutil.check_dir(tmp_path / "f")
    (tmp_path / "d").mkdir(mode=0o700)
    (tmp_path / "d").chmod(0o720)
    with pytest.raises(StoreError, match=rf"^{tmp_path}/d: writable by group or others; "
                                         "refusing to use it$"):
        fsutil.check_dir(tmp_path / "d")
    for mode in (0o755, 0o700, 0o711, 0o1700):
        (tmp_path / "d").chmod(mode)
        assert fsutil.check_dir(tmp_path / "d") == tmp_path / "d"


def test_secure_dir_creates_missing_parents_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        made = fsutil.secure_dir(tmp_path / "a" / "b" / "c", 0o755)
    finally:
        os.umask(old)
    assert made == tmp_path / "a" / "b" / "c"
    assert mode_of(made) == 0o755
    old = os.umask(0)
    try:
        assert mode_of(fsutil.secure_dir(tmp_path / "x")) == 0o700
    finally:
        os.umask(old)
    assert mode_of(fsutil.secure_dir(tmp_path / "x")) == 0o700  # existing: left as it is


def test_secure_dir_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(StoreError, match=rf"^{tmp_path}/f/d: cannot create directory: Not a "
                                         "directory$"):
        fsutil.secure_dir(tmp_path / "f" / "d")


def test_read_trusted_names_a_directory_it_cannot_inspect(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = trusted(tmp_path / "certfleet.toml")
    real = os.stat

    def stat_(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(target) == tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_)
    with pytest.raises(ConfigError) as caught:
        fsutil.read_trusted(path, 100)
    assert str(caught.value) == f"{tmp_path}: cannot inspect: Permission denied"


def test_a_first_link_refused_is_a_store_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "symlink", refuse)
    with pytest.raises(StoreError, match=r"/cert.pem: cannot switch link: Permission denied$"):
        fsutil.replace_symlink(tmp_path / "cert.pem", "current/cert.pem")
    assert os.listdir(tmp_path) == []


def test_replace_symlink_failing_twice_is_still_a_store_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "current"
    fsutil.replace_symlink(link, "versions/1")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(os, "unlink", refuse)   # the temporary link stays: swept later
    with pytest.raises(StoreError, match=r"current: cannot switch link: Input/output error$"):
        fsutil.replace_symlink(link, "versions/2")
    monkeypatch.undo()
    assert os.readlink(link) == "versions/1"


def test_secure_dir_made_by_another_run_meanwhile(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs may create the same directory at once: the second one takes it."""
    path = tmp_path / "certs"
    real = os.path.lexists

    def racing(target: Any) -> bool:
        if Path(target) == path and not real(path):
            path.mkdir(mode=0o700)       # the other run, just now
            return False
        return real(target)

    monkeypatch.setattr(os.path, "lexists", racing)
    assert fsutil.secure_dir(path) == path
    assert mode_of(path) == 0o700


def test_secure_dir_is_private_from_creation(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = os.chmod

    def spy(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        seen.append(stat.S_IMODE(os.lstat(path).st_mode))
        real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", spy)
    old = os.umask(0)
    try:
        fsutil.secure_dir(tmp_path / "state")
    finally:
        os.umask(old)
    assert seen == [0o700]


def test_secure_dir_never_changes_what_a_planted_link_leads_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swapped for a link between being made and its chmod: the link is not followed."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    victim.chmod(0o644)
    path = tmp_path / "state"
    real = Path.mkdir

    def swapped(self: Path, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        if self == path:
            self.rmdir()
            self.symlink_to(victim)

    monkeypatch.setattr(Path, "mkdir", swapped)
    with pytest.raises((StoreError, NotImplementedError)):
        fsutil.secure_dir(path)
    assert mode_of(victim) == 0o644


def test_every_temporary_name_is_a_leftover_once_its_process_is_gone(tmp_path: Path) -> None:
    dead = str(_dead_pid())
    for path in (tmp_path / "cert.pem", tmp_path / "1", tmp_path / ".hidden", tmp_path / "a-b"):
        name = fsutil.temp_name(path).name
        assert not fsutil.is_leftover(name)
        assert fsutil.is_leftover(name.replace(f"{fsutil.TMP_MARK}{os.getpid()}-",
                                               f"{fsutil.TMP_MARK}{dead}-"))


def test_remove_tree_removes_a_directory_of_files_and_one_with_more_inside(
        tmp_path: Path) -> None:
    flat = tmp_path / "pending"
    flat.mkdir()
    (flat / "privkey.pem").write_bytes(b"k")
    (flat / "link").symlink_to(tmp_path / "elsewhere")
    nested = tmp_path / "version"
    (nested / "deeper" / "deepest").mkdir(parents=True)
    (nested / "deeper" / "deepest" / "cert.pem").write_bytes(b"c")
    (nested / "meta.json").write_bytes(b"{}")
    for path in (flat, nested):
        fsutil.remove_tree(path)
        assert not path.exists()
    fsutil.remove_tree(tmp_path / "never-there")  # already gone: nothing to say


def test_remove_tree_never_follows_a_link_or_removes_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link planted where a directory was (to one with files, or with a directory in
    it) is neither followed nor emptied; a file is left alone; neither is handed to
    shutil's walk."""
    walked: list[Path] = []
    monkeypatch.setattr(shutil, "rmtree", lambda path, **_: walked.append(Path(path)))
    target = tmp_path / "target"
    (target / "inner").mkdir(parents=True)
    (target / "privkey.pem").write_bytes(b"theirs")
    flat_target = tmp_path / "flat-target"
    flat_target.mkdir()
    (flat_target / "privkey.pem").write_bytes(b"theirs")
    for planted_to in (target, flat_target):
        planted = tmp_path / "pending"
        planted.symlink_to(planted_to)
        fsutil.remove_tree(planted)
        assert (planted_to / "privkey.pem").read_bytes() == b"theirs"
        planted.unlink()
    file = tmp_path / "file"
    file.write_bytes(b"f")
    fsutil.remove_tree(file)
    assert file.read_bytes() == b"f"
    assert (target / "inner").is_dir()
    assert walked == []


def test_remove_tree_empties_a_directory_of_files_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The directories certfleet removes hold files only (pending/, a version): they go
    without shutil's walk (which an issuing process then never imports); a directory
    inside one is left to that walk."""
    walked: list[Path] = []
    monkeypatch.setattr(shutil, "rmtree", lambda path, **_: walked.append(Path(path)))
    flat = tmp_path / "pending"
    flat.mkdir()
    for name in ("privkey.pem", ".privkey.pem.tmp-1-a"):
        (flat / name).write_bytes(b"k")
    (flat / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "theirs").mkdir()
    (flat / "to-a-directory").symlink_to(tmp_path / "theirs")  # a file here, not a dir
    fsutil.remove_tree(flat)
    assert walked == []
    assert not flat.exists()
    assert (tmp_path / "theirs").is_dir()
    nested = tmp_path / "version"
    (nested / "inner").mkdir(parents=True)
    fsutil.remove_tree(nested)
    assert walked == [nested]


def test_a_file_named_for_another_reader_need_not_be_private_unless_a_secret(
        tmp_path: Path) -> None:
    """``check_trusted``: a known_hosts or ssh_config of 0644 is fine; an identity is a
    secret, so it is not."""
    path = tmp_path / "known_hosts"
    path.write_text("host key\n")
    path.chmod(0o644)
    assert fsutil.check_trusted(path).st_size == 9
    with pytest.raises(ConfigError, match="a secret readable by group or others"):
        fsutil.check_trusted(path, secret=True)
