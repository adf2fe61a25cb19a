"""Target directories are checked before anything is written to them (``deploy.dircheck``).

A directory someone else can write (or an owner other than root, the login user or the
host's ``owner``, or a link on the way) lets that someone plant links at the names
certfleet writes, or swap the directory for a link to another one between two SFTP
requests. Each case: the hostile target is refused with the reason (and the setting that
would accept it), nothing is written there, the victims are unchanged, the other targets
(``a`` on web1a, ``b`` on web1b: the same host) get their files. The settings
``allow_group_writable`` and ``trust_target_dir`` accept what they name, and only that.

Cases, over SSH (real sshd on web1b, root login): owned by the hostile user; writable by
others; writable by a group (refused; refused with that ``group`` too, as its members could
swap the certificate's own directory in it between two SFTP requests; accepted with
``allow_group_writable``); reached through a symlink (refused; accepted with
``trust_target_dir``); a directory on the way owned by the hostile user; a directory on
the way writable by others without the sticky bit; a hostile-owned directory accepted with
``trust_target_dir``. Locally: writable by others, reached through a symlink, owned by the
hostile user.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .hostile_lab import Lab, Layout, start

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from start()


def _top(lab: Lab) -> Path:
    return lab.fresh_dir("d")


def _root_dir(path: Path, mode: int) -> Path:
    path.mkdir(parents=True)
    path.chmod(mode)
    return path


def _layout(lab: Lab, tmp_path: Path, target: Path, *, host: str = "web1b",
            **settings: Any) -> Layout:
    return lab.layout(tmp_path, str(target), hostile_host=host,
                      settings={"owner": "root", **settings})


def _refused(layout: Layout, target: Path, reason: str) -> None:
    cause = layout.deploy_and_check(f"refused: {reason}")
    assert "trust_target_dir = true accepts it" in cause \
        or "allow_group_writable = true accepts it" in cause, cause
    assert not any(target.rglob("*.pem")), "nothing is written to a refused directory"


def _accepted(lab: Lab, layout: Layout, folder: Path) -> None:
    before = lab.victims()
    rc, lines = lab.deploy(layout.config)
    assert rc == 0, lines
    lab.assert_current(lab.names[0], folder / lab.names[0])
    layout.assert_good()
    assert lab.victims() == before


# ------------------------------------------------------------------ SSH


def test_ssh_directory_owned_by_another_user(lab: Lab, tmp_path: Path) -> None:
    target = lab.hostile_dir(_top(lab) / "certs")
    layout = _layout(lab, tmp_path, target)
    _refused(layout, target, f"{target} is owned by uid {lab.uid}, not by root, the login "
                             "user or the host's owner")


def test_ssh_directory_owned_by_another_user_with_trust_target_dir(
        lab: Lab, tmp_path: Path) -> None:
    target = lab.hostile_dir(_top(lab) / "certs")
    _accepted(lab, _layout(lab, tmp_path, target, trust_target_dir=True), target)


def test_ssh_directory_writable_by_others(lab: Lab, tmp_path: Path) -> None:
    target = _root_dir(_top(lab) / "certs", 0o777)
    _refused(_layout(lab, tmp_path, target), target,
             f"{target} is writable by others (mode 0777)")


def test_ssh_directory_writable_by_others_even_sticky(lab: Lab, tmp_path: Path) -> None:
    """Sticky stops others renaming what they do not own, not creating a name certfleet is
    about to write: the target directory itself may not be writable by others at all."""
    target = _root_dir(_top(lab) / "certs", 0o1777)
    _refused(_layout(lab, tmp_path, target), target,
             f"{target} is writable by others (mode 1777)")


@pytest.mark.parametrize("setting", ["none", "group", "allow_group_writable"])
def test_ssh_directory_writable_by_a_group(lab: Lab, tmp_path: Path, setting: str) -> None:
    target = _root_dir(_top(lab) / "certs", 0o775)
    os.chown(target, 0, lab.gid)
    extra = {"none": {}, "group": {"group": lab.user},
             "allow_group_writable": {"allow_group_writable": True}}[setting]
    layout = _layout(lab, tmp_path, target, **extra)
    if setting == "none":
        _refused(layout, target, f"{target} is writable by its group {lab.gid} (mode 0775), "
                                 "not the host's group")
    elif setting == "group":  # the directory the files go into may be (test_hostile_sftp_paths)
        _refused(layout, target, f"{target} is writable by its group {lab.gid} (mode 0775), "
                                 f"whose members could swap {lab.names[0]} in it for a link")
    else:
        _accepted(lab, layout, target)


@pytest.mark.parametrize("trust", [False, True])
def test_ssh_directory_reached_through_a_symlink(lab: Lab, tmp_path: Path,
                                                 trust: bool) -> None:
    top = _top(lab)
    real = _root_dir(top / "real", 0o755)
    (top / "link").symlink_to(real)
    layout = _layout(lab, tmp_path, top / "link" / "certs", trust_target_dir=trust)
    _root_dir(real / "certs", 0o755)
    if trust:
        _accepted(lab, layout, real / "certs")
    else:
        _refused(layout, real, f"{top / 'link'} is a symlink: target directories are not "
                               "reached through links")


def test_ssh_directory_on_the_way_owned_by_another_user(lab: Lab, tmp_path: Path) -> None:
    """The user could rename ``certs`` away and put a link to /etc in its place."""
    parent = lab.hostile_dir(_top(lab) / "parent")
    target = _root_dir(parent / "certs", 0o755)
    _refused(_layout(lab, tmp_path, target), target,
             f"{parent} is owned by uid {lab.uid}, not by root")


def test_ssh_directory_on_the_way_writable_by_others(lab: Lab, tmp_path: Path) -> None:
    """Writable by others and not sticky (unlike /tmp, which every path here crosses)."""
    parent = _root_dir(_top(lab) / "parent", 0o777)
    target = _root_dir(parent / "certs", 0o755)
    _refused(_layout(lab, tmp_path, target), target,
             f"{parent} is writable by others (mode 0777)")


# ------------------------------------------------------------------ local


def test_local_directory_writable_by_others(lab: Lab, tmp_path: Path) -> None:
    target = _root_dir(_top(lab) / "certs", 0o777)
    _refused(_layout(lab, tmp_path, target, host=""), target,
             f"{target} is writable by others (mode 0777)")


def test_local_directory_reached_through_a_symlink(lab: Lab, tmp_path: Path) -> None:
    top = _top(lab)
    real = _root_dir(top / "real", 0o755)
    (top / "link").symlink_to(real)
    _refused(_layout(lab, tmp_path, top / "link", host=""), real,
             f"{top / 'link'} is a symlink: target directories are not reached through links")


def test_local_directory_owned_by_another_user(lab: Lab, tmp_path: Path) -> None:
    target = lab.hostile_dir(_top(lab) / "certs")
    _refused(_layout(lab, tmp_path, target, host=""), target,
             f"{target} is owned by uid {lab.uid}, not by root")
