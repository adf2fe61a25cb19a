"""A target over SFTP (``deploy/sftp_files.py`` through ``SshTransport.install``), against an
SSH server in the test's own process (``sshlab``): the directory checks, the certificate's
own directory, the temporary files, verification, the renames, the sweep of leftovers, and
what another user on the host can do between two requests.

The same promises are checked against OpenSSH's sshd in ``integration/test_deploy_ssh.py``
and ``faults/test_hostile_targets.py``; these run in milliseconds, so that ``make mutate``
can run them for every mutant of the module.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest

from certfleet.deploy import _HOST_TAG, TMP_PREFIX, DeployFile, sftp_files
from certfleet.errors import DeployError
from certfleet.layout import Placement
from certfleet.spec import HostSettings
from tests.conftest import need_root

from .sshlab import Remote, lab

T = TypeVar("T")
FILES = (DeployFile("site.crt", b"certificate\n", 0o644),
         DeployFile("site.key", b"private key\n", 0o600))
NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid




async def _install(remote: Remote, directory: str, *, own: bool = False,
                   files: tuple[DeployFile, ...] = FILES, times: int = 1,
                   **settings: Any) -> None:
    where = Placement(directory, tuple((f.name, f.name) for f in files), own)
    async with remote.transport(**settings) as transport:
        for _ in range(times):
            await transport.install(where, files, HostSettings(**settings))


async def _refused(remote: Remote, directory: str, **kwargs: Any) -> str:
    with pytest.raises(DeployError) as caught:
        await _install(remote, directory, **kwargs)
    return str(caught.value)


def _dir(remote: Remote, path: str, mode: int = 0o755) -> Path:
    local = remote.at(path)
    local.mkdir(parents=True)
    local.chmod(mode)
    return local


def _listing(local: Path) -> list[str]:
    return sorted(os.listdir(local))


def test_files_are_written_with_their_modes_and_replaced(tmp_path: Path) -> None:
    created: dict[str, int] = {}

    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv/tls")
        (local / "site.crt").write_text("old\n")
        # The mode a file has the moment it exists: a key is never readable by others,
        # not even before its mode is set through the handle.
        remote.hooks["open"] = lambda path: created.setdefault(
            path.rpartition("-")[2], stat.S_IMODE(remote.at(path).stat().st_mode))
        await _install(remote, "/srv/tls", times=2)
        assert _listing(local) == ["site.crt", "site.key"]
        assert (local / "site.crt").read_bytes() == b"certificate\n"
        assert (local / "site.key").read_bytes() == b"private key\n"
        assert stat.S_IMODE((local / "site.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((local / "site.crt").stat().st_mode) == 0o644
        assert remote.sessions == 1  # one SFTP session for the whole connection
        assert remote.commands == ["id -u"]  # the login user's uid, asked once
        renamed = [path for op, path in remote.asked if op == "rename"]
        assert renamed == ["/srv/tls/site.crt", "/srv/tls/site.key"] * 2
    lab(tmp_path, body)
    assert created == {"site.crt": 0o644, "site.key": 0o600}


def test_every_directory_on_the_way_is_looked_at_without_following(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/srv/tls")
        await _install(remote, "/srv/tls")
        looked = [path for op, path in remote.asked if op in ("lstat", "stat")]
        assert looked[:3] == ["/", "/srv", "/srv/tls"]
        assert all(op != "stat" for op, _ in remote.asked)
    lab(tmp_path, body)


def test_owner_and_group_by_name_are_asked_once_and_set_through_the_handle(
        tmp_path: Path) -> None:
    need_root("chown to another user")

    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv/tls")
        await _install(remote, "/srv/tls", times=2, owner="nobody", group="nogroup")
        for name in ("site.crt", "site.key"):
            info = (local / name).stat()
            assert (info.st_uid, info.st_gid) == (NOBODY, NOGROUP)
        assert stat.S_IMODE((local / "site.key").stat().st_mode) == 0o600
        assert sorted(remote.commands) == ["getent group -- nogroup", "id -u",
                                           "id -u -- nobody"]
        assert not [1 for op, path in remote.asked if op in ("setstat", "lsetstat")]
    lab(tmp_path, body)


@pytest.mark.parametrize(("owner", "group", "ids"), [
    ("65534", None, (NOBODY, 0)), (None, "65534", (0, 65534)), ("nobody", None, (NOBODY, 0)),
    (None, "nogroup", (0, NOGROUP))])
def test_owner_or_group_alone(tmp_path: Path, owner: str | None, group: str | None,
                              ids: tuple[int, int]) -> None:
    need_root("chown to another user")

    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        await _install(remote, "/srv", owner=owner, group=group)
        info = (local / "site.key").stat()
        assert (info.st_uid, info.st_gid) == ids
        asked = [c for c in remote.commands if c != "id -u"]
        assert asked == [] if (owner or group or "").isdigit() else len(asked) == 1
    lab(tmp_path, body)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/srv")
        assert await _refused(remote, "/srv/tls") == \
            "deployer@127.0.0.1:/srv/tls: target directory missing"
        assert await _refused(remote, "/opt/tls") == \
            "deployer@127.0.0.1:/opt/tls: target directory missing (/opt)"
        assert await _refused(remote, "/opt/tls", trust_target_dir=True) == \
            "deployer@127.0.0.1:/opt/tls: target directory missing"
    lab(tmp_path, body)


def test_what_the_directory_checks_refuse_and_accept(tmp_path: Path) -> None:
    need_root("chown to another user")

    async def body(remote: Remote) -> None:
        _dir(remote, "/real")
        _dir(remote, "/data")
        remote.at("/link").symlink_to("real")
        assert "refused: /link is a symlink" in await _refused(remote, "/link")
        await _install(remote, "/link", trust_target_dir=True)
        assert _listing(remote.at("/real")) == ["site.crt", "site.key"]

        os.chown(remote.at("/data"), NOBODY, 0)
        assert "refused: /data is owned by uid 65534" in await _refused(remote, "/data")
        await _install(remote, "/data", owner="nobody")

        shared = _dir(remote, "/shared", 0o775)
        os.chown(shared, 0, NOGROUP)
        assert f"writable by its group {NOGROUP}" in await _refused(remote, "/shared")
        await _install(remote, "/shared", group="nogroup")
        await _install(remote, "/shared", allow_group_writable=True)
        _dir(remote, "/open", 0o777)
        assert "/open is writable by others" in await _refused(remote, "/open")
    lab(tmp_path, body)


def test_an_owner_the_server_does_not_report_is_nobody(tmp_path: Path) -> None:
    assert sftp_files._seen("/a", asyncssh.SFTPAttrs(permissions=0o40755)) == \
        sftp_files.Seen("/a", 0o40755, -1, -1)
    assert sftp_files._seen("/a", asyncssh.SFTPAttrs(uid=0, gid=5)).uid == 0
    assert sftp_files._seen("/a", asyncssh.SFTPAttrs(uid=0, gid=5)).gid == 5
    assert sftp_files._seen("/a", asyncssh.SFTPAttrs()).mode == 0


def test_own_directory_is_made_with_its_mode_and_owner(tmp_path: Path) -> None:
    need_root("chown to another user")

    async def body(remote: Remote) -> None:
        _dir(remote, "/tls")
        old = os.umask(0o077)  # the server's umask narrows the mode mkdir asks for
        try:
            await _install(remote, "/tls/www", own=True, dir_mode=0o750, owner="nobody")
            await _install(remote, "/tls/www", own=True, dir_mode=0o750, owner="nobody")
        finally:
            os.umask(old)
        info = remote.at("/tls/www").stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o750, NOBODY, 0)
        assert _listing(remote.at("/tls/www")) == ["site.crt", "site.key"]
        assert [op for op, _ in remote.asked].count("mkdir") == 1
        assert [op for op, _ in remote.asked].count("lsetstat") == 1
    lab(tmp_path, body)


def test_own_directory_made_as_asked_needs_no_fix(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/tls")
        old = os.umask(0o022)
        try:
            await _install(remote, "/tls/www", own=True, dir_mode=0o755)
        finally:
            os.umask(old)
        assert "lsetstat" not in [op for op, _ in remote.asked]
        assert stat.S_IMODE(remote.at("/tls/www").stat().st_mode) == 0o755
    lab(tmp_path, body)


def test_dir_fix_says_what_a_new_directory_still_needs() -> None:
    made = asyncssh.SFTPAttrs(permissions=0o40700, uid=0, gid=0)
    fix = sftp_files._dir_fix
    assert fix(None, 0o755, sftp_files.Ids()) is None
    assert fix(made, 0o700, sftp_files.Ids()) is None
    assert fix(made, 0o700, sftp_files.Ids(0, 0)) is None
    only_mode = fix(made, 0o755, sftp_files.Ids())
    assert only_mode is not None
    assert (only_mode.permissions, only_mode.uid, only_mode.gid) == (0o755, None, None)
    owner = fix(made, 0o700, sftp_files.Ids(uid=7))
    assert owner is not None
    assert (owner.permissions, owner.uid, owner.gid) == (None, 7, 0)
    group = fix(made, 0o700, sftp_files.Ids(gid=9))
    assert group is not None
    assert (group.permissions, group.uid, group.gid) == (None, 0, 9)


def test_own_directory_that_is_not_a_directory(tmp_path: Path) -> None:
    need_root("chown to another user")

    async def body(remote: Remote) -> None:
        _dir(remote, "/tls")
        victim = _dir(remote, "/victim", 0o700)
        remote.at("/tls/www").symlink_to("/victim")
        assert await _refused(remote, "/tls/www", own=True, trust_target_dir=True) == \
            "deployer@127.0.0.1:/tls/www: refused: the certificate's own directory is a " \
            "symlink, not a directory; certfleet never follows it"
        assert _listing(victim) == []
        theirs = _dir(remote, "/tls/theirs")
        os.chown(theirs, NOBODY, 0)
        assert "refused: /tls/theirs is owned by uid 65534" in \
            await _refused(remote, "/tls/theirs", own=True)
        await _install(remote, "/tls/theirs", own=True, trust_target_dir=True)
    lab(tmp_path, body)


def test_a_new_directory_swapped_for_a_link_is_never_followed(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/tls")
        victim = _dir(remote, "/victim", 0o700)

        def swap(path: str) -> None:
            remote.at(path).rmdir()
            remote.at(path).symlink_to("/victim")
        remote.hooks["mkdir"] = swap
        message = await _refused(remote, "/tls/www", own=True, dir_mode=0o755)
        assert message.startswith("deployer@127.0.0.1:/tls/www: refused: the certificate's "
                                  "own directory is a symlink"), message
        assert stat.S_IMODE(victim.stat().st_mode) == 0o700
        assert _listing(victim) == []

        remote.hooks["mkdir"] = lambda path: remote.at(path).rmdir()
        assert await _refused(remote, "/tls/new", own=True) == \
            "deployer@127.0.0.1:/tls/new: the directory vanished while being made"
    lab(tmp_path, body)


def test_a_server_without_lsetstat(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/tls")
        remote.refuse["lsetstat"] = asyncssh.SFTPOpUnsupported("no lsetstat")
        assert await _refused(remote, "/tls/www", own=True, dir_mode=0o775) == \
            "deployer@127.0.0.1:/tls/www: the SFTP server cannot set a directory's mode or " \
            "owner without following links (lsetstat, OpenSSH 8.0+): make this directory " \
            "by hand"
        remote.refuse["lsetstat"] = asyncssh.SFTPPermissionDenied("not yours")
        assert await _refused(remote, "/tls/www2", own=True, dir_mode=0o775) == \
            "deployer@127.0.0.1:/tls/www2: not yours"
    lab(tmp_path, body)


def test_leftovers_of_dead_deploys_are_swept(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        victim = _dir(remote, "/victim")
        (victim / "keep").write_text("x")
        dead = f"{TMP_PREFIX}{_HOST_TAG}-{2**22 + 7}-000000000000-site.key"
        alive = f"{TMP_PREFIX}{_HOST_TAG}-{os.getpid()}-000000000000-site.key"
        stale = f"{TMP_PREFIX}elsewhere-1-000000000000-site.key"
        fresh = f"{TMP_PREFIX}elsewhere-2-000000000000-site.key"
        for name in (dead, alive, stale, fresh, "other-file"):
            (local / name).write_text("left")
        day_ago = time.time() - 2 * 86400
        os.utime(local / stale, (day_ago, day_ago))
        (local / f"{TMP_PREFIX}{_HOST_TAG}-{2**22 + 9}-0-link").symlink_to("/victim")
        await _install(remote, "/srv")
        assert _listing(local) == sorted([alive, fresh, "other-file", "site.crt", "site.key"])
        assert _listing(victim) == ["keep"]
    lab(tmp_path, body)


def test_a_leftover_that_cannot_be_removed_does_not_fail_the_target(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        (local / f"{TMP_PREFIX}{_HOST_TAG}-{2**22 + 7}-0-x").write_text("left")
        remote.refuse["remove"] = asyncssh.SFTPPermissionDenied("no")
        await _install(remote, "/srv")
        assert (local / "site.key").exists()
    lab(tmp_path, body)


@pytest.mark.parametrize("plant", ["symlink", "fifo", "directory"])
def test_a_final_name_that_is_not_a_regular_file_is_left_alone(tmp_path: Path,
                                                               plant: str) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        victim = _dir(remote, "/victim")
        (victim / "secret").write_text("x")
        planted = local / "site.key"
        if plant == "symlink":
            planted.symlink_to("/victim/secret")
        elif plant == "fifo":
            os.mkfifo(planted)
        else:
            planted.mkdir()
        kind = {"symlink": "a symlink", "fifo": "a FIFO", "directory": "a directory"}[plant]
        assert await _refused(remote, "/srv") == \
            f"deployer@127.0.0.1:/srv: refused: site.key is {kind}, not a regular file; " \
            "certfleet does not replace it"
        assert _listing(local) == ["site.key"]  # nothing renamed, no temporary file left
        assert (victim / "secret").read_text() == "x"
    lab(tmp_path, body)


def test_a_temporary_file_swapped_before_its_rename(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        (local / "site.crt").write_text("previous\n")
        # While the second file is written, the first one's temporary name is removed.
        remote.hooks["fstat"] = lambda path: [
            p.unlink() for p in local.glob(f"{TMP_PREFIX}*site.crt") if "site.key" in path]
        message = await _refused(remote, "/srv")
        assert message == "deployer@127.0.0.1:/srv: site.crt was swapped during the deploy: " \
            "its temporary file is now gone (someone else can write this directory)"
        assert _listing(local) == ["site.crt"]
        assert (local / "site.crt").read_text() == "previous\n"
    lab(tmp_path, body)


def test_a_rename_the_server_refuses(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        (local / "site.crt").write_text("previous\n")
        remote.refuse["rename"] = asyncssh.SFTPPermissionDenied("read-only \x1b[2J")
        assert await _refused(remote, "/srv") == \
            r"deployer@127.0.0.1:/srv: read-only \x1b[2J"
        assert _listing(local) == ["site.crt"]
        assert (local / "site.crt").read_text() == "previous\n"
    lab(tmp_path, body)


@pytest.mark.parametrize(("swap", "said"), [
    ("link", "site.crt was swapped during the deploy: it is now a symlink (someone else can "
             "write this directory)"),
    ("other", "site.crt was swapped during the deploy: it is not the file written (someone "
              "else can write this directory)"),
    ("mode", "site.crt was swapped during the deploy: it is not the file written"),
    ("gone", "site.crt vanished right after it was put in place"),
])
def test_a_file_swapped_right_after_its_rename(tmp_path: Path, swap: str, said: str) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")

        def act(path: str) -> None:
            final = remote.at(path)
            if not path.endswith("site.crt"):
                return
            if swap == "mode":
                final.chmod(0o666)
                return
            final.unlink()
            if swap == "link":
                final.symlink_to("/etc/hostname")
            elif swap == "other":
                final.write_text("not certfleet's, longer\n")
        remote.hooks["rename"] = act
        message = await _refused(remote, "/srv")
        assert message.startswith(f"deployer@127.0.0.1:/srv: {said}"), message
        assert not [n for n in _listing(local) if n.startswith(TMP_PREFIX)]
    lab(tmp_path, body)


def test_the_directory_replaced_during_the_deploy(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv/tls")

        def replace(path: str) -> None:
            if path.endswith("site.key"):  # the last rename: put a look-alike in its place
                local.rename(remote.at("/srv/moved"))
                shutil.copytree(remote.at("/srv/moved"), local, copy_function=shutil.copy2)
                local.chmod(0o711)
        remote.hooks["rename"] = replace
        assert await _refused(remote, "/srv/tls") == \
            "deployer@127.0.0.1:/srv/tls: the directory was replaced during the deploy"
        _dir(remote, "/srv/own")
        remote.hooks["rename"] = lambda path: remote.at("/srv/own/www").chmod(0o700) \
            if path.endswith("site.key") else None
        assert await _refused(remote, "/srv/own/www", own=True) == \
            "deployer@127.0.0.1:/srv/own/www: the directory was replaced during the deploy"
    lab(tmp_path, body)


@pytest.mark.parametrize(("change", "said"), [
    ("content", "verification failed for site.key: wrote 12 bytes, read back 5 bytes"),
    ("mode", "the file written has mode 0666, not what was set"),
    ("owner", "the file written has owner 0, not what was set"),
    ("group", "the file written has group 0, not what was set"),
])
def test_what_is_read_back_through_the_handle_is_checked(tmp_path: Path, change: str,
                                                         said: str) -> None:
    need_root("chown to another user")

    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")

        def tamper(path: str) -> None:
            if not path.endswith("site.key"):
                return
            at = remote.at(path)
            if change == "content":
                at.write_bytes(b"short")
            elif change == "mode":
                at.chmod(0o666)
            else:
                os.chown(at, 0 if change == "owner" else -1, 0 if change == "group" else -1)
        remote.hooks["write"] = tamper
        message = await _refused(remote, "/srv", owner="nobody", group="nogroup")
        assert message.startswith("deployer@127.0.0.1:/srv/site.key: "), message
        assert said in message, message
        assert _listing(local) == []
    lab(tmp_path, body)


def test_a_request_left_unanswered_is_bounded_and_the_session_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sftp_files, "OP_TIMEOUT", 0.3)

    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        where = Placement("/srv", tuple((f.name, f.name) for f in FILES), False)
        async with remote.transport() as transport:
            remote.stall.add("write")
            with pytest.raises(DeployError) as caught:
                await transport.install(where, FILES, HostSettings())
            assert str(caught.value) == "deployer@127.0.0.1:/srv/site.crt: no answer from " \
                "the SFTP server within 0.3 s"
            assert "close" not in [op for op, _ in remote.asked]  # nothing more asked
            remote.stall.clear()
            await transport.install(where, FILES, HostSettings())
        assert remote.sessions == 2
        assert (local / "site.key").read_bytes() == b"private key\n"

        remote.stall.add("lstat")
        assert await _refused(remote, "/srv") == \
            "deployer@127.0.0.1:/: no answer from the SFTP server within 0.3 s"
    lab(tmp_path, body)


@pytest.mark.parametrize(("vfs", "said"), [
    ((1, 4096, 100), " (No space left on device: 4096 bytes free, 8192 needed)"),
    ((2, 4096, 1), " (No space left on device: 1 inodes free, 2 needed)"),
    ((2, 4096, 2), ""),
    ((1, 1, 100), " (No space left on device: 1 bytes free, 24 needed)"),
    ((100, 4096, 0), " (No space left on device: 0 inodes free, 2 needed)"),
    (None, ""),
])
def test_a_full_disk_is_named(tmp_path: Path, vfs: tuple[int, int, int] | None,
                              said: str) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/srv")
        remote.refuse["write"] = asyncssh.SFTPFailure("Failure")
        remote.vfs = vfs
        if vfs is None:
            remote.refuse["statvfs"] = asyncssh.SFTPOpUnsupported("no statvfs")
        assert await _refused(remote, "/srv") == f"deployer@127.0.0.1:/srv: Failure{said}"
    lab(tmp_path, body)


def test_an_sftp_error_without_a_reason_is_named_by_its_kind(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/srv")
        remote.refuse["open"] = asyncssh.SFTPPermissionDenied("")
        assert await _refused(remote, "/srv") == \
            "deployer@127.0.0.1:/srv: SFTPPermissionDenied"
    lab(tmp_path, body)


@pytest.mark.parametrize(("op", "own", "said"), [
    ("stat", False, "/srv: "),            # isdir, when the directories are trusted
    ("readdir", False, "/srv: "),
    ("open", False, "/srv/.certfleet-tmp-*-site.crt: "),
    ("fstat", False, "/srv/site.crt: "),  # before the owner is set
    ("fsetstat", False, "/srv/site.crt: "),
    ("fstat", None, "/srv/site.crt: "),   # no owner: after it is read back
    ("fsetstat", None, "/srv/site.crt: "),
    ("write", False, "/srv/site.crt: "),
    ("fsync", False, "/srv/site.crt: "),
    ("read", False, "/srv/site.crt: "),
    ("rename", False, "/srv/site.crt: "),
    ("remove", False, "/srv/.certfleet-tmp-*-left: "),
    ("mkdir", True, "/srv/www: "),
    ("lsetstat", True, "/srv/www: "),
])
def test_every_request_is_bounded_and_names_its_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str, own: bool | None,
        said: str) -> None:
    monkeypatch.setattr(sftp_files, "OP_TIMEOUT", 0.2)

    async def body(remote: Remote) -> str:
        local = _dir(remote, "/srv")
        (local / f"{TMP_PREFIX}{_HOST_TAG}-{2**22 + 7}-0-left").write_text("left")
        remote.stall.add(op)
        owner = None if own is None else "0"
        said = await _refused(remote, "/srv/www" if own else "/srv", own=bool(own),
                              owner=owner, dir_mode=0o775, trust_target_dir=op == "stat")
        # Given up on at the bound, not waited for: a request whose clean-up waits on the
        # server (readdir closes its handle) once held the deploy until the server answered.
        assert remote.late == []
        return said
    message = lab(tmp_path, body)
    pattern = re.escape(f"deployer@127.0.0.1:{said}").replace(r"\*", ".*")
    assert re.fullmatch(f"{pattern}no answer from the SFTP server within 0.2 s", message), \
        message


def test_requests_left_unanswered_after_the_files_are_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A close that never ends costs its bound only; a statvfs asked to explain a failure
    that never ends leaves the failure unexplained."""
    monkeypatch.setattr(sftp_files, "OP_TIMEOUT", 0.2)

    async def body(remote: Remote) -> str:
        local = _dir(remote, "/srv")
        remote.stall.add("close")
        await _install(remote, "/srv")
        assert (local / "site.key").read_bytes() == b"private key\n"
        assert [op for op, _ in remote.asked].count("close") == 1  # then the session is left
        remote.stall = {"statvfs"}
        remote.refuse["write"] = asyncssh.SFTPFailure("Failure")
        return await _refused(remote, "/srv")
    assert lab(tmp_path, body) == "deployer@127.0.0.1:/srv: Failure"


def test_what_fails_while_cleaning_up_never_hides_why_the_target_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        remote.refuse["close"] = asyncssh.SFTPFailure("cannot close")
        await _install(remote, "/srv")  # the files were in place: closing is no failure
        remote.refuse = {"write": asyncssh.SFTPPermissionDenied("no writing"),
                         "remove": asyncssh.SFTPPermissionDenied("no removing")}
        assert await _refused(remote, "/srv") == "deployer@127.0.0.1:/srv: no writing"
        assert len([n for n in _listing(local) if n.startswith(TMP_PREFIX)]) == 1

        async def reset(self: sftp_files.Sftp, handle: Any, what: str) -> None:
            raise ConnectionResetError(104, "reset")
        monkeypatch.setattr(sftp_files.Sftp, "close", reset)
        remote.refuse = {"rename": asyncssh.SFTPPermissionDenied("no renaming")}
        assert await _refused(remote, "/srv") == "deployer@127.0.0.1:/srv: no renaming"

        async def gone(self: sftp_files.Sftp, path: str) -> None:
            raise BrokenPipeError(32, "gone")
        monkeypatch.setattr(sftp_files.Sftp, "remove", gone)
        assert await _refused(remote, "/srv") == "deployer@127.0.0.1:/srv: no renaming"
        monkeypatch.undo()
        monkeypatch.setattr(sftp_files, "OP_TIMEOUT", 0.2)
        remote.refuse = {"write": asyncssh.SFTPPermissionDenied("no writing")}
        remote.stall = {"remove"}
        (local / f"{TMP_PREFIX}elsewhere-1-0-x").write_text("fresh: not swept")
        assert await _refused(remote, "/srv") == "deployer@127.0.0.1:/srv: no writing"
    lab(tmp_path, body)


def test_a_successful_deploy_removes_nothing(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/srv")
        await _install(remote, "/srv")
        assert "remove" not in [op for op, _ in remote.asked]
    lab(tmp_path, body)


def test_a_server_without_fsync(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        local = _dir(remote, "/srv")
        remote.refuse["fsync"] = asyncssh.SFTPOpUnsupported("no fsync")
        await _install(remote, "/srv")
        assert (local / "site.key").read_bytes() == b"private key\n"
        assert ("fsync", "/srv/site.key") not in remote.asked  # asked through the handle
        assert [op for op, _ in remote.asked].count("fsync") == 2
    lab(tmp_path, body)


def test_a_server_that_says_the_file_it_created_is_no_regular_file(tmp_path: Path) -> None:
    def fifo(result: Any) -> asyncssh.SFTPAttrs:
        attrs = asyncssh.SFTPAttrs.from_local(result)
        attrs.permissions = stat.S_IFIFO | 0o644
        return attrs

    async def body(remote: Remote) -> str:
        _dir(remote, "/srv")
        remote.rewrite["fstat"] = fifo
        return await _refused(remote, "/srv")
    assert lab(tmp_path, body) == \
        "deployer@127.0.0.1:/srv/site.crt: the file written is a FIFO, not a regular file"


def test_a_temporary_file_swapped_for_a_directory(tmp_path: Path) -> None:
    async def body(remote: Remote) -> str:
        local = _dir(remote, "/srv")
        (local / "site.crt").write_text("previous\n")

        def swap(path: str) -> None:
            if path.endswith("site.key"):
                for temp in local.glob(f"{TMP_PREFIX}*site.crt"):
                    temp.unlink()
                    (temp / "x").mkdir(parents=True)
        remote.hooks["fstat"] = swap
        return await _refused(remote, "/srv")
    message = lab(tmp_path, body)
    assert message.startswith("deployer@127.0.0.1:/srv: site.crt was swapped during the "
                              "deploy: its temporary file is now a directory"), message


def test_sticky_directories_on_the_way_but_not_as_the_target(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/scratch", 0o1777)
        _dir(remote, "/scratch/tls")
        await _install(remote, "/scratch/tls")
        assert "/scratch is writable by others" in await _refused(remote, "/scratch")
        _dir(remote, "/own")
        _dir(remote, "/own/www", 0o1777)
        assert "/own/www is writable by others" in await _refused(remote, "/own/www",
                                                                   own=True)
    lab(tmp_path, body)


def test_own_directory_checks_the_directory_above_it(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _dir(remote, "/open", 0o777)
        assert "refused: /open is writable by others" in \
            await _refused(remote, "/open/www", own=True)
        assert not remote.at("/open/www").exists()
        await _install(remote, "/www", own=True)  # right under /
        assert _listing(remote.at("/www")) == ["site.crt", "site.key"]
    lab(tmp_path, body)


def test_a_new_directory_never_has_more_than_its_mode(tmp_path: Path) -> None:
    made: list[int] = []

    async def body(remote: Remote) -> None:
        _dir(remote, "/tls")
        remote.hooks["mkdir"] = lambda path: made.append(
            stat.S_IMODE(remote.at(path).stat().st_mode))
        old = os.umask(0o022)
        try:
            await _install(remote, "/tls/www", own=True, dir_mode=0o750)
        finally:
            os.umask(old)
    lab(tmp_path, body)
    assert made == [0o750]


def test_a_new_directory_swapped_before_its_mode_is_set(tmp_path: Path) -> None:
    async def body(remote: Remote) -> str:
        _dir(remote, "/tls")
        victim = _dir(remote, "/victim", 0o700)

        def swap(path: str) -> None:
            if path == "/tls/www" and remote.at(path).is_dir() \
                    and not remote.at(path).is_symlink():
                remote.at(path).rmdir()
                remote.at(path).symlink_to("/victim")
        remote.hooks["lstat"] = swap
        message = await _refused(remote, "/tls/www", own=True, dir_mode=0o775)
        assert stat.S_IMODE(victim.stat().st_mode) == 0o700
        return message
    assert lab(tmp_path, body) == \
        "deployer@127.0.0.1:/tls/www: refused: the certificate's own directory is a " \
        "symlink, not a directory; certfleet never follows it"
