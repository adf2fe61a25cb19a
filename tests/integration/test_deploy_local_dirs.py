"""Local targets on the real disk: the directory checks, a certificate's own directory, the
leftovers of killed deploys, what stands at a final name, and the reload command.

Each refusal is checked with its whole message and with the old files (or nothing) left in
place; each setting that accepts a directory is checked to accept it. The hostile-user
versions of some of these cases (tests/faults/) run a whole fleet with sshd and Pebble; these
call the transport directly, so that mutation testing can run them for every mutant.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from certfleet.deploy import _HOST_TAG, LEFTOVER_AGE, TMP_PREFIX, DeployFile
from certfleet.deploy import local as local_
from certfleet.deploy.local import LocalTransport, sweep_leftovers
from certfleet.errors import DeployError
from certfleet.layout import Placement
from certfleet.spec import HostSettings
from tests.children import as_nobody, in_child
from tests.conftest import need_root

HINT = "(trust_target_dir = true accepts it)"
FILES = [DeployFile("site.crt", b"cert new\n", 0o644), DeployFile("site.key", b"key new\n", 0o600)]


def _install(directory: Path | str, *, own: bool = False, files: list[DeployFile] = FILES,
             **settings: Any) -> None:
    where = Placement(str(directory), tuple((f.name, f.name) for f in files), own)

    async def go() -> None:
        async with LocalTransport() as transport:
            await transport.install(where, files, HostSettings(**settings))
    asyncio.run(go())


def _refused(directory: Path | str, message: str, **settings: Any) -> None:
    with pytest.raises(DeployError) as caught:
        _install(directory, **settings)
    assert str(caught.value) == message


def _old(directory: Path) -> None:
    (directory / "site.crt").write_bytes(b"cert old\n")
    (directory / "site.key").write_bytes(b"key old\n")


def _unchanged(directory: Path) -> None:
    assert (directory / "site.crt").read_bytes() == b"cert old\n"
    assert (directory / "site.key").read_bytes() == b"key old\n"
    assert sorted(os.listdir(directory)) == ["site.crt", "site.key"]


def _new(directory: Path) -> None:
    assert (directory / "site.crt").read_bytes() == b"cert new\n"
    assert (directory / "site.key").read_bytes() == b"key new\n"


def _mkdir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> Path:
    path.mkdir()
    os.chown(path, uid, gid)
    path.chmod(mode)
    return path


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def nobody() -> tuple[int, int]:
    need_root("directories owned by another user")
    return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid


# -- the directories on the way ---------------------------------------------------------------

def test_a_target_others_can_write_is_refused_even_sticky(tmp_path: Path) -> None:
    for mode in (0o777, 0o1777):
        target = _mkdir(tmp_path / f"t{mode:o}", mode)
        _old(target)
        _refused(target, f"{target}: refused: {target} is writable by others "
                         f"(mode {mode:04o}) {HINT}")
        _unchanged(target)
        _install(target, trust_target_dir=True)
        _new(target)


def test_a_directory_on_the_way_others_can_write_is_refused_unless_sticky(
        tmp_path: Path) -> None:
    way = _mkdir(tmp_path / "way", 0o777)
    target = _mkdir(way / "t", 0o755)
    _refused(target, f"{target}: refused: {way} is writable by others (mode 0777) {HINT}")
    assert os.listdir(target) == []
    way.chmod(0o1777)
    _install(target)
    _new(target)


def test_a_link_on_the_way_or_at_the_target_is_refused(tmp_path: Path) -> None:
    real = _mkdir(tmp_path / "real", 0o755)
    _mkdir(real / "t", 0o755)
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "tlink").symlink_to(real / "t")
    for way, target in ((tmp_path / "link", tmp_path / "link" / "t"),
                        (tmp_path / "tlink", tmp_path / "tlink")):
        _refused(target, f"{target}: refused: {way} is a symlink: target directories are "
                         f"not reached through links {HINT}")
    assert os.listdir(real / "t") == []
    _install(tmp_path / "link" / "t", trust_target_dir=True)
    _new(real / "t")


def test_a_target_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _refused(tmp_path / "file", f"{tmp_path}/file: refused: {tmp_path}/file is a regular "
                                "file, not a directory")


def test_a_missing_target_is_named_and_so_is_a_missing_directory_on_the_way(
        tmp_path: Path) -> None:
    _refused(tmp_path / "gone", f"{tmp_path}/gone: target directory missing")
    _refused(tmp_path / "gone" / "t",
             f"{tmp_path}/gone/t: target directory missing ({tmp_path}/gone)")
    _refused(tmp_path / "gone", f"{tmp_path}/gone: target directory missing",
             trust_target_dir=True)


def test_the_hosts_owner_may_own_the_target_by_name_or_number(
        tmp_path: Path, nobody: tuple[int, int]) -> None:
    uid, _ = nobody
    target = _mkdir(tmp_path / "t", 0o755, uid=uid)
    _refused(target, f"{target}: refused: {target} is owned by uid {uid}, not by root, the "
                     f"login user or the host's owner, who could swap the files {HINT}")
    _refused(target, f"{target}: refused: {target} is owned by uid {uid}, not by root, the "
                     f"login user or the host's owner, who could swap the files {HINT}",
             group="nogroup")
    for owner in ("nobody", str(uid)):
        _install(target, owner=owner)
        _new(target)
        assert os.stat(target / "site.key").st_uid == uid


def test_a_group_writable_target_needs_the_hosts_group_or_the_setting(
        tmp_path: Path, nobody: tuple[int, int]) -> None:
    _, gid = nobody
    target = _mkdir(tmp_path / "t", 0o775, gid=gid)
    message = (f"{target}: refused: {target} is writable by its group {gid} (mode 0775), not "
               "the host's group (allow_group_writable = true accepts it)")
    _refused(target, message)
    _refused(target, message, group="root")
    for settings in ({"group": "nogroup"}, {"group": str(gid)},
                     {"allow_group_writable": True}):
        _install(target, **settings)
        _new(target)
    assert os.stat(target / "site.key").st_gid == 0   # the setting alone changes no group
    assert os.stat(target / "site.key").st_uid == 0


def test_a_target_at_the_root_directory(tmp_path: Path) -> None:
    """``/`` itself: the walk ends where it starts. Run in a child chrooted into a directory
    of its own (root's, 0755, as ``/`` is), so that the machine's ``/`` is never written."""
    need_root("chroot")
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    files = [DeployFile("site-at-root.crt", b"cert\n", 0o644)]

    def at_root() -> None:
        # What the deploy imports as it goes (asyncio's thread pool) cannot be found once
        # chrooted: imported here, before.
        import concurrent.futures.thread  # noqa: F401
        os.chroot(root)
        os.chdir("/")
        _install("/", files=files)
        _install("/own", own=True)

    assert in_child(at_root) == "no error"
    assert (root / "site-at-root.crt").read_bytes() == b"cert\n"
    _new(root / "own")
    assert sorted(p.name for p in root.iterdir()) == ["own", "site-at-root.crt"]  # no leftovers
    # The same functions in this process too: mutation testing links a test to what it
    # reaches in its own process, not in a child; a mutant is then tried here and there.
    _install(root / "own", own=True)


def test_the_root_directory_is_opened_to_be_read() -> None:
    """The walk to ``/`` ends on a path-only descriptor; the target's is a readable one.
    Read-only: nothing is written to the machine's ``/``."""
    fd = local_._open_target("/", local_.Trust(frozenset({0, os.geteuid()})), "/")
    try:
        here, root = os.fstat(fd), os.stat("/")
        assert (here.st_dev, here.st_ino) == (root.st_dev, root.st_ino)
        assert set(os.listdir(fd)) == set(os.listdir("/"))   # a path-only one cannot list
    finally:
        os.close(fd)


# -- a certificate's own directory ------------------------------------------------------------

def test_an_own_directory_is_made_with_its_mode_and_owner(
        tmp_path: Path, nobody: tuple[int, int]) -> None:
    with _umask(0o077):
        _install(tmp_path / "www", own=True, dir_mode=0o751, owner="nobody", group="nogroup")
    info = os.stat(tmp_path / "www")
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o751, *nobody)
    _new(tmp_path / "www")
    with _umask(0o077):
        _install(tmp_path / "mine", own=True, dir_mode=0o755)
    info = os.stat(tmp_path / "mine")
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o755, 0, 0)
    assert stat.S_IMODE(os.stat(tmp_path / "mine" / "site.crt").st_mode) == 0o644


def test_an_existing_own_directory_keeps_its_mode_and_owner(
        tmp_path: Path, nobody: tuple[int, int]) -> None:
    own = _mkdir(tmp_path / "www", 0o700)
    _install(own, own=True, dir_mode=0o755, owner="nobody", group="nogroup")
    info = os.stat(own)
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o700, 0, 0)
    _new(own)


def test_an_own_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    own = _mkdir(tmp_path / "www", 0o777)
    _refused(own, f"{own}: refused: {own} is writable by others (mode 0777) {HINT}", own=True)
    assert os.listdir(own) == []
    own.chmod(0o1777)
    _refused(own, f"{own}: refused: {own} is writable by others (mode 1777) {HINT}", own=True)
    _install(own, own=True, trust_target_dir=True)
    _new(own)


def test_something_else_at_an_own_directory_is_refused(tmp_path: Path) -> None:
    elsewhere = _mkdir(tmp_path / "elsewhere", 0o755)
    (tmp_path / "link").symlink_to(elsewhere)
    (tmp_path / "file").write_text("x")
    for name, what in (("link", "a symlink"), ("file", "a regular file")):
        for trust in (False, True):
            _refused(tmp_path / name, f"{tmp_path}/{name}: refused: the certificate's own "
                                      f"directory is {what}, not a directory; certfleet never "
                                      "follows it", own=True, trust_target_dir=trust)
    assert os.listdir(elsewhere) == []


# -- files: modes, owners, what stands at a final name, leftovers -----------------------------

def test_files_get_their_modes_whatever_the_umask_and_keep_the_deployers_owner(
        tmp_path: Path) -> None:
    with _umask(0o077):
        _install(tmp_path, files=[DeployFile("a.pem", b"a", 0o644),
                                  DeployFile("b.pem", b"b" * 300_000, 0o640)])
    assert stat.S_IMODE(os.stat(tmp_path / "a.pem").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "b.pem").st_mode) == 0o640
    assert (tmp_path / "b.pem").read_bytes() == b"b" * 300_000
    info = os.stat(tmp_path / "a.pem")
    assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid())


@pytest.mark.parametrize(("plant", "what"), [
    (os.mkfifo, "a FIFO"),
    (lambda p: p.symlink_to("/etc/hostname"), "a symlink"),
    (lambda p: p.mkdir(), "a directory"),
])
def test_something_else_at_a_final_name_is_not_replaced(
        tmp_path: Path, plant: Callable[[Path], None], what: str) -> None:
    (tmp_path / "site.crt").write_bytes(b"cert old\n")
    plant(tmp_path / "site.key")
    _refused(tmp_path, f"{tmp_path}: refused: site.key is {what}, not a regular file; "
                       "certfleet does not replace it")
    assert (tmp_path / "site.crt").read_bytes() == b"cert old\n"
    assert sorted(os.listdir(tmp_path)) == ["site.crt", "site.key"]   # no temporary file left
    assert not stat.S_ISREG(os.lstat(tmp_path / "site.key").st_mode)


def _leftovers(directory: Path) -> dict[str, Path]:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - LEFTOVER_AGE - 3600
    names = {
        "dead": f"{TMP_PREFIX}{_HOST_TAG}-{dead.pid}-0a1b2c3d4e5f-site.crt",
        "live": f"{TMP_PREFIX}{_HOST_TAG}-{os.getpid()}-0a1b2c3d4e5f-site.crt",
        "other-fresh": f"{TMP_PREFIX}0000zzzz-{dead.pid}-0a1b2c3d4e5f-site.crt",
        "other-old": f"{TMP_PREFIX}0000zzzz-1-0a1b2c3d4e5f-site.key",
        "old-link": f"{TMP_PREFIX}0000zzzz-2-0a1b2c3d4e5f-site.key",
        "not-ours": "site.crt.bak",
    }
    paths = {key: directory / name for key, name in names.items()}
    victim = directory.parent / f"{directory.name}-victim"
    victim.write_text("victim")
    for key, path in paths.items():
        if key == "old-link":
            path.symlink_to(victim)   # an old link to a fresh file: the link's age counts
            os.utime(path, (old, old), follow_symlinks=False)
        else:
            path.write_text(key)
            if key in ("other-old", "not-ours"):
                os.utime(path, (old, old))
    return paths


def test_a_deploy_removes_what_killed_deploys_left_and_nothing_else(tmp_path: Path) -> None:
    target = _mkdir(tmp_path / "t", 0o755)
    paths = _leftovers(target)
    _install(target)
    _new(target)
    left = {key for key, path in paths.items() if os.path.lexists(path)}
    assert left == {"live", "other-fresh", "not-ours"}
    assert (tmp_path / "t-victim").read_text() == "victim"


def test_sweeping_a_directory_alone(tmp_path: Path) -> None:
    target = _mkdir(tmp_path / "t", 0o755)
    paths = _leftovers(target)
    (tmp_path / "link").symlink_to(target)
    sweep_leftovers(str(tmp_path / "link"))   # never through a link
    assert all(os.path.lexists(path) for path in paths.values())
    sweep_leftovers(str(tmp_path / "gone"))
    sweep_leftovers(str(target))
    left = {key for key, path in paths.items() if os.path.lexists(path)}
    assert left == {"live", "other-fresh", "not-ours"}


# -- as a deploy user who is not root ---------------------------------------------------------

@pytest.fixture
def open_top(nobody: tuple[int, int]) -> Iterator[Path]:
    """A directory every user can traverse (pytest's own are root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="certfleet-local-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def test_a_directory_on_the_way_the_user_may_only_traverse(
        open_top: Path, nobody: tuple[int, int]) -> None:
    way = _mkdir(open_top / "way", 0o711)
    target = _mkdir(way / "t", 0o755, uid=nobody[0], gid=nobody[1])
    _install(target, owner="nobody")   # root may; the user who owns the target too
    for name in ("site.crt", "site.key"):
        (target / name).unlink()
    assert as_nobody(lambda: _install(target)) == "no error"
    _new(target)
    assert os.stat(target / "site.key").st_uid == nobody[0]


def test_a_leftover_the_user_may_not_remove_does_not_stop_the_deploy(
        open_top: Path, nobody: tuple[int, int]) -> None:
    """In a sticky directory (accepted with trust_target_dir) the deploy user cannot remove
    another user's leftover; the sweep passes it by."""
    target = _mkdir(open_top / "sticky", 0o1777)
    paths = _leftovers(target)
    _install(target, trust_target_dir=True)
    assert {key for key, path in paths.items() if os.path.lexists(path)} == {
        "live", "other-fresh", "not-ours"}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stuck = target / f"{TMP_PREFIX}{_HOST_TAG}-{dead.pid}-0a1b2c3d4e5f-site.crt"
    stuck.write_text("root's")
    for name in ("site.crt", "site.key"):
        (target / name).unlink()
    assert as_nobody(lambda: _install(target, trust_target_dir=True)) == "no error"
    _new(target)
    assert stuck.read_text() == "root's"


def test_permission_denied_is_named_with_the_target(
        open_top: Path, nobody: tuple[int, int]) -> None:
    closed = _mkdir(open_top / "closed", 0o700)
    hidden = _mkdir(closed / "t", 0o755)
    _install(hidden)   # root may
    assert as_nobody(lambda: _install(hidden)) == f"DeployError: {hidden}: Permission denied"
    readonly = _mkdir(open_top / "ro", 0o755)
    _old(readonly)
    assert as_nobody(lambda: _install(readonly)) == \
        f"DeployError: {readonly}: Permission denied"
    _unchanged(readonly)


# -- the reload command -----------------------------------------------------------------------

def _reload(argv: list[str]) -> None:
    async def go() -> None:
        async with LocalTransport() as transport:
            await transport.run(argv)
    asyncio.run(go())


def _reload_error(argv: list[str]) -> str:
    with pytest.raises(DeployError) as caught:
        _reload(argv)
    return str(caught.value)


def test_a_reloads_output_ends_the_message(tmp_path: Path) -> None:
    assert _reload_error(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]) == \
        "reload /bin/sh exited 3: out\\nerr"
    tail = _reload_error(["/bin/sh", "-c", "printf 'x%.0s' $(seq 400); printf 'y\\377'; exit 4"])
    assert tail == "reload /bin/sh exited 4: ..." + "x" * 298 + "y\ufffd"  # the end kept
    assert _reload_error([str(tmp_path / "nope"), "-x"]) == \
        f"reload {tmp_path}/nope: No such file or directory"


def test_a_reload_that_hangs_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_, "RELOAD_TIMEOUT", 0.5)
    # sleep adds its arguments up; the odd second one tells this process from any other.
    argv = ["/bin/sleep", "60", f"0.{uuid.uuid4().int % 10**9:09d}"]
    assert _reload_error(argv) == "reload /bin/sleep: timed out"
    wanted = ("\0".join(argv) + "\0").encode()
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            assert (proc / "cmdline").read_bytes() != wanted, f"{proc.name} still runs"



def test_owner_and_group_problems_are_named_with_the_target(tmp_path: Path) -> None:
    _refused(tmp_path, f"{tmp_path}: invalid owner or group '-oops'", group="-oops")
    _refused(tmp_path, f"{tmp_path}: invalid owner or group 'a b'", owner="a b")
    _refused(tmp_path, f"{tmp_path}: no such user: 'no-such-user-here'",
             owner="no-such-user-here")
    _refused(tmp_path, f"{tmp_path}: no such group: 'no-such-group-here'",
             group="no-such-group-here")
    assert os.listdir(tmp_path) == []


def test_an_own_directory_is_made_only_where_the_parent_passes_the_checks(
        tmp_path: Path) -> None:
    parent = _mkdir(tmp_path / "parent", 0o777)
    _refused(parent / "www", f"{parent}: refused: {parent} is writable by others (mode 0777) "
                             f"{HINT}", own=True)
    assert os.listdir(parent) == []
    _refused(tmp_path / "gone" / "www", f"{tmp_path}/gone: target directory missing", own=True)
    _install(parent / "www", own=True, trust_target_dir=True)
    _new(parent / "www")


def test_a_long_file_name_leaves_room_for_the_temporary_name(tmp_path: Path) -> None:
    long = "c" * 200 + ".pem"
    _install(tmp_path, files=[DeployFile(long, b"long\n", 0o644)])
    assert os.listdir(tmp_path) == [long]


def test_a_reload_does_not_read_what_certfleet_was_given(tmp_path: Path) -> None:
    """The reload's stdin is empty even when certfleet's own has something to read."""
    read, write = os.pipe()
    os.write(write, b"line for certfleet\n")
    os.close(write)
    saved = os.dup(0)
    try:
        os.dup2(read, 0)
        _reload(["/bin/sh", "-c", "if read line; then echo read; exit 1; fi"])
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read)


def test_uid_and_gid_1_are_an_owner_and_a_group_like_any_other(tmp_path: Path) -> None:
    """1 is a real account (``daemon`` on Debian); -1 means "leave it" to chown."""
    need_root("chown to another user")
    owned = _mkdir(tmp_path / "owned", 0o755, uid=1)
    _install(owned, owner="1")
    assert os.stat(owned / "site.key").st_uid == 1
    shared = _mkdir(tmp_path / "shared", 0o775, gid=1)
    _install(shared, group="1")
    assert os.stat(shared / "site.key").st_gid == 1
    _install(tmp_path / "www", own=True, owner="1")
    _install(tmp_path / "grp", own=True, group="1")
    assert (os.stat(tmp_path / "www").st_uid, os.stat(tmp_path / "grp").st_gid) == (1, 1)
    assert os.stat(tmp_path / "grp").st_uid == 0
