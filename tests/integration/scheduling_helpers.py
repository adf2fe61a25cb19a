"""Helpers for the tests of contrib/ (systemd units, FreeBSD periodic, rc.d and cron).

What a unit or a script promises is checked by running its own command line, read from the
file, against a real Pebble: the test's certfleet stands in for /usr/local/bin/certfleet and
a test configuration for the real one. Where the file asks for an unprivileged user, the
command runs as ``nobody`` (when the tests run as root), with the same kernel settings
systemd would make from the unit (setpriv(1): user, no_new_privs, capability sets).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from certfleet.report import certificates
from tests import waits
from tests.conftest import missing, need_root

from .fleet_helpers import write_config

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib"
SYSTEMD = CONTRIB / "systemd"
FREEBSD = CONTRIB / "freebsd"
INSTALLED = "/usr/local/bin/certfleet"  # where every contrib file expects certfleet
UNIT_STATE = "/var/lib/certfleet"       # the state directory the units are written for
NOBODY = 65534                           # nobody and nogroup on Debian


__all__ = ["need", "need_root"]  # need_root: tests.conftest's, imported from here too


def need(*tools: str) -> None:
    """The tools a test runs: skip when one is missing, but fail under CI."""
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        missing(f"{', '.join(absent)} not installed (scripts/install-test-components)")


def certfleet_program() -> str:
    """The certfleet console script of the Python running the tests."""
    beside = Path(sys.executable).parent / "certfleet"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("certfleet")
    if found is None:
        pytest.fail("no certfleet console script beside the test's Python or in PATH "
                    "(make venv)", pytrace=False)
    return found


# -- systemd unit files ---------------------------------------------------------------------

Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """``{section: {key: [values in order]}}`` of a unit file, as systemd reads it: comment
    lines start with # or ;, a trailing backslash continues the line."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = (pending + " " + raw.strip()) if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{path}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not a key=value line: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set once, is {values}"
    return values[0]


def words(unit: Unit, section: str, key: str) -> list[str]:
    """Every value of a list setting, split; an empty assignment resets the list."""
    out: list[str] = []
    for value in unit.get(section, {}).get(key, []):
        out = [] if value == "" else out + value.split()
    return out


def exec_argv(line: str, program: str) -> list[str]:
    """An Exec*= command line as argv, without systemd's prefixes (+, -, @, :, !), the
    installed certfleet replaced by ``program``."""
    argv = shlex.split(line.lstrip("+-@:!"))
    return [program if arg == INSTALLED else arg for arg in argv]


def unit_environment(unit: Unit, user: tuple[int, int] | None = None,
                     **replace: str) -> dict[str, str]:
    """The process environment the unit gives: this one with HOME, USER and LOGNAME of
    ``user`` as systemd sets them for User=, plus its Environment= entries, a value
    replaced where ``replace`` names its variable."""
    env = dict(os.environ)
    if user is not None:
        entry = pwd.getpwuid(user[0])
        env.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
    for value in unit["Service"].get("Environment", []):
        for item in shlex.split(value):
            key, _, val = item.partition("=")
            env[key] = replace.get(key, val)
    return env


def setpriv(unit: Unit, user: tuple[int, int] | None) -> list[str]:
    """setpriv(1) arguments that give a process what systemd gives the unit's: its User=
    (as ``user``, a uid and gid; None keeps the current user), NoNewPrivileges=,
    CapabilityBoundingSet= and AmbientCapabilities=."""
    service = unit["Service"]
    argv = ["setpriv"]
    if service.get("NoNewPrivileges") == ["yes"]:
        argv.append("--no-new-privs")
    if user is None:
        return argv
    def caps(key: str) -> str:
        return "".join(f",+{c.removeprefix('CAP_').lower()}" for c in words(unit, "Service", key))
    argv += [f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups"]
    if "CapabilityBoundingSet" in service:
        argv.append("--bounding-set=-all" + caps("CapabilityBoundingSet"))
    ambient = caps("AmbientCapabilities")
    argv += ["--inh-caps=-all" + ambient, "--ambient-caps=-all" + ambient]
    return argv


EXPOSE = r"""
# Test only: show the unprivileged user the test's Python (interpreter, virtualenv,
# certfleet's source) where it lies behind directories it cannot enter. Arguments:
# ASIDE, then CLOSED KEEP pairs, then --, then the command.
aside=$1; shift
n=0 pairs=""
while [ "$1" != "--" ]; do
	n=$((n + 1)); mkdir -p "$aside/$n"; mount --bind "$2" "$aside/$n"
	pairs="$pairs $1:$2:$n"; shift 2
done
shift
covered=""
for pair in $pairs; do
	closed=${pair%%:*}
	case " $covered " in *" $closed "*) continue ;; esac
	mount -t tmpfs -o mode=0755 tmpfs "$closed"; covered="$covered $closed"
done
for pair in $pairs; do
	rest=${pair#*:}; keep=${rest%:*}; n=${rest##*:}
	mkdir -p "$keep"; mount --bind "$aside/$n" "$keep"; umount "$aside/$n"
done
exec "$@"
"""


# -- a directory the unprivileged user can use ----------------------------------------------

@dataclass
class World:
    """A directory outside pytest's private tmp tree, where the user the scripts run as
    (nobody when the tests run as root, else the current user) can reach what it needs:
    the configuration (root's, as in /etc), the CA bundle, its state directory (0700, its
    own, as StateDirectory= makes it) and a local target directory (its own)."""

    root: Path
    uid: int
    gid: int

    @property
    def user(self) -> tuple[int, int] | None:
        return (self.uid, self.gid) if os.geteuid() == 0 else None

    @property
    def state(self) -> Path:
        return self.root / "state"

    def reach(self) -> list[str]:
        """A command prefix that lets the user run the test's Python: where it lives below
        a directory the user cannot enter (pyenv in root's 0700 home, as on the CI
        machines), a private mount namespace shows that directory as a 0755 tmpfs holding
        only the interpreter's tree, as an install in /usr/local or /opt would be. The
        user gets no privilege from it. Empty when nothing is in the way."""
        if self.user is None:
            return []
        import certfleet
        needed = (sys.executable, sys.base_prefix, sys.prefix,
                  Path(certfleet.__file__).parent)
        blocked: set[tuple[Path, Path]] = set()
        for path in needed:
            route = Path(os.path.realpath(path))
            steps = [*reversed(route.parents), route]
            for parent, child in itertools.pairwise(steps):
                if not os.stat(parent).st_mode & 0o001:
                    blocked.add((parent, child))
                    break
        if not blocked:
            return []
        closed = {parent for parent, _ in blocked}
        for parent, child in blocked:
            assert not {*child.parents} & closed - {parent}, f"nested: {blocked}"
            assert not set(":\n\t ") & set(str(child)), child
        aside = self.root / "python-aside"
        aside.mkdir(exist_ok=True)
        pairs = [str(p) for pair in sorted(blocked) for p in pair]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", EXPOSE, "sh",
                str(aside), *pairs, "--"]

    def owned_dir(self, path: Path, mode: int = 0o755) -> Path:
        path.mkdir(mode=mode)
        os.chmod(path, mode)
        os.chown(path, self.uid, self.gid)
        return path

    def config(self, lab: Any, domains: str, name: str = "certfleet.toml",
               **kwargs: Any) -> Path:
        """A certfleet.toml for ``lab`` with its CA bundle copied to where the user can
        read it; the state directory made (the user's, 0700) if missing."""
        bundle = self.root / "pebble-ca.pem"
        if not bundle.exists():
            shutil.copyfile(lab.ca_bundle, bundle)
            os.chmod(bundle, 0o644)
        if not self.state.exists():
            self.owned_dir(self.state, 0o700)
        (self.root / f"{name}.domains").write_text(domains)
        shim = SimpleNamespace(directory_url=lab.directory_url, ca_bundle=bundle,
                               http_port=lab.http_port)
        path = write_config(self.root / name, shim, self.state, self.root / f"{name}.domains",
                            **kwargs)
        os.chmod(path, 0o644)
        return path


def make_world() -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="certfleet-sched-"))
    os.chmod(root, 0o755)
    uid, gid = (NOBODY, NOBODY) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    try:
        yield World(root, uid, gid)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(argv: Sequence[str], env: dict[str, str] | None = None,
        timeout: float = 180) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a command; shown when a test fails."""
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    print(f"$ {shlex.join(argv)}\n{proc.stdout}{proc.stderr}[exit {proc.returncode}]")
    return proc.returncode, proc.stdout, proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[str],
                   deadline: float = waits.PROCESS) -> None:
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before listening: {proc.communicate()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"nothing listening on 127.0.0.1:{port}: {proc.communicate()}")


def issued_lines(out: str, names: Sequence[str], deployed: int | None = None) -> None:
    """``out`` is certfleet's report of a run that issued ``names``: a line each, then the
    summary, and nothing else."""
    lines = out.splitlines()
    assert len(lines) == len(names) + 1, out
    for name in names:
        line = next((x for x in lines if x.startswith(f"{name}: ")), "")
        assert line.startswith(f"{name}: issued (expires "), out
        if deployed is not None:
            assert line.endswith(f", deployed to {deployed}/{deployed} targets"), out
    assert lines[-1].startswith(f"{certificates(len(names))}: {len(names)} issued"), out
