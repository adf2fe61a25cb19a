"""A hostile local user on a target host: links, FIFOs, devices and directories planted
where certfleet writes, before the deploy and at exactly the wrong moment.

The user is the host's ``owner`` (``hostile_lab``) and owns the directory the files are
written in, so the directory checks accept it and only the per-file care stands between
the user and root: locally the target directory (``a`` gets its own directory inside);
over SSH ``a``'s own directory, in a target directory of root's, since over SFTP a
directory on the way that the user could change is refused
(``test_hostile_sftp_paths.py``). The tests of a link where the own directory goes need
the user to write the target directory: over SSH they set ``trust_target_dir``, which
leaves that refusal in place.

The races are made deterministic: a planting "before" happens before the deploy; one "at
the wrong moment" happens from inside the deploy, by wrapping the SFTP session's
``create``/``mkdir`` (the session talks to the real sshd) or, locally, the read-back check
between a temporary file's creation and its rename.

Every test: the victims outside the target (a root 0600 key file, a 0644 file, a 0700
directory) keep content, mode and owner; the hostile target's part of the line names the
reason; ``a``'s other target and ``b`` (on the same host as the hostile target) get their
files. Before this module's fixes, the chmod/chown of the temporary file and of a new
certificate directory went by path and followed the planted link to the victim.

* mode/owner of another file through a link: a temporary name right after its creation
  (SSH, for a key and a certificate; local), or guessed and planted before it (SSH,
  local); the certificate's own directory before the deploy (SSH, local) and right after
  its ``mkdir`` (SSH);
* a special file at a temporary name: FIFO, directory (SSH);
* a special file at a final name: symlink, FIFO, device, directory before the deploy
  (SSH), a symlink while the files are written (SSH), FIFO, device, symlink (local);
* a link at a final name after the checks: replaced by the rename, never followed (SSH);
* a regular file of the user's renamed over a final name right after certfleet's rename:
  noticed and reported (SSH).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from certfleet.deploy import local, sftp_files

from .hostile_lab import TMP_PREFIX, FifoReaders, Lab, Layout, start, wrap

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from start()


def _hostile(lab: Lab, top: Path) -> Path:
    return lab.hostile_dir(top / "hostile")


def _ssh(lab: Lab, tmp_path: Path) -> tuple[Path, Path, Layout]:
    """``a``'s hostile target on web1b: a directory of root's, holding ``a``'s own
    directory, which the hostile user owns."""
    top = lab.base / f"h-{tmp_path.name}"
    top.mkdir(mode=0o755)
    target = top / "certs"
    target.mkdir(mode=0o755)
    own = lab.hostile_dir(target / lab.names[0])
    return target, own, lab.layout(tmp_path, str(target))


def _ssh_writable(lab: Lab, tmp_path: Path) -> tuple[Path, Path, Layout]:
    """``a``'s hostile target on web1b: a directory the hostile user owns, trusted
    (``trust_target_dir``); ``a`` gets its own directory inside."""
    top = lab.base / f"h-{tmp_path.name}"
    top.mkdir(mode=0o755)
    hostile = _hostile(lab, top)
    layout = lab.layout(tmp_path, str(hostile), settings={"trust_target_dir": True})
    return hostile, hostile / lab.names[0], layout


def _own(lab: Lab, own: Path) -> Path:
    """``a``'s own directory, the hostile user's (made by that user if missing)."""
    if not own.is_dir():
        lab.as_hostile("mkdir", "--", str(own))
    return own


def _temps(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)) \
        if folder.is_dir() and not folder.is_symlink() else []


# ------------------------------------------------------------------ SSH: temporary names


@pytest.mark.parametrize("pem", ["privkey.pem", "cert.pem"])
def test_ssh_symlink_at_a_temporary_name_changes_no_other_file(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pem: str) -> None:
    """Right after a temporary file is created, the user replaces it with a link to the
    victim (a root 0600 key): owner and mode go through the open handle, so the victim
    keeps both, for the key (0600, the victim's own mode) as for the certificate (0644:
    a chmod by path would make the victim readable by all)."""
    _, own, layout = _ssh(lab, tmp_path)

    def plant(path: str, mode: int) -> None:
        if path.startswith(str(own)) and path.endswith(f"-{pem}"):
            lab.plant_symlink(Path(path), lab.victim)

    calls = wrap(monkeypatch, sftp_files.Sftp, "create", after=plant)
    cause = layout.deploy_and_check(f"{pem} was swapped during the deploy: it is now "
                                    "a symlink")
    assert any(str(p).endswith(f"-{pem}") for p, _ in calls)
    assert os.readlink(own / pem) == str(lab.victim), cause  # the user's link
    assert not _temps(own)


@pytest.mark.parametrize("transport", ["ssh", "local"])
def test_a_link_at_a_guessed_temporary_name_is_never_opened(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    """The temporary names are random, but a user who guessed one and put a link there
    first gains nothing: the file is created exclusively (SFTP ``CREAT|EXCL``,
    ``O_EXCL|O_NOFOLLOW`` locally), so the link is never opened, and that target fails."""
    guessed = f"{TMP_PREFIX}guessed-privkey.pem"
    _, own, layout = _ssh(lab, tmp_path) if transport == "ssh" else _local(lab, tmp_path)
    monkeypatch.setattr(sftp_files if transport == "ssh" else local, "temp_name",
                        lambda name: guessed if name == "privkey.pem" else f"{guessed}-{name}")
    lab.plant_symlink(_own(lab, own) / guessed, lab.victim)
    # SFTP version 3 has no "exists" status: OpenSSH answers a generic failure.
    cause = layout.deploy_and_check(": Failure" if transport == "ssh" else ": File exists")
    assert os.readlink(own / guessed) == str(lab.victim), cause   # left as it was planted
    assert not (own / "privkey.pem").exists(), "nothing is renamed when one file fails"


def test_ssh_fifo_at_a_temporary_name_does_not_hang(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, own, layout = _ssh(lab, tmp_path)

    def plant(path: str, mode: int) -> None:
        if path.startswith(str(own)) and path.endswith("-cert.pem"):
            lab.plant_fifo(Path(path))

    wrap(monkeypatch, sftp_files.Sftp, "create", after=plant)
    with FifoReaders(own) as readers:  # an SFTP read of it would hang the sftp-server
        layout.deploy_and_check("cert.pem was swapped during the deploy: it is now a FIFO")
    assert readers.opened == []


def test_ssh_directory_at_a_temporary_name(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, own, layout = _ssh(lab, tmp_path)

    def plant(path: str, mode: int) -> None:
        if path.startswith(str(own)) and path.endswith("-chain.pem"):
            lab.plant_dir(Path(path))

    wrap(monkeypatch, sftp_files.Sftp, "create", after=plant)
    layout.deploy_and_check("chain.pem was swapped during the deploy: it is now a directory")


# ------------------------------------------------------------------ SSH: final names


@pytest.mark.parametrize(("plant", "reason"), [
    ("symlink", "privkey.pem is a symlink, not a regular file"),
    ("fifo", "privkey.pem is a FIFO, not a regular file"),
    ("device", "privkey.pem is a character device, not a regular file"),
    ("directory", "privkey.pem is a directory, not a regular file"),
])
def test_ssh_special_file_at_a_final_name_is_refused(
        lab: Lab, tmp_path: Path, plant: str, reason: str) -> None:
    _, own, layout = _ssh(lab, tmp_path)
    final = _own(lab, own) / "privkey.pem"
    {"symlink": lambda: lab.plant_symlink(final, lab.victim),
     "fifo": lambda: lab.plant_fifo(final),
     "device": lambda: lab.plant_device(final),
     "directory": lambda: lab.plant_dir(final)}[plant]()
    with FifoReaders(own) as readers:
        layout.deploy_and_check(f"refused: {reason}")
    assert readers.opened == []
    assert not stat.S_ISREG(os.lstat(final).st_mode), "the planted file is left alone"
    assert not (own / "cert.pem").exists(), "nothing is renamed when one name is refused"
    assert not _temps(own)


def test_ssh_symlink_at_a_final_name_while_the_files_are_written(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, own, layout = _ssh(lab, tmp_path)

    def plant(path: str, mode: int) -> None:
        if path.startswith(str(own)) and path.endswith("-fullchain.pem"):
            lab.plant_symlink(own / "fullchain.pem", lab.victim)

    wrap(monkeypatch, sftp_files.Sftp, "create", after=plant)
    layout.deploy_and_check("refused: fullchain.pem is a symlink, not a regular file")
    assert not _temps(own)


def test_ssh_symlink_at_a_final_name_after_the_checks_is_replaced(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted after the final names were checked, just before the rename: ``rename``
    replaces the link itself, so nothing fails and nothing is followed."""
    _, own, layout = _ssh(lab, tmp_path)

    def plant(old: str, new: str) -> None:
        if new == str(own / "privkey.pem"):
            lab.plant_symlink(Path(new), lab.victim)

    calls = wrap(monkeypatch, sftp_files.Sftp, "rename", before=plant)
    before = lab.victims()
    rc, lines = lab.deploy(layout.config)
    assert rc == 0, lines
    assert any(new == str(own / "privkey.pem") for _, new in calls)
    assert not (own / "privkey.pem").is_symlink()
    lab.assert_current(lab.names[0], own)
    layout.assert_good()
    assert lab.victims() == before


def test_ssh_file_swapped_in_at_a_final_name_after_the_rename_is_noticed(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after the key is renamed into place, the user renames a regular file of
    their own over it: the final name no longer holds what the handle wrote (its owner,
    mode, size and mtime differ), and the target fails saying so."""
    _, own, layout = _ssh(lab, tmp_path)

    def swap(old: str, new: str) -> None:
        if new == str(own / "privkey.pem"):
            lab.as_hostile("/bin/sh", "-c", 'echo forged > "$1.x" && mv -f "$1.x" "$1"',
                           "sh", new)

    calls = wrap(monkeypatch, sftp_files.Sftp, "rename", after=swap)
    layout.deploy_and_check("privkey.pem was swapped during the deploy: it is not the file "
                            "written")
    assert any(new == str(own / "privkey.pem") for _, new in calls)
    assert (own / "privkey.pem").read_bytes() == b"forged\n"   # theirs, left alone


# ------------------------------------------------------------------ SSH: the own directory


def test_ssh_own_directory_planted_as_a_symlink_is_refused(lab: Lab, tmp_path: Path) -> None:
    _, own, layout = _ssh_writable(lab, tmp_path)
    lab.plant_symlink(own, lab.victim_dir)
    layout.deploy_and_check("the certificate's own directory is a symlink, not a "
                            "directory; certfleet never follows it")
    assert own.is_symlink()


@pytest.mark.parametrize("moment", ["after mkdir", "before lsetstat"])
def test_ssh_own_directory_swapped_right_after_mkdir(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str) -> None:
    """Right after ``mkdir``, or between the check of the new directory and setting its
    owner (``lsetstat``): the new directory is moved away and a link to the victim
    directory put in its place. ``lsetstat`` does not follow it (it changes the link's own
    owner at most), so the victim directory stays root's, 0700, and empty of certificates."""
    _, own, layout = _ssh_writable(lab, tmp_path)

    def swap(path: str, *_: object) -> None:
        if path == str(own) and not own.is_symlink():
            lab.as_hostile("mv", "--", path, f"{path}.moved")
            lab.plant_symlink(own, lab.victim_dir)

    if moment == "after mkdir":
        calls = wrap(monkeypatch, sftp_files.Sftp, "mkdir", after=swap)
    else:
        calls = wrap(monkeypatch, sftp_files.Sftp, "lsetstat", before=swap)
    layout.deploy_and_check("refused: the certificate's own directory is a symlink, not a "
                            "directory; certfleet never follows it")
    assert calls
    assert own.is_symlink()


# ------------------------------------------------------------------ local targets


def _local(lab: Lab, tmp_path: Path) -> tuple[Path, Path, Layout]:
    top = lab.base / f"l-{tmp_path.name}"
    top.mkdir(mode=0o755)
    hostile = _hostile(lab, top)
    layout = lab.layout(tmp_path, str(hostile), hostile_host="")
    return hostile, hostile / lab.names[0], layout


def test_local_symlink_at_a_temporary_name_changes_no_other_file(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the key's creation (and fchown/fchmod) and its rename."""
    _, own, layout = _local(lab, tmp_path)
    original = local.verify_copy

    def verify(item: object, got: bytes, where: str) -> None:
        original(item, got, where)  # type: ignore[arg-type]
        if where == f"{own}/privkey.pem":
            temp = next(n for n in _temps(own) if n.endswith("-privkey.pem"))
            lab.plant_symlink(own / temp, lab.victim)

    monkeypatch.setattr(local, "verify_copy", verify)
    layout.deploy_and_check("privkey.pem was swapped during the deploy: it is now a "
                            "symlink")
    assert os.readlink(own / "privkey.pem") == str(lab.victim)


@pytest.mark.parametrize(("plant", "reason"), [
    ("fifo", "privkey.pem is a FIFO, not a regular file"),
    ("device", "privkey.pem is a character device, not a regular file"),
    ("symlink", "privkey.pem is a symlink, not a regular file"),
])
def test_local_special_file_at_a_final_name_is_refused(
        lab: Lab, tmp_path: Path, plant: str, reason: str) -> None:
    _, own, layout = _local(lab, tmp_path)
    final = _own(lab, own) / "privkey.pem"
    {"symlink": lambda: lab.plant_symlink(final, lab.victim),
     "fifo": lambda: lab.plant_fifo(final),
     "device": lambda: lab.plant_device(final)}[plant]()
    with FifoReaders(own) as readers:  # a local open of it would block certfleet itself
        layout.deploy_and_check(f"refused: {reason}")
    assert readers.opened == []
    assert not _temps(own)


def test_local_own_directory_planted_as_a_symlink_is_refused(
        lab: Lab, tmp_path: Path) -> None:
    _, own, layout = _local(lab, tmp_path)
    lab.plant_symlink(own, lab.victim_dir)
    layout.deploy_and_check("the certificate's own directory is a symlink")
