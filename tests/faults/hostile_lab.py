"""A lab for hostile-target tests: two certificates, two web hosts, a hostile local user.

One Pebble issues two certificates once (``a`` and ``b``); each test then writes its own
domains file and host settings and runs ``certfleet deploy``, which pushes both to all
their targets. The usual shape (``Lab.layout``):

* ``a`` goes to a *hostile* target and to ``web1a:<good>``;
* ``b`` goes to ``web1b:<good>``, on the same host as the hostile target when that is
  web1b, so a test shows the same host's other targets go on.

The hostile user (``useradd``: no password, a login shell) owns the hostile target
directory, and is the host's ``owner`` (as ``www-data`` would be for a web server's
certificates): the directory checks accept it, and whatever it plants there is what
certfleet must survive. It plants as itself (``Lab.as_hostile``): symlinks and FIFOs at a
temporary name or a final name, a directory swapped for a link. Devices need CAP_MKNOD,
so root plants those for it.

Victims: ``victim/secret.key`` (root, 0600), ``victim/site.conf`` (root, 0644) and the
directory ``victim`` itself (root, 0700), all outside any target; ``Lab.victims()``
snapshots content, mode and owner of each, and every test compares before and after.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing, need_root
from tests.integration.fleet_helpers import by_name, run_cli, write_config

PEMS = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
TMP_PREFIX = ".certfleet-tmp-"


def sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


@dataclass
class Lab:
    base: Path
    pebble: Any
    web: dict[str, Any]
    user: str
    uid: int
    gid: int
    identity: Path
    known_hosts: Path
    ssh_config: Path
    names: tuple[str, str]
    state: Path
    extra_ssh_config: list[Path] = field(default_factory=list)

    # ------------------------------------------------------------------ the hostile user

    def as_hostile(self, *argv: str) -> None:
        """Run ``argv`` as the hostile user (no supplementary groups)."""
        done = subprocess.run(argv, user=self.uid, group=self.gid, extra_groups=[],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{argv}: {done.stderr}"

    def plant_symlink(self, path: Path, to: Path) -> None:
        self.as_hostile("ln", "-sfn", "--", str(to), str(path))

    def fresh_dir(self, prefix: str) -> Path:
        """A new directory of root's (0755) under the lab, for one test's tree."""
        top = self.base / f"{prefix}-{uuid.uuid4().hex[:8]}"
        top.mkdir(mode=0o755)
        return top

    def plant_fifo(self, path: Path) -> None:
        self.as_hostile("rm", "-f", "--", str(path))
        self.as_hostile("mkfifo", "--", str(path))

    def plant_dir(self, path: Path) -> None:
        self.as_hostile("rm", "-f", "--", str(path))
        self.as_hostile("mkdir", "--", str(path))

    def plant_device(self, path: Path) -> None:
        """A character device (1,3: /dev/null's numbers); root makes it (CAP_MKNOD)."""
        if path.exists() or path.is_symlink():
            path.unlink()
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.lchown(path, self.uid, self.gid)

    def hostile_dir(self, path: Path, mode: int = 0o755) -> Path:
        path.mkdir(parents=True)
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path

    # ------------------------------------------------------------------ victims

    @property
    def victim_dir(self) -> Path:
        return self.base / "victim"

    @property
    def victim(self) -> Path:
        return self.victim_dir / "secret.key"

    def victims(self) -> dict[str, tuple[str | None, int, int, int, tuple[str, ...]]]:
        """Content hash, mode, owner, group (and, for a directory, its entries) of every
        victim."""
        found = {}
        for path in (self.victim_dir, *sorted(self.victim_dir.iterdir())):
            info = os.lstat(path)
            entries = tuple(sorted(os.listdir(path))) if path.is_dir() else ()
            found[str(path)] = (sha(path), info.st_mode, info.st_uid, info.st_gid, entries)
        return found

    # ------------------------------------------------------------------ deploying

    def config(self, tmp: Path, targets: dict[str, list[str]],
               hosts: dict[str, dict[str, Any]] | None = None) -> Path:
        lines = [f"{name}|{' '.join(targets[name])}" if targets.get(name) else name
                 for name in self.names]
        domains = tmp / "domains.txt"
        domains.write_text("\n".join(lines) + "\n")
        sections: dict[str, dict[str, Any]] = {
            "ssh": {"config": [str(self.ssh_config), *map(str, self.extra_ssh_config)],
                    "known_hosts": str(self.known_hosts)},
        }
        for host, settings in (hosts or {}).items():
            sections[f'hosts."{host}"'] = settings
        return write_config(tmp / "certfleet.toml", self.pebble, self.state, domains,
                            sections=sections)

    def deploy(self, config: Path, *extra: str) -> tuple[int, dict[str, str]]:
        rc, out = run_cli("deploy", "--config", str(config), *extra)
        return rc, by_name(out)

    def assert_current(self, name: str, folder: Path) -> None:
        current = self.state / "certs" / name / "current"
        for pem in PEMS:
            assert sha(folder / pem) == sha(current / pem), f"{folder}/{pem} not current"

    def layout(self, tmp: Path, hostile: str, *, hostile_host: str = "web1b",
               settings: dict[str, Any] | None = None) -> Layout:
        """``a`` to ``hostile_host:<hostile>`` (a path, or a local path if the host is
        "") and to web1a; ``b`` to web1b. The hostile host's ``owner`` is the hostile
        user unless ``settings`` says otherwise."""
        top = self.fresh_dir("t")
        good_a = top / "good-a"
        good_b = top / "good-b"
        good_a.mkdir()
        good_b.mkdir()
        hostile_target = f"{hostile_host}:{hostile}" if hostile_host else hostile
        targets = {self.names[0]: [hostile_target, f"web1a:{good_a}"],
                   self.names[1]: [f"web1b:{good_b}"]}
        own = {"owner": self.user, **(settings or {})}
        hosts = {hostile_host or "default": own}
        return Layout(self, top, good_a, good_b, hostile_target,
                      self.config(tmp, targets, hosts))


@dataclass
class Layout:
    lab: Lab
    top: Path
    good_a: Path
    good_b: Path
    hostile_target: str
    config: Path

    def assert_good(self) -> None:
        """``a``'s other target and ``b`` have the current files (each in its own
        directory inside the good target)."""
        a, b = self.lab.names
        self.lab.assert_current(a, self.good_a / a)
        self.lab.assert_current(b, self.good_b / b)

    def deploy_and_check(self, reason: str, *extra: str) -> str:
        """Deploy; ``a`` must fail on the hostile target only, naming ``reason``; ``b`` and
        ``a``'s other target get their files; the victims are unchanged. Returns the
        reason as printed."""
        lab = self.lab
        before = lab.victims()
        rc, lines = lab.deploy(self.config, *extra)
        a, b = lab.names
        assert rc == 1, lines
        assert lines[a].startswith(f"{a}: "), lines
        assert ", deployed to 1/2 targets; " in lines[a], lines
        cause = lines[a].split(f"; {self.hostile_target}: ", 1)[1]
        assert reason in cause, lines[a]
        assert lines[b].endswith("deployed to 1/1 targets"), lines
        self.assert_good()
        assert lab.victims() == before, "a victim outside the targets changed"
        return cause


def _make_user() -> tuple[str, int, int]:
    import pwd

    need_root("useradd, for a hostile local user")
    if not shutil.which("useradd"):
        missing("useradd is needed for a hostile local user")
    user = f"cfh{uuid.uuid4().hex[:8]}"
    done = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                           "--home-dir", "/", "--shell", "/bin/sh", "-p", "*", user],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing(f"useradd failed: {done.stderr.strip()}")
    entry = pwd.getpwnam(user)
    return user, entry.pw_uid, entry.pw_gid


def start(issue: bool = True) -> Iterator[Lab]:
    """The lab for one test module (a generator for a module-scoped fixture)."""
    from pebble_lab import LabUnavailable, PebbleLab, find_binaries

    try:
        find_binaries()
    except LabUnavailable as exc:
        missing(str(exc))
    import web_lab

    try:
        web_lab.find_binaries()
    except web_lab.WebLabUnavailable as exc:
        missing(str(exc))
    base = Path(tempfile.mkdtemp(prefix="certfleet-hostile-", dir="/tmp"))
    base.chmod(0o755)
    user, uid, gid = _make_user()
    pebble = PebbleLab(base / "pebble", env={"PEBBLE_AUTHZREUSE": "0"},
                       config={"retryAfter": {"authz": 0, "order": 0}})
    hosts = {"web1a": web_lab.WebHost(base / "web1a", "127.0.0.2", name="web1a"),
             "web1b": web_lab.WebHost(base / "web1b", "127.0.0.3", name="web1b")}
    try:
        pebble.start()
        identity, public = web_lab.client_key(base / "client")
        for host in hosts.values():
            host.start()
            host.authorize(public)
        known_hosts = base / "known_hosts"
        web_lab.write_known_hosts(known_hosts, hosts.values())
        ssh_config = base / "ssh_config"
        web_lab.write_ssh_config(ssh_config, hosts, identity, known_hosts)
        victim = base / "victim"
        victim.mkdir(mode=0o700)
        (victim / "secret.key").write_bytes(secrets.token_bytes(64))
        (victim / "secret.key").chmod(0o600)
        (victim / "site.conf").write_text("server { }\n")
        (victim / "site.conf").chmod(0o644)
        tag = uuid.uuid4().hex[:8]
        names = (f"a{tag}.hostile.example.com", f"b{tag}.hostile.example.com")
        lab = Lab(base, pebble, hosts, user, uid, gid, identity, known_hosts, ssh_config,
                  names, base / "state")
        if issue:
            rc, out = run_cli("run", "--config", str(lab.config(base, {})))
            assert rc == 0, out
        yield lab
    finally:
        for host in hosts.values():
            host.stop()
        pebble.stop()
        subprocess.run(["userdel", user], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def wrap(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str,
         before: Callable[..., None] | None = None,
         after: Callable[..., None] | None = None) -> list[tuple[Any, ...]]:
    """Replace the async method ``owner.name`` by one that calls ``before(*args)``, the
    original, then ``after(*args)``; returns the list of calls seen."""
    original = getattr(owner, name)
    calls: list[tuple[Any, ...]] = []

    async def wrapped(self: Any, *args: Any) -> Any:
        calls.append(args)
        if before is not None:
            before(*args)
        result = await original(self, *args)
        if after is not None:
            after(*args)
        return result

    monkeypatch.setattr(owner, name, wrapped)
    return calls


class FifoReaders:
    """While a deploy runs, who opens a FIFO under ``root`` for reading (where an ``open``
    or a read blocks until a writer comes, which hangs a deploy that does it).

    Each FIFO is tried now and then with a non-blocking open for writing, which succeeds
    only while some process has it open for reading: that FIFO is noted, and the writer,
    closed at once, gives the reader end-of-file. So a deploy that opens a planted FIFO
    goes on and the test fails on ``opened``, instead of hanging; no deadline is involved.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> FifoReaders:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            for folder, dirs, files in os.walk(self.root):
                for name in (*dirs, *files):
                    self._try(os.path.join(folder, name))

    def _try(self, path: str) -> None:
        try:
            if not stat.S_ISFIFO(os.lstat(path).st_mode):
                return
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:  # ENXIO: nobody reads it; ENOENT: gone meanwhile
            return
        os.close(fd)
        self.opened.append(path)
