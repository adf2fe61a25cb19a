"""What every figure of bench/figures.py needs: the tree under test, a timed child process
with its resource usage, a time budget, a local Pebble and the config files.

Nothing here imports certfleet: the certfleet measured is always the one in ``--tree``,
run as ``python -m certfleet`` with ``PYTHONPATH=TREE/src``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from labconfig import toml_value
from pebble_lab import PebbleLab, find_binaries

CACHE = ROOT / ".cache" / "bench"
#: Pebble's own default (test/config/pebble-config.json): what Pebble sends unless told
#: otherwise. tools/pebble_lab.py lowers it to 1 s for the tests, so it is set explicitly.
PEBBLE_DEFAULT_RETRY_AFTER = {"authz": 3, "order": 5}
NO_RETRY_AFTER = {"authz": 0, "order": 0}
#: Measure the protocol, not Pebble's test knobs: no validation sleep, no rejected nonces,
#: no reused authorizations (every certificate does the whole dance).
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
#: Used in stored state and configs where no CA is to be asked; the discard port on
#: loopback, so that a mistake is a refused connection here and never traffic elsewhere.
NOWHERE = "https://127.0.0.1:9/dir"


class BenchError(Exception):
    """A figure could not be measured (the command failed, the tree is not usable)."""


class TimedOut(Exception):
    """The figure's time budget ran out; ``spent`` seconds were measured until then."""

    def __init__(self, spent: float) -> None:
        super().__init__(f"timed out after {spent:.0f}s")
        self.spent = spent


class Budget:
    """Seconds of measured child processes a figure may spend (setup is not counted)."""

    def __init__(self, seconds: float) -> None:
        self.total = seconds
        self.spent = 0.0

    @property
    def left(self) -> float:
        return max(self.total - self.spent, 0.0)


@dataclass
class Proc:
    """One finished child: exit code, wall time, its own CPU time and peak RSS."""

    argv: list[str]
    returncode: int
    wall: float
    cpu: float          # user + system seconds of the child (and children it waited for)
    maxrss_kb: int      # peak resident set size, KiB (Linux ru_maxrss)
    stdout: str
    stderr: str
    ca_log: str = ""    # what Pebble logged while the child ran (set by the caller)
    system: float = 0.0  # the kernel's share of ``cpu``

    def tail(self, chars: int = 1500) -> str:
        return (self.stdout[-chars // 3:] + "\n" + self.stderr[-chars:]).strip()

    def expect(self, *codes: int) -> Proc:
        if self.returncode not in codes:
            raise BenchError(f"{' '.join(self.argv[2:6])}...: exit {self.returncode}, "
                             f"expected {'/'.join(map(str, codes))}:\n{self.tail()}")
        return self


def run_proc(argv: Sequence[str], *, env: dict[str, str], cwd: Path,
             budget: Budget | None = None) -> Proc:
    """Run ``argv`` to the end and measure it. Output goes to temporary files (no pipe to
    drain, no thread); the child is reaped with ``wait4`` for its own rusage. With a
    budget, a child that outlives what is left of it is killed and ``TimedOut`` raised."""
    limit = budget.left if budget else None
    if budget is not None and limit is not None and limit <= 0:
        raise TimedOut(budget.spent)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err, start_new_session=True)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

        timer = threading.Timer(limit, kill) if limit is not None else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:  # Ctrl-C here: the child is in its own session, end it too
            kill()
            child.wait()
            raise
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if budget is not None:
            budget.spent += wall
            if killed.is_set():
                raise TimedOut(budget.spent)
        out.seek(0)
        err.seek(0)
        return Proc(list(argv), child.returncode, wall, usage.ru_utime + usage.ru_stime,
                    usage.ru_maxrss, out.read().decode(errors="replace"),
                    err.read().decode(errors="replace"), system=usage.ru_stime)


class Tree:
    """The certfleet source under test: ``DIR/src`` first on the path of every child."""

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.root = root.resolve()
        self.src = self.root / "src"
        self.python = python
        if not (self.src / "certfleet" / "__init__.py").is_file():
            raise BenchError(f"{self.root}: no src/certfleet here")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CERTFLEET_", "PYTHON"))}
        # Loopback only, whatever proxy the calling environment names.
        self.env = {**env, "PYTHONPATH": str(self.src), "NO_PROXY": "127.0.0.1,localhost",
                    "no_proxy": "127.0.0.1,localhost"}

    def argv(self, *args: str) -> list[str]:
        return [self.python, "-m", "certfleet", *args]

    def cli(self, *args: str, cwd: Path, budget: Budget | None = None) -> Proc:
        return run_proc(self.argv(*args), env=self.env, cwd=cwd, budget=budget)

    def check(self) -> str:
        """Fail unless a child really imports this tree's certfleet; its version."""
        probe = subprocess.run(
            [self.python, "-c", "import certfleet; print(certfleet.__file__); "
             "print(getattr(certfleet, '__version__', '?'))"],
            env=self.env, cwd=tempfile.gettempdir(), capture_output=True, text=True,
            check=False)
        lines = probe.stdout.split()
        if probe.returncode or not lines or not Path(lines[0]).resolve().is_relative_to(
                self.src):
            raise BenchError(f"python -m certfleet does not come from {self.src}: "
                             f"{probe.stdout.strip()} {probe.stderr.strip()}")
        return lines[1] if len(lines) > 1 else "?"

    def head(self) -> str:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(self.root), *args], capture_output=True,
                                  text=True, check=False).stdout.strip()
        head = git("rev-parse", "HEAD") or "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
        return head + (" (src modified)" if dirty else "")


# ------------------------------------------------------------------------------ Pebble


@contextlib.contextmanager
def pebble(workdir: Path, retry_after: dict[str, int]) -> Iterator[PebbleLab]:
    """Pebble (with pebble-challtestsrv as its DNS) on loopback, sending ``retry_after``."""
    with PebbleLab(workdir, env=PEBBLE_ENV, config={"retryAfter": retry_after}) as lab:
        yield lab


def pebble_version() -> str:
    try:
        binary, _ = find_binaries()
    except Exception as exc:  # reported, not raised
        return f"unavailable ({exc.__class__.__name__})"
    out = subprocess.run([str(binary), "-version"], capture_output=True, text=True,
                         check=False).stdout.strip()
    stamp = binary.parent.parent.parent / "VERSION"  # scripts/install-test-components
    if "dev" in out and stamp.is_file():
        return f"{stamp.read_text().split()[0]} (package; binary says {out!r})"
    return out or "unknown"


# ------------------------------------------------------------------------------ files


def write_config(path: Path, state: Path, domains: Path, *, directory: str = NOWHERE,
                 ca_bundle: Path | None = None, http_port: int | None = None) -> Path:
    """A certfleet.toml with only the keys every tree accepts (as tools/labconfig.py
    writes them); nothing about concurrency, so each tree runs with its own default."""
    lines = [f"state_dir = {toml_value(str(state))}", f"domains = {toml_value(str(domains))}",
             "", "[ca]", f"directory = {toml_value(directory)}"]
    if ca_bundle is not None:
        lines.append(f"ca_bundle = {toml_value(str(ca_bundle))}")
    if http_port is not None:
        lines += ["", "[challenge]", f"http_listen = {toml_value(f'127.0.0.1:{http_port}')}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def lab_config(path: Path, lab: PebbleLab, state: Path, domains: Path) -> Path:
    return write_config(path, state, domains, directory=lab.directory_url,
                        ca_bundle=lab.ca_bundle, http_port=lab.http_port)


def write_domains(path: Path, names: Sequence[str]) -> Path:
    path.write_text("".join(f"{name}\n" for name in names))
    return path


#: Pebble logs every request it routes, e.g. "POST /order-plz -> calling handler()".
PEBBLE_REQUEST = re.compile(r"\b(?:GET|HEAD|POST) (/\S*) -> calling handler\(\)")
#: Pebble's paths (wfe/wfe.go) by their RFC 8555 names. Those a run needs once per CA,
#: whatever the number of certificates:
ONCE_PER_RUN = {"/dir": "directory", "/nonce-plz": "newNonce", "/sign-me-up": "account"}
#: and those each certificate needs (any other path counts as per certificate too).
PER_CERTIFICATE = {"/order-plz": "newOrder", "/authZ/": "authz", "/chalZ/": "challenge",
                   "/finalize-order/": "finalize", "/my-order/": "order",
                   "/certZ/": "download"}


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def ca_requests(pebble_log: str) -> Counter[str]:
    """The requests Pebble handled, by RFC 8555 name (unknown paths as they are)."""
    names = {**ONCE_PER_RUN, **PER_CERTIFICATE}
    return Counter(names.get(path, path) for path in PEBBLE_REQUEST.findall(pebble_log))


def requests_to_ca(stderr: str) -> int | None:
    """The CLI's count (``-v``: "N requests to the CA"), summed over its lines."""
    found = [int(n) for n in re.findall(r"(\d+) requests to the CA", stderr)]
    return sum(found) if found else None


# ------------------------------------------------------------------------------ machine


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"nproc": str(os.cpu_count()), "cpu": model, "load average at start": load,
            "python": f"{platform.python_version()} ({sys.executable})",
            "kernel": platform.release(), "pebble": pebble_version()}


def raise_fd_limit() -> None:
    """Hundreds of orders in flight need sockets: soft open-files limit up to the hard one
    (inherited by Pebble and certfleet)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
