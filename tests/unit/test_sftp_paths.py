"""Over SFTP, who may change the path to the directory the files go into
(``dircheck.swappable``, through ``SshTransport.install``), against the in-process SSH
server (``sshlab``).

SFTP has no ``openat``: each request resolves its path anew, so anyone other than root or
the login user who could change an entry on the way could swap it for a link between two
requests, and send root's files into a directory of their choosing. Refused: a directory
on the way owned by the host's ``owner``, or writable by the host's ``group``; the
directory the files go into owned by another user in a sticky directory others may write.
Accepted: all of those owned by root or the login user, the directory the files go into
owned by the host's ``owner`` or writable by its ``group`` (what is planted in it meets the
care each file gets), and a group-writable directory with ``allow_group_writable``. The
same with OpenSSH: ``faults/test_hostile_sftp_paths.py``.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path
from typing import Any

import pytest

from certfleet.deploy import DeployFile
from certfleet.errors import DeployError
from certfleet.layout import Placement
from certfleet.spec import HostSettings
from tests.conftest import need_root

from .sshlab import Remote, lab

FILES = (DeployFile("site.crt", b"certificate\n", 0o644),
         DeployFile("site.key", b"private key\n", 0o600))
NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid
HINT = "(trust_target_dir = true accepts it)"


async def _install(remote: Remote, directory: str, *, own: bool = False,
                   **settings: Any) -> None:
    where = Placement(directory, tuple((f.name, f.name) for f in FILES), own)
    async with remote.transport(**settings) as transport:
        await transport.install(where, FILES, HostSettings(**settings))


async def _refused(remote: Remote, directory: str, **kwargs: Any) -> str:
    with pytest.raises(DeployError) as caught:
        await _install(remote, directory, **kwargs)
    return str(caught.value)


def _dir(remote: Remote, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Path:
    local = remote.at(path)
    local.mkdir()
    os.chown(local, uid, gid)
    local.chmod(mode)
    return local


def _pems(local: Path) -> list[str]:
    return sorted(name for name in os.listdir(local) if name.startswith("site."))


def test_a_directory_on_the_way_may_be_the_login_users_not_the_hosts_owners(
        tmp_path: Path) -> None:
    need_root("chown to another user")

    async def body(remote: Remote) -> None:
        victim = _dir(remote, "/victim", 0o700)
        _dir(remote, "/srv", uid=NOBODY)
        assert await _refused(remote, "/srv/www", own=True, owner="nobody") == \
            "deployer@127.0.0.1:/srv/www: refused: /srv is owned by uid 65534 (the host's " \
            "owner), not by root or the login user, who could swap www in it for a link " \
            f"between two SFTP requests {HINT}"
        assert "mkdir" not in [op for op, _ in remote.asked], "refused before it is made"

        # The swap that refusal prevents: the own directory, checked, becomes a link.
        _dir(remote, "/srv/site", uid=NOBODY)

        def swap(path: str) -> None:
            if path == "/srv/site" and not remote.at(path).is_symlink():
                remote.at(path).rename(remote.at("/srv/site.moved"))
                remote.at(path).symlink_to(victim)  # the real path: the server follows it
        remote.hooks["lstat"] = swap
        assert "refused: /srv is owned by uid 65534 (the host's owner)" in \
            await _refused(remote, "/srv/site", own=True, owner="nobody")
        assert os.listdir(victim) == []
        del remote.hooks["lstat"]

        # Another user owns nothing on the way once that user logs in: the same directory
        # is the login user's, and the certificate's own directory is made in it.
        (remote.bin / "id").write_text(f'#!/bin/sh\n[ "$#" = 1 ] && echo {NOBODY}\n')
        (remote.bin / "id").chmod(0o755)
        await _install(remote, "/srv/www", own=True)
        assert _pems(remote.at("/srv/www")) == ["site.crt", "site.key"]
    lab(tmp_path, body)


def test_a_directory_on_the_way_the_hosts_group_may_write(tmp_path: Path) -> None:
    need_root("chown to another group")

    async def body(remote: Remote) -> None:
        _dir(remote, "/shared", 0o775, gid=NOGROUP)
        assert await _refused(remote, "/shared/www", own=True, group="nogroup") == \
            "deployer@127.0.0.1:/shared/www: refused: /shared is writable by its group " \
            f"{NOGROUP} (mode 0775), whose members could swap www in it for a link between " \
            "two SFTP requests (allow_group_writable = true accepts it)"
        assert not remote.at("/shared/www").exists()
        # The directory the files go into may be the group's: nothing on the way is.
        await _install(remote, "/shared", group="nogroup")
        assert _pems(remote.at("/shared")) == ["site.crt", "site.key"]
        # The setting trusts the group's members, as it says.
        await _install(remote, "/shared/www", own=True, group="nogroup",
                       allow_group_writable=True)
        assert _pems(remote.at("/shared/www")) == ["site.crt", "site.key"]
    lab(tmp_path, body)


def test_a_directory_of_the_hosts_owner_in_a_sticky_directory(tmp_path: Path) -> None:
    need_root("chown to another user")

    async def body(remote: Remote) -> None:
        _dir(remote, "/pub", 0o1777)
        _dir(remote, "/pub/site", uid=NOBODY)
        assert await _refused(remote, "/pub/site", owner="nobody") == \
            "deployer@127.0.0.1:/pub/site: refused: /pub/site is owned by uid 65534, not by " \
            "root or the login user, who could swap it for a link in /pub (mode 1777) " \
            f"between two SFTP requests {HINT}"
        assert _pems(remote.at("/pub/site")) == []
        # Root's, in the same sticky directory: nobody else may rename it there.
        _dir(remote, "/pub/root")
        await _install(remote, "/pub/root", owner="nobody")
        assert _pems(remote.at("/pub/root")) == ["site.crt", "site.key"]
    lab(tmp_path, body)
