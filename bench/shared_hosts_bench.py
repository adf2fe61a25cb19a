"""N certificates issued by one Work host, then (fresh CA, fresh database) by three at once.

Each host is a `certfleet run` process with its own local directory, all on one throwaway
PostgreSQL cluster (tools/pg_lab.py) and one Pebble (tools/pebble_lab.py), http-01
answered by one `certfleet serve` from the shared tokens. Prints the wall time of each
and the orders Pebble saw; never fails on a time. On a 2-core machine the three hosts
share the cores with Pebble and PostgreSQL, so the gain is bounded by that, not by the
store.

    .venv/bin/python bench/shared_hosts_bench.py [--count 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tools")]

from labconfig import write_config
from pebble_lab import PebbleLab
from pg_lab import PgLab


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--hosts", type=int, action="append",
                        help="how many Work hosts (repeatable; default: 1, then 3)")
    args = parser.parse_args()
    for hosts in args.hosts or (1, 3):
        seconds, orders = _round(hosts, args.count, args.concurrency)
        print(f"{args.count} certificates, {hosts} Work host(s): {seconds:.1f} s, "
              f"{orders} orders", flush=True)


def _round(hosts: int, count: int, concurrency: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        folder.chmod(0o700)
        with PgLab(folder / "pg") as db, PebbleLab(folder / "pebble") as lab:
            key = folder / "store.key"
            key.write_text(secrets.token_hex(32) + "\n")
            key.chmod(0o600)
            domains = folder / "domains.txt"
            domains.write_text("".join(f"h{i:05d}.bench.example\n" for i in range(count)))
            configs = []
            for i in range(hosts):
                (folder / f"w{i}").mkdir(mode=0o700)
                configs.append(write_config(
                    folder / f"w{i}" / "certfleet.toml", lab, folder / f"w{i}" / "state",
                    domains, concurrency=concurrency,
                    sections={"challenge": {"mode": "serve"},
                              "store": {"backend": "postgresql", "dsn": db.dsn,
                                        "ca_file": str(db.ca_file),
                                        "password_file": str(db.password_file),
                                        "key_file": str(key), "holder": f"w{i}"}}))
            env = {**os.environ, "PYTHONPATH": f"{ROOT}/src"}
            cmd = [sys.executable, "-m", "certfleet"]
            subprocess.run([*cmd, "store", "migrate", "--config", str(configs[0])],
                           check=True, env=env, capture_output=True)
            log = open(folder / "serve.log", "w")  # noqa: SIM115 - closed below
            serve = subprocess.Popen([*cmd, "serve", "-v", "--listen",
                                      f"127.0.0.1:{lab.http_port}", "--config",
                                      str(configs[0])], env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
            _wait_port(lab.http_port)
            start = time.monotonic()
            runs = [subprocess.Popen([*cmd, "run", "--config", str(c)], env=env,
                                     stdout=subprocess.PIPE, text=True) for c in configs]
            outs = [run.communicate()[0] for run in runs]
            seconds = time.monotonic() - start
            for out in outs:  # each host's summary, and the reasons of what failed
                lines = out.splitlines()
                failures = {re.sub(r"[A-Za-z0-9_-]{40,}|\S+\.bench\.example\S*", "*",
                                   line.partition(": failed: ")[2])[:160]
                            for line in lines if ": failed: " in line}
                print(f"  {lines[-1] if lines else '(no output)'}", *sorted(failures),
                      sep="\n    ")
            serve.terminate()
            serve.wait()
            log.close()
            answers = re.findall(r"-> (\d{3})$", (folder / "serve.log").read_text(), re.M)
            print(f"  serve's answers: {dict(sorted(Counter(answers).items()))}", *sorted(
                {line for line in (folder / "serve.log").read_text().splitlines()
                 if line.endswith("-> 503")})[:5], sep="\n    ")
            orders = len(re.findall(r'Added order "[^"]+" to the db', lab.log_text()))
            return seconds, orders


def _wait_port(port: int) -> None:
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("serve did not listen")


if __name__ == "__main__":
    main()
