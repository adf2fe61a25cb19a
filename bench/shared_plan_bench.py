"""A no-op plan over many certificates from the shared PostgreSQL store.

Starts a throwaway cluster (tools/pg_lab.py), stores N certificates (one version each, not
due; synthetic PEM bytes) and times, in this process, what a `certfleet run` where nothing
is due does before it would ask any CA: open the store, read every certificate's standing
in one query (`snapshot`), plan. Prints the median of several rounds; never fails on a time.

    .venv/bin/python bench/shared_plan_bench.py [--count 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tools")]

from pg_lab import PgLab

from certfleet.config.job import load_job
from certfleet.plan import make_plans
from certfleet.spec import JobConfig
from certfleet.store import open_store, pg_schema
from certfleet.store.pg_conn import Db
from certfleet.store.postgres import PgStore, _standing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        folder.chmod(0o700)
        with PgLab(folder / "pg") as lab:
            job = load_job(_config(folder, lab, args.count))
            db = Db(job.store)
            pg_schema.migrate(db)
            _fill(db, [spec.name for spec in job.certs])
            db.close()
            # Rows written by hand have no standing: the first snapshot reads them whole;
            # a run's own writes keep it, as this fills it in.
            _standings(job)
            times: list[tuple[float, float, float]] = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                store = open_store(job)
                opened = time.perf_counter()
                snaps = store.snapshot([spec.name for spec in job.certs])
                read = time.perf_counter()
                plans = make_plans(job.certs, snaps, job, datetime.now(UTC), lambda c: None)
                times.append((opened - start, read - opened, time.perf_counter() - read))
                store.close()
                assert not any(p.due for p in plans)
            totals = [sum(t) for t in times]
            median = times[totals.index(statistics.median_low(totals))]
            print(f"no-op plan over {args.count} certificates from PostgreSQL: median "
                  f"{sum(median):.3f} s (open {median[0]:.3f}, snapshot {median[1]:.3f}, "
                  f"plan {median[2]:.3f}); all: {', '.join(f'{t:.3f}' for t in totals)}")


def _config(folder: Path, lab: PgLab, count: int) -> Path:
    key = folder / "store.key"
    key.write_text(secrets.token_hex(32) + "\n")
    key.chmod(0o600)
    domains = folder / "domains.txt"
    domains.write_text("".join(f"s{i:06d}.bench.example\n" for i in range(count)))
    config = folder / "certfleet.toml"
    config.write_text(f'state_dir = "{folder}/state"\ndomains = "{domains}"\n[store]\n'
                      f'backend = "postgresql"\ndsn = "{lab.dsn}"\n'
                      f'password_file = "{lab.password_file}"\nca_file = "{lab.ca_file}"\n'
                      f'key_file = "{key}"\n')
    return config


def _standings(job: JobConfig) -> None:
    store = open_store(job)
    assert isinstance(store, PgStore)
    snaps = store.snapshot([spec.name for spec in job.certs])
    with store.db.transaction() as tx:
        for name, snap in snaps.items():
            tx.run("UPDATE certfleet_certs SET standing = :s WHERE name = :n", n=name,
                   s=_standing(snap.meta, snap.state))
    store.close()


def _fill(db: Db, names: list[str]) -> None:
    now = datetime.now(UTC)
    for start in range(0, len(names), 1000):
        with db.transaction() as tx:
            for name in names[start:start + 1000]:
                meta = {"version": 1, "names": [name], "key_type": "ec256", "serial": "1f",
                        "not_before": (now - timedelta(days=1)).isoformat(),
                        "not_after": (now + timedelta(days=89)).isoformat(),
                        "issuer": "CN=bench", "aki": "", "issued_at": now.isoformat(),
                        "directory": "https://acme-v02.api.letsencrypt.org/directory",
                        "order_url": ""}
                state = {"last": {"at": now.isoformat(), "result": "issued", "error": None}}
                tx.run("INSERT INTO certfleet_certs (name, state, active) VALUES (:n, :s, 1)",
                       n=name, s=json.dumps(state))
                tx.run("INSERT INTO certfleet_versions (name, version, meta, cert, chain, "
                       "fullchain) VALUES (:n, 1, :m, :c, :c, :c)", n=name,
                       m=json.dumps(meta), c=b"-----BEGIN CERTIFICATE-----\n")


if __name__ == "__main__":
    main()
