"""The figures of issue 13, each against its target, for one certfleet source tree.

    .venv/bin/python bench/figures.py [--tree DIR] [--only NAME,...] [--quick] [--timeout S]
                                      [--write [FILE]] [--section NAME] [--json FILE]
                                      [--profile [FILE]]

Figures (``--only`` takes these names, or the issue's numbers 1-6):

  orders    1. `certfleet run` of 1, 50 and 500 new certificates with Pebble's default
               Retry-After (authz 3 s, order 5 s): the N-run's time over the 1-run's
  issue     2. `certfleet issue NAME`, account registered, Retry-After 0: median wall time;
               and, as the floor under it, the libraries it uses imported alone
  requests  3. HTTP requests to the CA in the 50-certificate run of figure 1, counted at
               Pebble: per certificate (all but the directory, newNonce and the account
               lookup, over 50) and once per run (those three)
  startup   4. `certfleet --version`; `certfleet status` over 1,000 stored certificates
  noop      5. a `run` with nothing due over 10,000 and 100,000 stored certificates
  memory    5. peak RSS of a `run` issuing 1,000 certificates (Retry-After 0)
  cpu       6. user+sys CPU of the certfleet process per certificate in the 500-run,
               and in the same run with its state directory on tmpfs (/dev/shm): each
               new certificate creates about twenty files, directories and links, and
               on a busy ext4 disk the kernel's inode allocation alone can cost more
               than the client's own work (``--profile``: the run again under cProfile,
               top 20 functions)

Every figure is a whole ``python -m certfleet`` process with ``PYTHONPATH=TREE/src``, so one
copy of this script measures any tree ("before" and "after"). Each starts its own Pebble on
127.0.0.1 (tools/pebble_lab.py) and answers http-01 with certfleet's own responder; the
config sets only keys every tree knows, and no ``concurrency``: the tree's defaults are
measured. Stored-certificate states are built through the tree's own Store and cached in
``.cache/bench/`` (bench/_state.py). One line per figure: value, target, value/target and
PASS or MISS. A full run (no --only, no --quick) of the repository's own tree rewrites the
"after" section of bench/FIGURES.md; --write [FILE] with --section NAME writes any run into
any section. Benchmarks, not tests: a MISS does not fail.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from _bench import FULL, QUICK, RA, Bench, median, spread
from _lab import (
    CACHE,
    NO_RETRY_AFTER,
    ONCE_PER_RUN,
    PER_CERTIFICATE,
    ROOT,
    BenchError,
    Budget,
    TimedOut,
    Tree,
    ca_requests,
    lab_config,
    machine,
    raise_fd_limit,
    requests_to_ca,
    run_proc,
    write_domains,
)
from _report import HEADER, table, write_json, write_markdown

SHM = "/dev/shm"  # tmpfs on Linux: figure 6's state directory without a disk's filesystem
# What `certfleet issue` must load before any line of its own runs: the event loop, TLS,
# HTTP/1.1, the X.509 and key code, the config and log parsers, and what they load
# themselves on first use (`ec.ECDSA()` the OpenSSL backend, the TLS handshake the IDNA
# codec). Figure 2 times importing them in a bare interpreter, the floor under any client
# built on them.
ISSUE_LIBRARIES = ("asyncio", "ssl", "cryptography.x509",
                   "cryptography.hazmat.primitives.asymmetric.ec",
                   "cryptography.hazmat.primitives.serialization", "tomllib", "logging",
                   "json", "argparse", "pathlib",
                   "cryptography.hazmat.backends.openssl.backend", "encodings.idna")

# ---------------------------------------------------------------------------- figures


def orders(b: Bench) -> None:
    ones: list[float] = []

    def one(budget: Budget) -> tuple[float, str]:
        for _ in range(b.sizes.one_runs):
            ones.append(b.fresh_run(1, RA, budget).wall)
        return median(ones), spread(ones)

    first = b.measure("1", "run: 1 new certificate (Retry-After 3s/5s)", "s", None, "<=", one)
    for count, target in zip(b.sizes.fleets, (2.0, 5.0), strict=True):
        def ratio(budget: Budget, count: int = count) -> tuple[float, str]:
            if first.value is None:
                raise BenchError("no time for 1 certificate to compare with")
            wall = b.issuing_run(count, RA, budget).wall
            return wall / first.value, f"{count} certificates in {wall:.1f} s, " \
                                       f"1 in {first.value:.2f} s"

        b.measure("1", f"run: {count} new / run: 1", "x", target, "<", ratio)


def issue(b: Bench) -> None:
    def fn(budget: Budget) -> tuple[float, str]:
        lab = b.lab(NO_RETRY_AFTER)
        work = b.work("issue")
        config = str(lab_config(work / "certfleet.toml", lab, work / "state",
                                write_domains(work / "domains.txt", [])))
        b.register(Path(config), work)
        b.tree.cli("issue", f"warmup-{work.name}.bench.example", "--config", config,
                   cwd=work, budget=b.setup_budget()).expect(0)
        times = [b.tree.cli("issue", f"{work.name}-{i}.bench.example", "--config", config,
                            cwd=work, budget=budget).expect(0).wall
                 for i in range(b.sizes.issue_runs)]
        return median(times), spread(times) + " (after 1 unmeasured)"

    b.measure("2", "issue 1 certificate, registered (Retry-After 0)", "s", 0.3, "<=", fn)

    def floor(budget: Budget) -> tuple[float, str]:
        work = b.work("floor")
        argv = [b.tree.python, "-c", "import " + ", ".join(ISSUE_LIBRARIES)]
        run_proc(argv, env=b.tree.env, cwd=work, budget=b.setup_budget()).expect(0)
        times = [run_proc(argv, env=b.tree.env, cwd=work, budget=budget).expect(0).wall
                 for _ in range(b.sizes.issue_runs)]
        return median(times), spread(times) + " (after 1 unmeasured): `python -c 'import " \
            + ", ".join(ISSUE_LIBRARIES) + "'`, no certfleet code"

    b.measure("2", "the libraries issue uses, imported alone", "s", None, "", floor)


def requests(b: Bench) -> None:
    """Counted at the CA (Pebble logs every request it handles), so alike for any tree;
    certfleet's own count (``-v``) is shown beside it as a check."""
    count = b.sizes.fleets[0]

    def counted(budget: Budget) -> tuple[Counter[str], int | None]:
        proc = b.issuing_run(count, RA, budget)  # made once, read by both lines
        seen = ca_requests(proc.ca_log)
        if not seen:
            raise BenchError("Pebble logged no request during the run")
        return seen, requests_to_ca(proc.stderr)

    def per_certificate(budget: Budget) -> tuple[float, str]:
        seen, _ = counted(budget)
        order = list(PER_CERTIFICATE.values())  # the protocol's order; unknown paths last
        names = sorted((n for n in seen if n not in ONCE_PER_RUN.values()),
                       key=lambda n: order.index(n) if n in order else len(order))
        total = sum(seen[n] for n in names)
        return total / count, f"{total} over {count} certificates: " + \
            ", ".join(f"{n} {seen[n]}" for n in names)

    b.measure("3", f"requests per certificate ({count}-run, at the CA)", "req", 7, "<=",
              per_certificate)

    def once_per_run(budget: Budget) -> tuple[float, str]:
        seen, own = counted(budget)
        total = sum(seen[n] for n in ONCE_PER_RUN.values())
        return total, f"in the {count}-run: " + \
            ", ".join(f"{n} {seen[n]}" for n in ONCE_PER_RUN.values()) + \
            f"; in all {sum(seen.values())} at the CA, " + \
            ("none logged by certfleet" if own is None else f"{own} counted by certfleet")

    b.measure("3", "requests once per run (directory, nonce, account)", "n", 3, "<=",
              once_per_run)


def startup(b: Bench) -> None:
    def version(budget: Budget) -> tuple[float, str]:
        work = b.work("version")
        b.tree.cli("--version", cwd=work, budget=b.setup_budget()).expect(0)
        times = [b.tree.cli("--version", cwd=work, budget=budget).expect(0).wall * 1000
                 for _ in range(b.sizes.version_runs)]
        return median(times), spread(times, "ms") + " (after 1 unmeasured)"

    b.measure("4", "certfleet --version", "ms", 100, "<=", version)
    count = b.sizes.status_certs

    def status(budget: Budget) -> tuple[float, str]:
        with b.prepared(count) as (config, work, _, _):
            times = [b.tree.cli("status", "--config", str(config), cwd=work,
                                budget=budget).expect(0).wall * 1000
                     for _ in range(b.sizes.status_runs)]
        return median(times), spread(times, "ms")

    b.measure("4", f"certfleet status, {count:,} stored certificates", "ms", 250, "<=", status)


def noop(b: Bench) -> None:
    """Each size twice: as cron's runs go (the last run had nothing to do either, and is
    replayed when nothing changed since), and planned in full (its record deleted before
    each run: what a run costs after any change, or in a tree without ``quietrun``)."""
    for count, runs, target in b.sizes.noop:
        def fn(budget: Budget, count: int = count, runs: int = runs,
               full: bool = False) -> tuple[float, str]:
            with b.prepared(count) as (config, work, first, state):
                times = []
                for _ in range(runs):
                    if full:
                        (state / "quiet-run.json").unlink(missing_ok=True)
                    times.append(b.tree.cli("run", "--config", str(config), cwd=work,
                                            budget=budget).expect(2).wall)
            return median(times), f"{spread(times)}; the unmeasured first run " \
                                             f"(index built): {first.wall:.2f} s"

        b.measure("5", f"no-op run, {count:,} stored certificates", "s", target, "<=", fn)
        b.measure("5", f"no-op run, {count:,} stored, planned in full (no quiet-run record)",
                  "s", None, "", partial(fn, full=True))


def memory(b: Bench) -> None:
    count = b.sizes.rss_certs

    def fn(budget: Budget) -> tuple[float, str]:
        proc = b.issuing_run(count, NO_RETRY_AFTER, budget)
        return proc.maxrss_kb * 1024 / 1e6, f"ru_maxrss of the run ({proc.wall:.1f} s, " \
                                            f"{proc.cpu:.1f} s CPU), Retry-After 0"

    b.measure("5", f"peak RSS, run issuing {count:,} certificates", "MB", 60, "<=", fn)


def cpu(b: Bench) -> None:
    count = b.sizes.fleets[1]

    def fn(budget: Budget) -> tuple[float, str]:
        try:
            proc = b.issuing_run(count, RA, budget)
        except TimedOut as exc:
            raise BenchError(f"the {count}-certificate run timed out") from exc
        return proc.cpu / count * 1000, f"{proc.cpu:.1f} s user+sys of the certfleet " \
            f"process in the {count}-run of figure 1 ({proc.system:.1f} s of it in the kernel)"

    b.measure("6", f"client CPU per certificate ({count}-run)", "ms", 30, "<=", fn)

    def in_memory(budget: Budget) -> tuple[float, str]:
        with tempfile.TemporaryDirectory(prefix="certfleet-bench-", dir=SHM) as shm:
            try:
                proc = b.fresh_run(count, RA, budget, state=Path(shm) / "state")
            except TimedOut as exc:
                raise BenchError(f"the {count}-certificate run timed out") from exc
        return proc.cpu / count * 1000, f"{proc.cpu:.1f} s user+sys, {proc.system:.1f} s " \
            f"of it in the kernel: the same run with its state directory on tmpfs ({SHM})"

    if Path(SHM).is_dir():  # the kernel's share of the row above is mostly the filesystem's
        b.measure("6", f"the same, state on tmpfs ({count}-run)", "ms", 30, "<=", in_memory)
    if b.args.profile:
        b.profile(count)


FIGURES: dict[str, Callable[[Bench], None]] = {
    "orders": orders, "requests": requests, "cpu": cpu, "issue": issue, "memory": memory,
    "startup": startup, "noop": noop,
}
NUMBERS = {"1": ["orders"], "2": ["issue"], "3": ["requests"], "4": ["startup"],
           "5": ["noop", "memory"], "6": ["cpu"]}


def chosen(only: str | None) -> list[str]:
    if not only:
        return list(FIGURES)
    wanted: set[str] = set()
    for item in filter(None, (x.strip() for x in only.split(","))):
        if item not in FIGURES and item not in NUMBERS:
            raise SystemExit(f"--only: unknown figure {item!r}; one of "
                             f"{', '.join(FIGURES)} or 1-6")
        wanted.update(NUMBERS.get(item, [item]))
    return [name for name in FIGURES if name in wanted]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the certfleet source tree to measure (default: %(default)s)")
    parser.add_argument("--only", metavar="NAME,...", help=", ".join(FIGURES) + " or 1-6")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    parser.add_argument("--timeout", type=float, default=900, metavar="S",
                        help="measured seconds per figure before it is stopped and "
                        "reported as timed out (default: %(default)s)")
    parser.add_argument("--write", nargs="?", const=str(ROOT / "bench" / "FIGURES.md"),
                        metavar="FILE", help="write the figures into a section of FILE "
                        "(default: bench/FIGURES.md; a full run of this repository's tree "
                        "writes it anyway)")
    parser.add_argument("--section", default="after", metavar="NAME",
                        help="the section of the figures file to rewrite; the rest is kept "
                        "(default: %(default)s; 'before' for the tree before the speed work)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--profile", nargs="?", const=str(CACHE / "cpu.prof"),
                        metavar="FILE", help="figure 6: profile the run with cProfile too "
                        "(default file: .cache/bench/cpu.prof)")
    parser.add_argument("--cache", default=str(CACHE), metavar="DIR",
                        help="where states of 10,000 and more stored certificates are kept "
                        "('none': build them afresh in a temporary directory; default: "
                        "%(default)s)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for certfleet (default: this one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    names = chosen(args.only)
    sizes = QUICK if args.quick else FULL
    raise_fd_limit()
    try:
        tree = Tree(args.tree, args.python)
        version = tree.check()
    except BenchError as exc:
        raise SystemExit(f"--tree {args.tree}: {exc}") from None
    about = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "tree": str(tree.root),
             "HEAD": tree.head(), "certfleet": version, **machine(),
             "figures": ", ".join(names) + (" (--quick counts)" if args.quick else "")}
    command = shlex.join([sys.executable, *sys.argv] if argv is None else argv)
    for key, value in about.items():
        print(f"{key}: {value}")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="certfleet-bench-") as tmp:
        bench = Bench(tree, args, sizes, Path(tmp))
        try:
            for name in names:
                FIGURES[name](bench)
        finally:
            bench.close_lab()
    results = sorted(bench.results, key=lambda r: r.key)  # the issue's order (stable)
    print("\n" + table(results))
    full = not args.only and not args.quick and tree.root == ROOT.resolve()
    if args.write or full:
        path = Path(args.write or ROOT / "bench" / "FIGURES.md")
        write_markdown(path, results, about, command, args.section)
        print(f"written: {path} (section {args.section!r})")
    if args.json:
        write_json(Path(args.json), results, about, command)
        print(f"written: {args.json}")
    return 1 if any(r.status == "ERROR" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
