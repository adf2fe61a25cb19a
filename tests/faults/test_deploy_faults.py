"""Deploy faults, one target of a two-target certificate at a time.

Each case: a certificate is issued and deployed to targets A and B; a fault is put on B;
``run --force`` renews it. Then the run exits 1, its line names B and the cause
("deployed to 1/2 targets; B: cause"), A has the new version (SHA-256 of all four files
compared with the stored current version), B keeps its previous files byte for byte, and
no ``.certfleet-tmp-`` file is left on either. With the fault gone, the next plain run
gives B the current version without ordering again.

Faults, and how they are made here (we run as root, so plain file modes stop nothing):

* target down: sshd of web1b stopped (``WebHost.stop_sshd``);
* permission denied, SSH: a system user made for the test with ``useradd`` (password
  field ``*``: no password, but not "locked", which sshd without PAM refuses) logs in
  to web1b through its own ssh_config alias; B is a directory it owns during the first
  deploy and that is handed back to root (0755) for the fault: its SFTP writes get
  EACCES, the way a real deploy user meets a directory it may not write. The lab sits in
  a 0755 directory under /tmp and ``authorized_keys`` is made 0644, because sshd reads
  the key file as the logging-in user;
* permission denied, local: ``chattr +i`` on B (root cannot create files in an
  immutable directory: EPERM); if the filesystem has no immutable flag, a read-only
  bind mount (EROFS);
* target directory missing: B renamed aside (the previous files are checked there);
* disk full: B is a directory in a 64 KiB tmpfs mounted for the test, filled up after the
  first deploy to one free page, so the first temporary file of the renewal fits and the
  second does not (the partial upload must be removed too);
* reload failing: the host's reload is ``/bin/false``. By design (README: "the host's
  reload command runs once, after all of that host's files are in place") the new files
  are then already in place, so here B is checked to hold the complete new version, the
  failure to say "files in place, reload failed", and the next run to deploy and reload
  again.

A missing component skips (the sshd lab, chattr/mount, useradd), or fails when CI is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing, need_root
from tests.integration.fleet_helpers import orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration

PEMS = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
TMP_PREFIX = ".certfleet-tmp-"


@dataclass
class Rig:
    """One Pebble and two web hosts (sshd + nginx) for the whole module."""

    lab: Any
    base: Path                     # 0755, under /tmp: readable by an unprivileged user
    web: dict[str, Any] | None     # "web1a", "web1b" -> WebHost; None without the lab
    web_missing: str = ""
    identity: Path | None = None
    known_hosts: Path | None = None
    ssh_config: Path | None = None

    def need_web(self) -> dict[str, Any]:
        if self.web is None:
            missing(self.web_missing)
        assert self.web is not None
        return self.web


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    from pebble_lab import LabUnavailable, PebbleLab, find_binaries

    try:
        find_binaries()
    except LabUnavailable as exc:
        missing(str(exc))
    import web_lab

    base = Path(tempfile.mkdtemp(prefix="certfleet-faults-", dir="/tmp"))
    base.chmod(0o755)
    lab = PebbleLab(base / "pebble", env={"PEBBLE_AUTHZREUSE": "0"},
                    config={"retryAfter": {"authz": 0, "order": 0}})
    hosts: dict[str, Any] = {}
    try:
        lab.start()
        rig = Rig(lab, base, None)
        try:
            web_lab.find_binaries()
        except web_lab.WebLabUnavailable as exc:
            rig.web_missing = str(exc)
        else:
            hosts = {"web1a": web_lab.WebHost(base / "web1a", "127.0.0.2", name="web1a"),
                     "web1b": web_lab.WebHost(base / "web1b", "127.0.0.3", name="web1b")}
            identity, public = web_lab.client_key(base / "client")
            for host in hosts.values():
                host.start()
                host.authorize(public)
                host.authorized_keys.chmod(0o644)  # read by sshd as the logging-in user
            rig.web, rig.identity = hosts, identity
            rig.known_hosts = base / "known_hosts"
            web_lab.write_known_hosts(rig.known_hosts, hosts.values())
            rig.ssh_config = base / "ssh_config"
            web_lab.write_ssh_config(rig.ssh_config, hosts, identity, rig.known_hosts)
        yield rig
    finally:
        for host in hosts.values():
            host.stop()
        lab.stop()
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- helpers


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _files(folder: Path) -> dict[str, bytes]:
    """Every entry of ``folder`` and its bytes (temporary files included)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _temps(*folders: Path) -> list[str]:
    return [str(folder / name) for folder in folders if folder.is_dir()
            for name in os.listdir(folder) if name.startswith(TMP_PREFIX)]


def _assert_current(state: Path, name: str, folder: Path) -> None:
    current = state / "certs" / name / "current"
    for pem in PEMS:
        assert _sha(folder / pem) == _sha(current / pem), (
            f"{folder}/{pem} is not the current version {os.readlink(current)}")


@dataclass
class Case:
    """One certificate with targets A and B, its own state directory and config."""

    rig: Rig
    tmp: Path
    name: str
    a: Path              # A's directory (as seen on this machine)
    b: Path              # B's directory
    a_target: str        # as written in the domains file
    b_target: str
    hosts: dict[str, dict[str, Any]]

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    def write_config(self, **host_overrides: dict[str, Any]) -> Path:
        domains = self.tmp / "domains.txt"
        domains.write_text(f"{self.name} www.{self.name}|{self.a_target} {self.b_target}\n")
        sections: dict[str, dict[str, Any]] = {}
        if self.rig.web is not None:
            sections["ssh"] = {"config": [str(self.rig.ssh_config)],
                               "known_hosts": str(self.rig.known_hosts)}
        for host, settings in {**self.hosts, **host_overrides}.items():
            sections[f'hosts."{host}"'] = settings
        return write_config(self.tmp / "certfleet.toml", self.rig.lab, self.state, domains,
                            sections=sections)


def _case(rig: Rig, tmp_path: Path, a: Path, b: Path, a_target: str | None = None,
          b_target: str | None = None, hosts: dict[str, dict[str, Any]] | None = None) -> Case:
    """The targets are directories named after the certificate inside ``a`` and ``b``: a
    directory of its own, which certfleet writes into but never makes (``layout``)."""
    name = f"{uuid.uuid4().hex[:10]}.faults.example.com"
    a, b = a / name, b / name
    a_target = f"{a_target.partition(':')[0]}:{a}" if a_target else None
    b_target = f"{b_target.partition(':')[0]}:{b}" if b_target else None
    if rig.web is not None:  # default reload for the web hosts: nginx, for real
        hosts = {**{alias: {"reload": h.reload_argv()} for alias, h in rig.web.items()},
                 **(hosts or {})}
    return Case(rig, tmp_path, name, a, b, a_target or str(a), b_target or str(b),
                hosts or {})


Fault = Callable[[], contextlib.AbstractContextManager[Path]]


def exercise(case: Case, fault: Fault, cause: str, *, reload_fault: bool = False,
             faulty_config: dict[str, dict[str, Any]] | None = None) -> str:
    """First deploy, the fault, a forced renewal under it, then recovery. ``fault()`` is
    entered after the first deploy and yields the directory that holds B's previous files
    while the fault lasts. Returns the failing run's line for the certificate."""
    for folder in (case.a, case.b):
        folder.mkdir(parents=True, exist_ok=True)
    config = case.write_config()
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert out.splitlines()[0].endswith("deployed to 2/2 targets"), out
    _assert_current(case.state, case.name, case.b)
    old_a = _files(case.a)
    with fault() as previous_dir:
        before = _files(previous_dir)
        if faulty_config is not None:
            config = case.write_config(**faulty_config)
        orders = orders_seen(case.rig.lab)
        rc, out = run_cli("run", "--config", str(config), "--force")
        line = out.splitlines()[0]
        assert rc == 1, out
        assert line.startswith(f"{case.name}: renewed (expires "), out
        assert f"deployed to 1/2 targets; {case.b_target}: " in line, line
        assert cause in line.split(f"; {case.b_target}: ", 1)[1], line
        assert orders_seen(case.rig.lab) == orders + 1
        # A got the new version; B kept what it had (or, for a failed reload, has the
        # complete new version: the files were in place before the reload ran).
        _assert_current(case.state, case.name, case.a)
        assert _files(case.a) != old_a
        if reload_fault:
            _assert_current(case.state, case.name, case.b)
        else:
            after = _files(previous_dir)
            assert after == before, (
                f"{previous_dir} changed: before {sorted(before)}, after {sorted(after)}")
        assert not _temps(case.a, case.b, previous_dir)
        failing_line = line
        print(f"failing run: {line}")
    # The fault is gone: the next plain run gives B the current version, ordering nothing.
    config = case.write_config()
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert out.splitlines()[0].startswith(f"{case.name}: not due until "), out
    assert out.splitlines()[0].endswith("deployed to 1/1 targets"), out
    assert orders_seen(case.rig.lab) == orders + 1
    _assert_current(case.state, case.name, case.b)
    assert not _temps(case.a, case.b)
    return failing_line


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(mountpoint)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@contextlib.contextmanager
def filled(folder: Path) -> Iterator[Path]:
    """Fill ``folder``'s filesystem (a tmpfs) up to one free page."""
    filler = folder.parent / "filler"
    info = os.statvfs(folder)
    free = info.f_bavail * info.f_frsize
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - info.f_frsize))
    info = os.statvfs(folder)
    assert info.f_bavail * info.f_frsize <= info.f_frsize
    try:
        yield folder
    finally:
        filler.unlink()


@contextlib.contextmanager
def moved_aside(folder: Path) -> Iterator[Path]:
    aside = folder.with_name(folder.name + ".aside")
    folder.rename(aside)
    try:
        yield aside
        assert not folder.exists(), f"{folder} was created by the run"
    finally:
        aside.rename(folder)


@contextlib.contextmanager
def unwritable_local(folder: Path) -> Iterator[Path]:
    """An immutable directory (chattr +i), else a read-only bind mount of it."""
    chattr = shutil.which("chattr")
    done = subprocess.run([chattr, "+i", str(folder)], capture_output=True, text=True,
                          check=False) if chattr else None
    if done is not None and done.returncode == 0:
        try:
            yield folder
        finally:
            subprocess.run([chattr or "chattr", "-i", str(folder)], check=True)
        return
    bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True,
                          text=True, check=False)
    if bind.returncode != 0:
        missing(f"neither chattr +i nor a bind mount works here: {bind.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@contextlib.contextmanager
def sshd_down(host: Any, folder: Path) -> Iterator[Path]:
    host.stop_sshd()
    try:
        yield folder
    finally:
        host.start_sshd()


@pytest.fixture
def deploy_user(rig: Rig) -> Iterator[str]:
    """A system user that may log in to the web hosts with the test's client key."""
    web = rig.need_web()
    need_root("useradd, for an unprivileged SSH user")
    if not shutil.which("useradd"):
        missing("useradd is needed for an unprivileged SSH user")
    user = f"cf{uuid.uuid4().hex[:8]}"
    done = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/",
                           "--shell", "/bin/sh", "-p", "*", user],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing(f"useradd failed: {done.stderr.strip()}")
    try:
        import web_lab

        assert rig.identity is not None
        assert rig.known_hosts is not None
        web_lab.write_ssh_config(rig.base / f"ssh_config.{user}",
                                 {"web1b-user": web["web1b"]}, rig.identity,
                                 rig.known_hosts, user=user)
        yield user
    finally:
        subprocess.run(["userdel", user], capture_output=True, check=False)


# --------------------------------------------------------------------------- local targets


def test_local_target_directorymissing(rig: Rig, tmp_path: Path) -> None:
    case = _case(rig, tmp_path, tmp_path / "a", tmp_path / "b")
    exercise(case, lambda: moved_aside(case.b), "target directory missing")


def test_local_target_not_writable(rig: Rig, tmp_path: Path) -> None:
    case = _case(rig, tmp_path, tmp_path / "a", tmp_path / "b")
    line = exercise(case, lambda: unwritable_local(case.b), "")
    assert "Operation not permitted" in line or "Read-only file system" in line, line


def test_local_disk_full(rig: Rig, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "64k") as mount:
        case = _case(rig, tmp_path, tmp_path / "a", mount / "certs")
        exercise(case, lambda: filled(case.b), "No space left on device")


def test_local_reload_failing(rig: Rig, tmp_path: Path) -> None:
    # The reload runs once per host, and all local targets are one host ("default"), so
    # the other target is on web1a here.
    web = rig.need_web()
    case = _case(rig, tmp_path, web["web1a"].workdir / "deploy" / tmp_path.name,
                 tmp_path / "b", a_target="web1a:")
    exercise(case, lambda: contextlib.nullcontext(case.b),
             "files in place, reload failed: reload /bin/false exited 1",
             reload_fault=True, faulty_config={"default": {"reload": ["/bin/false"]}})


# --------------------------------------------------------------------------- SSH targets


def _ssh_case(rig: Rig, tmp_path: Path, b_alias: str = "web1b") -> Case:
    web = rig.need_web()
    a = web["web1a"].workdir / "deploy" / tmp_path.name
    b = web["web1b"].workdir / "deploy" / tmp_path.name
    return _case(rig, tmp_path, a, b, f"web1a:{a}", f"{b_alias}:{b}")


def test_ssh_target_down(rig: Rig, tmp_path: Path) -> None:
    case = _ssh_case(rig, tmp_path)
    assert rig.web is not None
    exercise(case, lambda: sshd_down(rig.need_web()["web1b"], case.b),
             "web1b: cannot connect: ")


def test_ssh_permission_denied(rig: Rig, tmp_path: Path, deploy_user: str) -> None:
    case = _ssh_case(rig, tmp_path, b_alias="web1b-user")
    case.b.mkdir(parents=True)
    os.chown(case.b, *_ids(deploy_user))
    original = case.write_config

    def write_config(**overrides: dict[str, Any]) -> Path:
        path = original(**overrides)  # the deploy user's alias comes from its own file
        text = path.read_text().replace(
            f'config = ["{rig.ssh_config}"]',
            f'config = ["{rig.ssh_config}", "{rig.base / f"ssh_config.{deploy_user}"}"]')
        path.write_text(text)
        return path

    case.write_config = write_config  # type: ignore[method-assign]

    @contextlib.contextmanager
    def handed_to_root() -> Iterator[Path]:
        os.chown(case.b, 0, 0)
        case.b.chmod(0o755)
        try:
            yield case.b
        finally:
            os.chown(case.b, *_ids(deploy_user))

    line = exercise(case, handed_to_root, "")
    cause = line.split(f"; {case.b_target}: ", 1)[1]
    assert "ermission denied" in cause, line
    assert all(p.stat().st_uid == _ids(deploy_user)[0] for p in case.b.iterdir())


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def test_ssh_target_directorymissing(rig: Rig, tmp_path: Path) -> None:
    case = _ssh_case(rig, tmp_path)
    exercise(case, lambda: moved_aside(case.b), "target directory missing")


def test_ssh_disk_full(rig: Rig, tmp_path: Path) -> None:
    web = rig.need_web()
    with tmpfs(web["web1b"].workdir / "small" / tmp_path.name, "64k") as mount:
        case = _ssh_case(rig, tmp_path)
        case.b = mount / "certs" / case.name
        case.b_target = f"web1b:{case.b}"
        # SFTP v3 says only "Failure"; certfleet asks the file system why and says it.
        line = exercise(case, lambda: filled(case.b), "Failure (No space left on device: ")
        assert re.search(r"\(No space left on device: \d+ bytes free, \d+ needed\)$", line), line


def test_ssh_reload_failing(rig: Rig, tmp_path: Path) -> None:
    case = _ssh_case(rig, tmp_path)
    exercise(case, lambda: contextlib.nullcontext(case.b),
             "files in place, reload failed: web1b: /bin/false exited 1",
             reload_fault=True, faulty_config={"web1b": {"reload": ["/bin/false"]}})
