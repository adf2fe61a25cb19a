"""Over SFTP every request resolves its path anew (no ``openat``): a user who can change an
entry on the way to the directory the files are written in can swap it for a link to a
root-only directory between certfleet's checks and its first file, and root's files would
be written there. Against the real sshd of the hostile lab (``hostile_lab``), each way a
user other than root or the login user could do that is refused before anything is
written, whoever the host's settings name:

* the host's ``owner`` owns the target directory that holds the certificate's own
  directory (whether that one exists or certfleet would make it);
* the target directory is writable by the host's ``group``, of which the user is a member;
* the user owns the directory the files go into, in a sticky directory others may write
  (``/tmp``'s kind), where the owner of an entry may rename it.

Each test swaps the directory the files go into for a link to the victim directory (root,
0700) just before the first temporary file is created, as the user could at any moment:
before the fix the four files were written there and root's ``privkey.pem`` in it was
replaced. Now the target fails with a one-line reason naming the directory and its owner
or group, the victims are unchanged, and the other targets get their files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certfleet.deploy import sftp_files

from .hostile_lab import Lab, Layout, start, wrap

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from start()


def _top(lab: Lab) -> Path:
    return lab.fresh_dir("p")


def _swap_before_the_first_file(lab: Lab, monkeypatch: pytest.MonkeyPatch,
                                folder: Path) -> list[str]:
    """When certfleet is about to create its first file in ``folder``, the hostile user
    moves ``folder`` away and puts a link to the victim directory in its place."""
    victim_key = lab.victim_dir / "privkey.pem"  # what the redirected rename would replace
    victim_key.write_bytes(b"root's other key\n")
    victim_key.chmod(0o600)
    swapped: list[str] = []

    def swap(path: str, mode: int) -> None:
        if path.startswith(f"{folder}/") and not swapped:
            lab.as_hostile("mv", "--", str(folder), f"{folder}.moved")
            lab.plant_symlink(folder, lab.victim_dir)
            swapped.append(path)

    wrap(monkeypatch, sftp_files.Sftp, "create", before=swap)
    return swapped


def _deploy(lab: Lab, tmp_path: Path, target: Path, reason: str,
            **settings: Any) -> tuple[Layout, str]:
    layout = lab.layout(tmp_path, str(target), settings=settings)
    cause = layout.deploy_and_check(f"refused: {reason}")
    assert "\n" not in cause
    return layout, cause


@pytest.mark.parametrize("own", ["exists", "missing"])
def test_the_owner_of_the_directory_holding_the_own_directory_is_refused(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own: str) -> None:
    """The host's ``owner`` owns the target directory: it could swap the certificate's own
    directory in it, so the target is refused before that directory is made or used."""
    hostile = lab.hostile_dir(_top(lab) / "hostile")
    folder = hostile / lab.names[0]
    if own == "exists":
        lab.as_hostile("mkdir", "--", str(folder))
    swapped = _swap_before_the_first_file(lab, monkeypatch, folder)
    _, cause = _deploy(lab, tmp_path, hostile,
                       f"{hostile} is owned by uid {lab.uid} (the host's owner), not by root "
                       f"or the login user, who could swap {lab.names[0]} in it for a link "
                       "between two SFTP requests (trust_target_dir = true accepts it)")
    assert cause.startswith(f"web1b:{folder}: refused: "), cause
    assert swapped == [], "nothing is created there"
    assert folder.is_dir() is (own == "exists"), "nor made"
    assert not list(hostile.rglob("*.pem"))


def test_a_target_directory_its_group_may_write_is_refused(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The target directory is root's, writable by the host's ``group``: a member of it
    could swap the certificate's own directory."""
    target = _top(lab) / "certs"
    target.mkdir(mode=0o755)
    os.chown(target, 0, lab.gid)
    target.chmod(0o775)
    folder = target / lab.names[0]
    folder.mkdir(mode=0o755)
    swapped = _swap_before_the_first_file(lab, monkeypatch, folder)
    _deploy(lab, tmp_path, target,
            f"{target} is writable by its group {lab.gid} (mode 0775), whose members could "
            f"swap {lab.names[0]} in it for a link between two SFTP requests "
            "(allow_group_writable = true accepts it)",
            owner="root", group=lab.user)
    assert swapped == []
    assert not list(target.rglob("*.pem"))


def test_the_owners_directory_in_a_sticky_directory_is_refused(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files go straight into a directory of the host's ``owner`` (named after the
    certificate), in a sticky directory anyone may write: its owner may rename it there."""
    sticky = _top(lab) / "pub"
    sticky.mkdir()
    sticky.chmod(0o1777)
    folder = lab.hostile_dir(sticky / lab.names[0])
    swapped = _swap_before_the_first_file(lab, monkeypatch, folder)
    _deploy(lab, tmp_path, folder,
            f"{folder} is owned by uid {lab.uid}, not by root or the login user, who could "
            f"swap it for a link in {sticky} (mode 1777) between two SFTP requests")
    assert swapped == []
    assert not list(folder.rglob("*.pem"))
