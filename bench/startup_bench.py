"""Start-up: `certfleet --version` and `certfleet status` over 1,000 stored certificates.

Both are timed as whole processes (interpreter start, imports, work, exit), the median of
several runs, and printed with their ratio to the target (1.00 or less meets it):

    certfleet --version                    target 100 ms
    certfleet status, 1,000 certificates   target 250 ms   (the state directory only)
    certfleet status, same, with config    (no target: the domains file is parsed too)

The state directory is built first (synthetic PEM bytes, fsync skipped: not measured).
certfleet runs with bytecode caching on (PYTHONDONTWRITEBYTECODE removed), as an installed
package does; the interpreter doing nothing (`python -c pass`) is shown for scale. Which
modules each command imports is checked by tests/unit/test_startup_imports.py; this only
measures, it never fails on a time. For a paired comparison of two builds, farm-bench
(`farm-bench --vs "B" -- A`) gives the ratio run by run.

    .venv/bin/python bench/startup_bench.py [--count 1000] [--repeat 15] [--certfleet CMD]

The command inherits this environment (CERTFLEET_* removed); for the zipapp, clear it:
--certfleet "env -i PATH=/usr/bin:/bin HOME=$HOME /usr/bin/python3 dist/certfleet.pyz".
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from certfleet.store import PEM_FILES, Store, VersionMeta

TARGET_VERSION = 0.100
TARGET_STATUS = 0.250


def default_command() -> list[str]:
    script = Path(sys.executable).parent / "certfleet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "certfleet"]


def build(root: Path, count: int) -> Path:
    """A state directory of ``count`` certificates, and a certfleet.toml naming them."""
    real_fsync = os.fsync
    os.fsync = lambda fd: None  # setup only
    try:
        store = Store(root / "state")
        now = dt.datetime.now(dt.UTC)
        names = [f"site{i}.bench.example" for i in range(count)]
        for i, name in enumerate(names):
            meta = VersionMeta(
                version=1, names=(name, f"www.{name}"), key_type="ec256", serial=1000 + i,
                not_before=now.isoformat(), not_after=(now + dt.timedelta(days=90)).isoformat(),
                issuer="CN=bench", aki="", issued_at=now.isoformat(),
                directory="https://ca.invalid/dir", order_url="")
            store.activate(name, dict.fromkeys(PEM_FILES, b"-\n"), meta)
    finally:
        os.fsync = real_fsync
    (root / "domains.txt").write_text("".join(f"{n} www.{n}|/srv/certs\n" for n in names))
    config = root / "certfleet.toml"
    config.write_text(f'state_dir = "{root / "state"}"\ndomains = "{root / "domains.txt"}"\n')
    return config


def timed(argv: list[str], repeat: int, env: dict[str, str]) -> float:
    """The median wall time of ``argv``, after one warm-up run (the page cache, .pyc files)."""
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False, env=env)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{shlex.join(argv)}: exit {proc.returncode}\n"
                             f"{proc.stderr.decode(errors='replace')[-2000:]}")
        if i:
            times.append(elapsed)
    return statistics.median(times)


def line(label: str, seconds: float, target: float | None) -> str:
    ratio = f"  {seconds / target:.2f}x the target of {target * 1000:.0f} ms" if target else ""
    return f"{label:<44} {seconds * 1000:7.1f} ms{ratio}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--certfleet", type=shlex.split, default=None, metavar="COMMAND",
                        help="how to start certfleet (default: the certfleet script beside "
                             "this Python, else `python -m certfleet`)")
    args = parser.parse_args()
    command = args.certfleet or default_command()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTFLEET_") and k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        config = build(Path(tmp), args.count)
        state = str(Path(tmp) / "state")
        print(f"certfleet: {shlex.join(command)}")
        print(line("python -c pass (the interpreter alone)",
                   timed([sys.executable, "-c", "pass"], args.repeat, env), None))
        print(line("certfleet --version", timed([*command, "--version"], args.repeat, env),
                   TARGET_VERSION))
        print(line(f"certfleet status ({args.count} certificates)",
                   timed([*command, "status", "--state-dir", state], args.repeat, env),
                   TARGET_STATUS))
        print(line(f"certfleet status --config ({args.count} certificates)",
                   timed([*command, "status", "--config", str(config)], args.repeat, env),
                   None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
