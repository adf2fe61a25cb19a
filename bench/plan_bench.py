"""Deciding that nothing is due: `certfleet run` over N stored, valid certificates.

Builds a state directory of N certificates (setup skips fsync to be quick; it is not
measured), then times the whole CLI, start-up included, several times.

    .venv/bin/python bench/plan_bench.py [--count 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from certfleet import fleet
from certfleet.config import load_job
from certfleet.store import Store, VersionMeta

CERTFLEET = str(Path(sys.executable).parent / "certfleet")


def build(root: Path, count: int) -> Path:
    real_fsync = os.fsync
    os.fsync = lambda fd: None  # setup only
    try:
        store = Store(root / "state")
        now = dt.datetime.now(dt.UTC)
        names = [f"site{i}.bench.example" for i in range(count)]
        files = dict.fromkeys(("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"), b"-")
        for i, name in enumerate(names):
            meta = VersionMeta(
                version=1, names=(name, f"www.{name}"), key_type="ec256", serial=1000 + i,
                not_before=now.isoformat(), not_after=(now + dt.timedelta(days=90)).isoformat(),
                issuer="CN=bench", aki="", issued_at=now.isoformat(),
                directory="https://ca.invalid/dir", order_url="")
            store.activate(name, files, meta)
    finally:
        os.fsync = real_fsync
    (root / "domains.txt").write_text("".join(f"{n} www.{n}\n" for n in names))
    config = root / "certfleet.toml"
    # No CA is needed to decide that nothing is due; the clock comparison is off so that the
    # benchmark never reaches for a network.
    config.write_text(f'state_dir = "{root / "state"}"\ndomains = "{root / "domains.txt"}"\n'
                      '[ca]\ndirectory = "https://127.0.0.1:9/dir"\nmax_clock_skew = 0\n')
    return config


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        config = build(Path(tmp), args.count)
        print(f"setup: {args.count} stored certificates in {time.perf_counter() - start:.1f}s")
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            proc = subprocess.run([CERTFLEET, "run", "--config", str(config)],
                                  capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - start)
            assert proc.returncode == 2, proc.stdout[-500:] + proc.stderr[-500:]
        print(f"`certfleet run`, nothing due, {args.count} certificates: median "
              f"{statistics.median(times):.3f}s, min {min(times):.3f}s (whole process)")
        start = time.perf_counter()
        subprocess.run([CERTFLEET, "--version"], capture_output=True, check=True)
        print(f"`certfleet --version`: {time.perf_counter() - start:.3f}s")
        tracemalloc.start()
        start = time.perf_counter()
        job = load_job(config)
        parsed = time.perf_counter()
        fleet.make_plans(Store(job.state_dir), list(job.certs), job)
        planned = time.perf_counter()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"in-process (traced, so slower): load {parsed - start:.3f}s, "
              f"plan {planned - parsed:.3f}s")
        print(f"peak traced memory for load + plan: {peak / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
