"""Issuance against a local Pebble (PEBBLE_VA_NOSLEEP=1): wall time and HTTP requests per
certificate, through the CLI (one process per certificate, as cron would) and in one
process with one connection pool and nonce pool.

    .venv/bin/python bench/issue_bench.py [--count N] [--nonce-reject PCT]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from pebble_lab import PebbleLab

from certfleet.acme_client import AcmeClient
from certfleet.registration import open_account

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from certfleet.keytypes import KeyType
from certfleet.solvers.http_server import HttpServerSolver
from certfleet.store import Store
from tests.issuing import issue_names as issue

CERTFLEET = str(Path(sys.executable).parent / "certfleet")


def cli_round(lab: PebbleLab, state: Path, count: int) -> tuple[list[float], list[int]]:
    times, requests = [], []
    for i in range(count):
        start = time.perf_counter()
        proc = subprocess.run(
            [CERTFLEET, "issue", "-v", f"cli{i}.bench.example", "--state-dir", str(state),
             "--directory", lab.directory_url, "--ca-bundle", str(lab.ca_bundle),
             "--http-listen", f"127.0.0.1:{lab.http_port}"],
            capture_output=True, text=True, check=True,
        )
        times.append(time.perf_counter() - start)
        found = re.search(r"(\d+) requests to the CA", proc.stderr)
        requests.append(int(found.group(1)) if found else -1)
    return times, requests


async def in_process(lab: PebbleLab, state: Path, count: int) -> tuple[list[float], int]:
    store = Store(state)
    times = []
    async with AcmeClient(lab.directory_url, ca_bundle=lab.ca_bundle) as client, \
            HttpServerSolver("127.0.0.1", lab.http_port) as solver:
        session = await open_account(client, store, KeyType.EC256, [])
        before = client.total_requests
        for i in range(count):
            start = time.perf_counter()
            await issue(session, store, [f"lib{i}.bench.example"], KeyType.EC256, solver)
            times.append(time.perf_counter() - start)
        return times, client.total_requests - before


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--retry-after", type=int, default=0,
                        help="Pebble's retryAfter for authz and order, seconds (0: measure "
                        "the client, not Pebble's configured waits)")
    parser.add_argument("--nonce-reject", default="0",
                        help="PEBBLE_WFE_NONCEREJECT (0: measure the protocol alone)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PebbleLab(
        Path(tmp) / "pebble",
        env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": args.nonce_reject,
             "PEBBLE_AUTHZREUSE": "0"},
        config={"retryAfter": {"authz": args.retry_after, "order": args.retry_after}},
    ) as lab:
        times, reqs = cli_round(lab, Path(tmp) / "cli", args.count)
        print(f"CLI, one process per certificate ({args.count} certificates, 1 name each):")
        print(f"  wall time per certificate: median {statistics.median(times):.3f}s, "
              f"min {min(times):.3f}s, max {max(times):.3f}s (includes interpreter start)")
        print(f"  HTTP requests per certificate: first {reqs[0]} (account lookup), "
              f"then median {statistics.median(reqs[1:]):.0f}")
        times2, total = asyncio.run(in_process(lab, Path(tmp) / "lib", args.count))
        print(f"In one process, one client, sequential ({args.count} certificates):")
        print(f"  wall time per certificate: median {statistics.median(times2):.3f}s, "
              f"min {min(times2):.3f}s, max {max(times2):.3f}s")
        print(f"  HTTP requests per certificate: {total / args.count:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
