"""What the transports ask before they write: temporary names and their leftovers, owner
names, the read-back, and whether a directory on the way may be written through
(``deploy/__init__.py``, ``deploy/dircheck.py``). Pure functions, so each rule and each
message is checked on its own; tests/integration/test_deploy_local_dirs.py shows the same
rules on real directories.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from certfleet.deploy import (
    _HOST_TAG,
    LEFTOVER_AGE,
    TMP_PREFIX,
    DeployFile,
    check_owner,
    is_leftover,
    temp_name,
    verify_copy,
)
from certfleet.deploy.dircheck import Seen, Trust, kind, prefixes, problem
from certfleet.errors import DeployError

HINT = "(trust_target_dir = true accepts it)"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_temporary_name_says_who_wrote_it_and_for_which_file() -> None:
    first, second = temp_name("privkey.pem"), temp_name("privkey.pem")
    assert first != second
    assert first.startswith(f"{TMP_PREFIX}{_HOST_TAG}-{os.getpid()}-")
    assert first.endswith("-privkey.pem")
    assert not is_leftover(first, LEFTOVER_AGE * 10)   # this live process is writing it


def test_leftovers_of_this_host_go_when_their_process_is_gone() -> None:
    dead = _dead_pid()
    assert is_leftover(f"{TMP_PREFIX}{_HOST_TAG}-{dead}-0a1b2c3d4e5f-cert.pem", 0.0)
    live = f"{TMP_PREFIX}{_HOST_TAG}-{os.getpid()}-0a1b2c3d4e5f-cert.pem"
    assert not is_leftover(live, LEFTOVER_AGE * 10)


def test_leftovers_of_other_hosts_go_after_a_day() -> None:
    other = f"{TMP_PREFIX}0000zzzz-{os.getpid()}-0a1b2c3d4e5f-cert.pem"
    assert not is_leftover(other, LEFTOVER_AGE)
    assert is_leftover(other, LEFTOVER_AGE + 0.5)
    odd = f"{TMP_PREFIX}{_HOST_TAG}-nopid-cert.pem"   # not what this host writes: by age
    assert not is_leftover(odd, 1.0)
    assert is_leftover(odd, LEFTOVER_AGE + 0.5)


def test_other_files_are_never_leftovers() -> None:
    dead = _dead_pid()
    for name in ("cert.pem", f"x{TMP_PREFIX}{_HOST_TAG}-{dead}-0a-cert.pem", ".certfleet-tm"):
        assert not is_leftover(name, LEFTOVER_AGE * 10)


@pytest.mark.parametrize("value", ["www-data", "_svc", "a.b-c_d9", "a" * 32, "0", "1234567890"])
def test_owner_and_group_names_and_numbers_are_accepted(value: str) -> None:
    check_owner(value, value, "/srv/tls")
    check_owner(None, None, "/srv/tls")


@pytest.mark.parametrize("value", ["-oops", "a" * 33, "12345678901", "a b", "x;id", "9abc",
                                   ""])
def test_anything_else_is_refused_as_owner_or_group(value: str) -> None:
    with pytest.raises(DeployError) as owner:
        check_owner(value, None, "/srv/tls")
    assert str(owner.value) == f"/srv/tls: invalid owner or group {value!r}"
    with pytest.raises(DeployError) as group:
        check_owner("root", value, "/srv/tls")
    assert str(group.value) == f"/srv/tls: invalid owner or group {value!r}"


def test_the_read_back_must_match_byte_for_byte() -> None:
    item = DeployFile("cert.pem", b"abcd", 0o644)
    verify_copy(item, b"abcd", "/srv/tls/cert.pem")
    for got in (b"abce", b"abc", b"abcde"):
        with pytest.raises(DeployError) as caught:
            verify_copy(item, got, "/srv/tls/cert.pem")
        assert str(caught.value) == (
            f"/srv/tls/cert.pem: verification failed for cert.pem: wrote 4 bytes, read back "
            f"{len(got)} bytes with a different hash")


def test_prefixes_are_each_directory_on_the_way_once() -> None:
    assert prefixes("/") == ["/"]
    assert prefixes("/srv") == ["/", "/srv"]
    assert prefixes("/srv//tls/") == ["/", "/srv", "/srv/tls"]


@pytest.mark.parametrize(("mode", "name"), [
    (stat.S_IFLNK, "a symlink"), (stat.S_IFDIR, "a directory"), (stat.S_IFIFO, "a FIFO"),
    (stat.S_IFCHR, "a character device"), (stat.S_IFBLK, "a block device"),
    (stat.S_IFSOCK, "a socket"), (stat.S_IFREG, "a regular file"), (0, "a special file"),
])
def test_each_file_type_has_its_name(mode: int, name: str) -> None:
    assert kind(mode | 0o644) == name


TRUST = Trust(frozenset({0, 1000}), gid=50)


def _dir(mode: int, uid: int = 0, gid: int = 0, path: str = "/srv/tls") -> Seen:
    return Seen(path, stat.S_IFDIR | mode, uid, gid)


def test_a_directory_of_a_trusted_owner_that_only_it_writes_passes() -> None:
    for uid in (0, 1000):
        assert problem(_dir(0o755, uid), TRUST, last=True) is None
        assert problem(_dir(0o700, uid), TRUST, last=False) is None


def test_links_and_non_directories_are_refused() -> None:
    link = Seen("/srv/tls", stat.S_IFLNK | 0o777, 0, 0)
    assert problem(link, TRUST, last=False) == (
        f"/srv/tls is a symlink: target directories are not reached through links {HINT}")
    fifo = Seen("/srv/tls", stat.S_IFIFO | 0o644, 0, 0)
    assert problem(fifo, TRUST, last=True) == "/srv/tls is a FIFO, not a directory"


def test_an_untrusted_owner_is_refused() -> None:
    assert problem(_dir(0o755, uid=1001), TRUST, last=True) == (
        "/srv/tls is owned by uid 1001, not by root, the login user or the host's owner, "
        f"who could swap the files {HINT}")


def test_writable_by_others_is_refused_unless_sticky_on_the_way() -> None:
    refused = f"/srv/tls is writable by others (mode 0777) {HINT}"
    assert problem(_dir(0o777), TRUST, last=False) == refused
    assert problem(_dir(0o777), TRUST, last=True) == refused
    assert problem(_dir(0o1777), TRUST, last=False) is None
    assert problem(_dir(0o1777), TRUST, last=True) == (
        f"/srv/tls is writable by others (mode 1777) {HINT}")
    assert problem(_dir(0o1755), TRUST, last=True) is None


def test_writable_by_a_group_only_when_it_is_the_hosts_group_or_allowed() -> None:
    refused = ("/srv/tls is writable by its group 60 (mode 0775), not the host's group "
               "(allow_group_writable = true accepts it)")
    assert problem(_dir(0o775, gid=60), TRUST, last=True) == refused
    assert problem(_dir(0o775, gid=60), TRUST, last=False) == refused
    assert problem(_dir(0o775, gid=50), TRUST, last=True) is None
    allowed = Trust(TRUST.uids, gid=50, any_group=True)
    assert problem(_dir(0o775, gid=60), allowed, last=True) is None
    assert problem(_dir(0o1775, gid=60), TRUST, last=False) is None   # sticky on the way
    assert problem(_dir(0o1775, gid=60), TRUST, last=True) == refused.replace("0775", "1775")
