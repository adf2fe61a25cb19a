"""``dircheck.swappable``, the SFTP rule for the directories on the way to a target's files,
decided on ``lstat`` values alone: who may swap an entry for a link between two requests."""

from __future__ import annotations

import stat

from certfleet.deploy.dircheck import SETTING_HINT, Seen, Trust, swappable

LOGIN, OWNER, STRANGER, GROUP = 1000, 2000, 4000, 3000
TRUST = Trust(frozenset({0, LOGIN, OWNER}), gid=GROUP, steady=frozenset({0, LOGIN}))


def _dir(mode: int, uid: int = 0, gid: int = 0) -> Seen:
    return Seen("/srv/tls", stat.S_IFDIR | mode, uid, gid)


def test_a_parent_of_the_hosts_owner_is_named_as_such() -> None:
    assert swappable(_dir(0o755, OWNER), "/srv/tls/a.example", None, TRUST) == (
        f"/srv/tls is owned by uid {OWNER} (the host's owner), not by root or the login "
        f"user, who could swap a.example in it for a link between two SFTP requests "
        f"({SETTING_HINT})")


def test_a_parent_of_anyone_else_is_not_called_the_hosts_owner() -> None:
    assert swappable(_dir(0o755, STRANGER), "/srv/tls/a.example", None, TRUST) == (
        f"/srv/tls is owned by uid {STRANGER}, not by root or the login user, who could swap "
        f"a.example in it for a link between two SFTP requests ({SETTING_HINT})")


def test_root_s_and_the_login_user_s_directories_hold_the_way() -> None:
    for uid in (0, LOGIN):
        assert swappable(_dir(0o755, uid), "/srv/tls/a.example", OWNER, TRUST) is None


def test_a_sticky_directory_only_its_owner_may_write_holds_anyone_s_entry() -> None:
    """Sticky without group or others' write bits: nobody but its (steady) owner renames in
    it, so the entry's owner does not matter."""
    assert swappable(_dir(0o1755), "/srv/tls/a.example", STRANGER, TRUST) is None


def test_a_sticky_directory_others_may_write_needs_a_steady_entry() -> None:
    assert swappable(_dir(0o1777), "/srv/tls/a.example", LOGIN, TRUST) is None
    assert swappable(_dir(0o1777), "/srv/tls/a.example", None, TRUST) is None  # not made yet
    assert swappable(_dir(0o1777), "/srv/tls/a.example", STRANGER, TRUST) == (
        f"/srv/tls/a.example is owned by uid {STRANGER}, not by root or the login user, who "
        f"could swap it for a link in /srv/tls (mode 1777) between two SFTP requests "
        f"({SETTING_HINT})")
