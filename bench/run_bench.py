"""`certfleet run` issuing N certificates against local Pebble (PEBBLE_VA_NOSLEEP=1), with
concurrency 1 and with the default, in one process each; then a run where nothing is due.

    .venv/bin/python bench/run_bench.py [--count 50] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

from labconfig import write_config
from pebble_lab import PebbleLab

CERTFLEET = str(Path(sys.executable).parent / "certfleet")


def one_round(tmp: Path, count: int, concurrency: int, retry_after: int) -> None:
    with PebbleLab(tmp / f"pebble-{concurrency}",
                   env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
                        "PEBBLE_AUTHZREUSE": "0"},
                   config={"retryAfter": {"authz": retry_after, "order": retry_after}}) as lab:
        domains = tmp / f"domains-{concurrency}.txt"
        domains.write_text("".join(f"site{i}.bench.example\n" for i in range(count)))
        config = write_config(tmp / f"c{concurrency}.toml", lab, tmp / f"state-{concurrency}",
                              domains, concurrency=concurrency)
        start = time.perf_counter()
        proc = subprocess.run([CERTFLEET, "run", "-v", "--config", str(config)],
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stdout + proc.stderr)
        requests = re.search(r"(\d+) requests to the CA", proc.stderr)
        print(f"concurrency {concurrency:2d}: {count} certificates in {wall:6.2f}s "
              f"({wall / count:.3f}s each), "
              f"{int(requests.group(1)) / count if requests else -1:.1f} requests/certificate")
        start = time.perf_counter()
        proc = subprocess.run([CERTFLEET, "run", "--config", str(config)],
                              capture_output=True, text=True, check=False)
        print(f"  second run, nothing due: exit {proc.returncode} in "
              f"{time.perf_counter() - start:.2f}s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4, help="the 'default' round")
    parser.add_argument("--retry-after", type=int, default=0,
                        help="Pebble's retryAfter seconds (0: measure certfleet, not waits)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in (1, args.concurrency):
            one_round(Path(tmp), args.count, concurrency, args.retry_after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
