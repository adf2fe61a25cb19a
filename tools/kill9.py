"""Crash safety of ``certfleet run`` under ``kill -9``: a campaign against a local Pebble.

Usage (by hand)::

    .venv/bin/python tools/kill9.py --rounds 50 --certs 30 [--seed N] [--workdir DIR]

What it does:

1. starts a Pebble lab on 127.0.0.1 (``PEBBLE_VA_NOSLEEP=1``, ``PEBBLE_AUTHZREUSE=0``,
   ``retryAfter`` 0 for authorizations and orders, so runs are fast);
2. writes a domains file of ``--certs`` certificates: every third has two names, every
   second has a local deploy target directory, every sixth a second one;
3. calibrates: one normal ``certfleet run`` over the same kind of domains file in a
   separate state directory gives the expected run time ``T``;
4. runs ``python -m certfleet run --config ...`` as a subprocess ``--rounds`` times on the
   SAME state directory, each time sending SIGKILL at a moment drawn uniformly from
   ``[0, T]`` (the first rounds plain, so first issuance is killed midway; later rounds
   mostly ``--force``, so renewals are killed midway too); a ``--force`` round that
   finishes before its kill measures ``T`` anew, so a machine whose load drops keeps
   killing runs midway;
5. checks the invariants below, runs once more without a kill, checks them again.

Invariants (each breach is a "violation" with the path and what is wrong):

* every certificate with a ``current`` version: ``privkey.pem`` matches ``cert.pem``
  (equal public keys), ``fullchain.pem`` is ``cert.pem + chain.pem``, ``meta.json``
  parses and its serial and names match the certificate; the stable links
  ``STATE/certs/<name>/{cert,chain,fullchain,privkey}.pem`` resolve to ``current/``;
* a ``pending/privkey.pem`` (the key of an order still in flight) is never the active
  key and is never older than the activation of the current version (activation
  consumes it), and never exists for a certificate the last completed run issued;
* no file or directory with ``.tmp-`` in its name anywhere under the state directory is
  older than the start of the last run, and no ``.certfleet-tmp-`` file in any deploy
  target (after the final, unkilled run: none at all);
* after the final run: it exits 0 or 2, every certificate is issued, and every deploy
  target holds the current version's four files (SHA-256 compared);
* orders: Pebble's log ("Added order ...") counts the orders. Every order either ends in
  a stored version (version numbers only grow, and pruning keeps the newest, so the
  highest version number of a certificate is the number of its completed orders) or is
  lost when a run is killed with it in flight, and a run has at most ``concurrency``
  orders in flight. So ``sum(max version) <= orders <= sum(max version) + concurrency x
  killed runs``, and, coarser, ``orders <= certs x (1 + forced rounds) + concurrency x
  killed runs`` (one first issuance per certificate, one renewal per forced round).

The seed (printed) decides which rounds are forced and where within ``[0, T]`` each kill
falls; what the run was doing at that moment is only approximately reproducible (it
depends on the machine's speed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

_TOOLS = str(Path(__file__).resolve().parent)
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)

from labconfig import write_config  # noqa: E402
from pebble_lab import PebbleLab  # noqa: E402

PEMS = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
STATE_TMP_MARK = ".tmp-"
TARGET_TMP_PREFIX = ".certfleet-tmp-"
CONCURRENCY = 4
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0"}
PEBBLE_CONFIG = {"retryAfter": {"authz": 0, "order": 0}}
ORDER_LINE = re.compile(r'Added order "[^"]+"')
# Pebble indexes issued orders by the hex of the serial without the DER padding byte, so a
# newOrder whose ``replaces`` names a serial with the high bit of its first byte set (one
# serial in 256) fails with serverInternal. A defect of the test CA, not of certfleet; the
# campaign notes it instead of counting it, and only for such serials.
PEBBLE_REPLACES_DEFECT = "could not find order resulting in the given certificate serial number"


# --------------------------------------------------------------------------- the fleet


@dataclass(frozen=True)
class CertDef:
    names: tuple[str, ...]
    targets: tuple[Path, ...]

    @property
    def name(self) -> str:
        return self.names[0]

    def line(self) -> str:
        targets = " ".join(str(t) for t in self.targets)
        return " ".join(self.names) + (f"|{targets}" if targets else "")


def make_fleet(count: int, targets_root: Path, label: str = "kill9") -> list[CertDef]:
    """``count`` certificates: every third with two names, every second with a local
    deploy target, every sixth with two. Target directories are created, each named after
    its certificate (the directory of its own the files go straight into)."""
    certs = []
    for i in range(count):
        name = f"k{i:02d}.{label}.example.com"
        names = (name, f"www.{name}") if i % 3 == 1 else (name,)
        targets: list[Path] = []
        if i % 2 == 0:
            targets.append(targets_root / "a" / name)
        if i % 6 == 0:
            targets.append(targets_root / "b" / name)
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
        certs.append(CertDef(names, tuple(targets)))
    return certs


def write_fleet(folder: Path, lab: PebbleLab, certs: Sequence[CertDef]) -> Path:
    """domains.txt and certfleet.toml in ``folder``; the state directory is folder/state."""
    folder.mkdir(parents=True, exist_ok=True)
    domains = folder / "domains.txt"
    domains.write_text("".join(c.line() + "\n" for c in certs))
    return write_config(folder / "certfleet.toml", lab, folder / "state", domains,
                        concurrency=CONCURRENCY)


def child_env() -> dict[str, str]:
    """The environment of a certfleet run: ours without CERTFLEET_* and proxy settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTFLEET_") and "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def run_command(config: Path, force: bool) -> list[str]:
    return [sys.executable, "-m", "certfleet", "run", "--config", str(config),
            *(["--force"] if force else [])]


def orders_seen(lab: PebbleLab) -> int:
    return len(ORDER_LINE.findall(lab.log_text()))


# --------------------------------------------------------------------------- invariants


def _public_der(key_or_cert_key: Any) -> bytes:
    return bytes(key_or_cert_key.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def _key_public(pem: bytes) -> bytes:
    return _public_der(serialization.load_pem_private_key(pem, None).public_key())


def _cert_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return sorted(str(n) for n in san.value.get_values_for_type(x509.DNSName))


def current_version(cert_dir: Path) -> Path | None:
    """The version directory ``current`` points at, or None if there is no ``current``."""
    link = cert_dir / "current"
    if not link.is_symlink() and not link.exists():
        return None
    return cert_dir / os.readlink(link)


def check_version(cert_dir: Path, names: Sequence[str] | None = None) -> list[str]:
    """The invariants of one certificate directory's active version and pending key."""
    where = cert_dir.name
    problems: list[str] = []
    link = cert_dir / "current"
    if not link.is_symlink():
        if link.exists():
            problems.append(f"{where}: current is not a symlink")
        version = None
    else:
        target = os.readlink(link)
        version = cert_dir / target
        if not re.fullmatch(r"versions/[0-9]+", target) or not version.is_dir():
            problems.append(f"{where}: current -> {target!r} does not resolve to a version")
            version = None
    files: dict[str, bytes] = {}
    if version is not None:
        for pem in (*PEMS, "meta.json"):
            try:
                files[pem] = (version / pem).read_bytes()
            except OSError as exc:
                problems.append(f"{where}: {version.name}/{pem}: {exc.strerror or exc}")
    if version is not None and len(files) == len(PEMS) + 1:
        problems += _check_files(where, version.name, files, names)
        for pem in PEMS:  # the stable paths nginx reads
            stable = cert_dir / pem
            if not stable.is_symlink() or os.readlink(stable) != f"current/{pem}":
                problems.append(f"{where}: {pem} is not a link to current/{pem}")
            elif not stable.exists() or stable.read_bytes() != files[pem]:
                problems.append(f"{where}: {pem} does not resolve to the current version")
    problems += _shared_keys(cert_dir)
    pending = cert_dir / "pending" / "privkey.pem"
    if pending.exists():
        if "privkey.pem" in files and pending.read_bytes() == files["privkey.pem"]:
            problems.append(f"{where}: pending/privkey.pem is the active key (activation did "
                            "not consume it; the next renewal would reuse it)")
        elif link.is_symlink() and pending.stat().st_mtime_ns < link.lstat().st_mtime_ns:
            problems.append(f"{where}: pending/privkey.pem is older than the activation of "
                            "the current version and was not removed")
    return problems


def _shared_keys(cert_dir: Path) -> list[str]:
    """Versions that share a private key (the default is a new key for every version) or
    a serial (a renewal that stored the same certificate again)."""
    keys: dict[bytes, str] = {}
    serials: dict[str, str] = {}
    problems = []
    versions = cert_dir / "versions"
    numbers = sorted(int(p.name) for p in versions.iterdir() if p.name.isdigit()) \
        if versions.is_dir() else []
    for number in numbers:
        try:
            key = (versions / str(number) / "privkey.pem").read_bytes()
            serial = str(json.loads((versions / str(number) / "meta.json").read_text())
                         ["serial"])
        except (OSError, ValueError, KeyError):
            continue  # check_version reports the active version's damage
        if key in keys:
            problems.append(f"{cert_dir.name}: versions {keys[key]} and {number} share a "
                            "private key (reuse_key is off)")
        if serial in serials:
            problems.append(f"{cert_dir.name}: versions {serials[serial]} and {number} are "
                            f"the same certificate (serial {serial})")
        keys.setdefault(key, str(number))
        serials.setdefault(serial, str(number))
    return problems


def _check_files(where: str, version: str, files: dict[str, bytes],
                 names: Sequence[str] | None) -> list[str]:
    problems = []
    try:
        cert = x509.load_pem_x509_certificate(files["cert.pem"])
    except ValueError as exc:
        return [f"{where}: {version}/cert.pem unreadable: {exc}"]
    try:
        if _key_public(files["privkey.pem"]) != _public_der(cert.public_key()):
            problems.append(f"{where}: {version}/privkey.pem does not match cert.pem")
    except (ValueError, TypeError) as exc:
        problems.append(f"{where}: {version}/privkey.pem unreadable: {exc}")
    if files["fullchain.pem"] != files["cert.pem"] + files["chain.pem"]:
        problems.append(f"{where}: {version}/fullchain.pem is not cert.pem + chain.pem")
    try:
        meta = json.loads(files["meta.json"])
        if int(str(meta["serial"]), 16) != cert.serial_number:
            problems.append(f"{where}: {version}/meta.json serial {meta['serial']} is not "
                            f"the certificate's {cert.serial_number:x}")
        if str(meta["version"]) != version:
            problems.append(f"{where}: {version}/meta.json says version {meta['version']}")
        if sorted(meta["names"]) != _cert_names(cert):
            problems.append(f"{where}: {version}/meta.json names {meta['names']} are not the "
                            f"certificate's {_cert_names(cert)}")
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"{where}: {version}/meta.json damaged: {exc!r}")
    if names is not None and _cert_names(cert) != sorted(names):
        problems.append(f"{where}: {version}/cert.pem names {_cert_names(cert)} are not the "
                        f"configured {sorted(names)}")
    return problems


def leftovers(roots: Iterable[Path], mark: str, before: float | None) -> list[str]:
    """Names containing ``mark`` under ``roots`` (links not followed) whose mtime is older
    than ``before`` (a time.time() value; None: any age)."""
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for entry in (*dirs, *files):
                path = Path(folder) / entry
                if mark not in entry:
                    continue
                try:
                    mtime = path.lstat().st_mtime
                except FileNotFoundError:
                    continue
                if before is None or mtime < before:
                    age = f"{time.time() - mtime:.1f}s old"
                    found.append(f"crash leftover {path} ({age})")
    return found


def check_fleet(state: Path, certs: Sequence[CertDef], *, since: float | None,
                final: bool = False) -> list[str]:
    """Every invariant over the state directory and the deploy targets.

    ``since``: leftovers older than this (the start of the last run that ran to its end)
    are violations; None: every leftover is. ``final``: also require every certificate
    issued and every target up to date.
    """
    problems: list[str] = []
    certs_dir = state / "certs"
    for cert in certs:
        cert_dir = certs_dir / cert.name
        if not cert_dir.is_dir():
            if final:
                problems.append(f"{cert.name}: never issued")
            continue
        problems += check_version(cert_dir, cert.names)
        version = current_version(cert_dir)
        if final and version is None:
            problems.append(f"{cert.name}: not issued after the final run")
        if final and version is not None and version.is_dir():
            for target in cert.targets:
                for pem in PEMS:
                    want = _sha(version / pem)
                    got = _sha(target / pem)
                    if got != want:
                        problems.append(f"{cert.name}: target {target}/{pem} is not the "
                                        f"current {version.name} ({got and got[:12]} != "
                                        f"{want and want[:12]})")
    problems += leftovers([state], STATE_TMP_MARK, since)
    problems += leftovers([t for c in certs for t in c.targets], TARGET_TMP_PREFIX, since)
    return problems


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def completed_run_problems(state: Path, stdout: str) -> list[str]:
    """After a run that finished: a certificate it issued has no pending key left."""
    problems = []
    for line in stdout.splitlines():
        match = re.match(r"([^:\s]+): (issued|renewed) ", line)
        if match and (state / "certs" / match[1] / "pending" / "privkey.pem").exists():
            problems.append(f"{match[1]}: {match[2]} by a completed run, but "
                            "pending/privkey.pem is still there")
    return problems


def needs_padding(state: Path, name: str) -> int | None:
    """The serial of ``name``'s active version if its DER content has a padding zero byte
    (the serials Pebble's replaces lookup cannot find), else None."""
    try:
        meta = json.loads((state / "certs" / name / "current" / "meta.json").read_text())
        serial = int(str(meta["serial"]), 16)
    except (OSError, ValueError, KeyError):
        return None
    return serial if serial.bit_length() % 8 == 0 else None


def failures(state: Path, stdout: str) -> tuple[list[str], list[str]]:
    """The failure lines of a finished run's output: (real ones, known Pebble defects)."""
    real, defects = [], []
    for line in stdout.splitlines():
        name = line.split(":", 1)[0]
        deployed = re.search(r"deployed to (\d+)/(\d+) targets", line)
        bad_deploy = deployed is not None and deployed[1] != deployed[2]
        if ": failed: " not in line and not bad_deploy:
            continue
        serial = needs_padding(state, name)
        if PEBBLE_REPLACES_DEFECT in line and serial is not None and not bad_deploy:
            defects.append(f"{name}: Pebble cannot find the order of serial {serial:x} "
                           f"(DER content 00{serial:x}) named in replaces: {line}")
        else:
            real.append(line)
    return real, defects


def version_counts(state: Path, certs: Sequence[CertDef]) -> dict[str, int]:
    """The highest version number of each certificate: its number of completed orders."""
    counts = {}
    for cert in certs:
        folder = state / "certs" / cert.name / "versions"
        numbers = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] \
            if folder.is_dir() else []
        counts[cert.name] = max(numbers, default=0)
    return counts


# --------------------------------------------------------------------------- the campaign


@dataclass
class Round:
    index: int
    force: bool
    kill_at: float          # seconds after start at which SIGKILL was due
    killed: bool            # False: the run had already exited
    rc: int | None
    duration: float


@dataclass
class Report:
    seed: int
    certs: int
    expected: float = 0.0
    rounds: list[Round] = field(default_factory=list)
    orders: int = 0
    orders_before: int = 0
    bound_coarse: int = 0
    bound_low: int = 0
    bound_high: int = 0
    final_rc: int | None = None
    final_output: str = ""
    violations: list[str] = field(default_factory=list)
    pebble_defects: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def killed(self) -> int:
        return sum(r.killed for r in self.rounds)

    @property
    def forced(self) -> int:
        return sum(r.force for r in self.rounds)

    def summary(self) -> str:
        lines = [f"kill9: seed {self.seed}, {self.certs} certificates, expected run time "
                 f"{self.expected:.2f}s, {len(self.rounds)} rounds ({self.forced} with "
                 f"--force), {self.killed} killed, {self.elapsed:.0f}s in all"]
        for r in self.rounds:
            what = "killed" if r.killed else f"exited {r.rc}"
            lines.append(f"  round {r.index:3d}: {'--force' if r.force else 'plain  '} "
                         f"kill at {r.kill_at:6.2f}s: {what} after {r.duration:.2f}s")
        lines.append(f"final run: exit {self.final_rc}")
        lines.append(f"orders: {self.orders} (bound: {self.bound_low} <= orders <= "
                     f"{self.bound_high}; coarse bound {self.bound_coarse} = certs x (1 + "
                     f"{self.forced} forced) + {CONCURRENCY} x {self.killed} killed)")
        if self.pebble_defects:
            lines.append(f"known Pebble defect, not counted ({len(self.pebble_defects)}):")
            lines += [f"  {d}" for d in self.pebble_defects]
        lines.append(f"violations: {len(self.violations)}")
        lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)


def _note(report: Report, seen: set[str], when: str, problems: Iterable[str]) -> None:
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            report.violations.append(f"{when}: {problem}")


def _exit_problems(report: Report, state: Path, rc: int | None, output: str) -> list[str]:
    """A finished run exits 0 or 2, or 1 only for the known Pebble defect."""
    real, defects = failures(state, output)
    for defect in defects:
        if defect.split(":", 1)[0] not in {d.split(":", 1)[0] for d in report.pebble_defects}:
            report.pebble_defects.append(defect)
    if real or rc not in (0, 1, 2) or (rc == 1 and not defects):
        return [f"exit {rc}: " + ("; ".join(real) or repr(output))]
    return []


def _timed_run(config: Path, force: bool, log: Path, timeout: float) -> tuple[int, str, float]:
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(run_command(config, force), stdout=subprocess.PIPE,
                              stderr=out, text=True, env=child_env(), timeout=timeout,
                              check=False)
    return proc.returncode, proc.stdout, time.monotonic() - started


def campaign(workdir: Path, *, rounds: int, certs: int, seed: int,
             expected: float | None = None, plain_rounds: int = 3,
             force_probability: float = 0.75, lab: PebbleLab | None = None,
             progress: bool = False) -> Report:
    """Run the whole campaign in ``workdir``; return the report (violations included)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    report = Report(seed=seed, certs=certs)
    began = time.monotonic()
    own_lab = lab is None
    if lab is None:
        lab = PebbleLab(workdir / "pebble", env=PEBBLE_ENV, config=PEBBLE_CONFIG).start()
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        if expected is None:  # one normal run of the same shape in its own state dir
            calib = make_fleet(certs, workdir / "calib-targets", label="calib")
            config = write_fleet(workdir / "calib", lab, calib)
            calib_rc, calib_out, report.expected = _timed_run(
                config, False, logs / "calibration.err", timeout=600)
            if calib_rc != 0:
                raise RuntimeError(f"calibration run failed (exit {calib_rc}):\n{calib_out}")
        else:
            report.expected = expected
        report.orders_before = orders_seen(lab)

        fleet = make_fleet(certs, workdir / "targets")
        config = write_fleet(workdir / "fleet", lab, fleet)
        state = workdir / "fleet" / "state"
        seen: set[str] = set()
        # Leftovers older than the start of the last round that ran to its end are
        # violations: that run swept what dead runs had left. A round killed early (before
        # its own sweep) proves nothing about older leftovers; the final run sweeps them.
        swept_since = 0.0
        pace = report.expected   # a full run's time, as last measured
        for index in range(rounds):
            force = index >= plain_rounds and rng.random() < force_probability
            kill_at = rng.uniform(0.0, pace)
            round_start = time.time()
            started = time.monotonic()
            with open(logs / f"round-{index:03d}.out", "w") as out_file, \
                    open(logs / f"round-{index:03d}.err", "w") as err_file:
                proc = subprocess.Popen(run_command(config, force), stdout=out_file,
                                        stderr=err_file, env=child_env())
                try:
                    rc: int | None = proc.wait(timeout=kill_at)
                    killed = False
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    rc, killed = None, True
            duration = time.monotonic() - started
            report.rounds.append(Round(index, force, kill_at, killed, rc, duration))
            if not killed:
                swept_since = round_start
            if force and rc == 0:
                # A --force run that finished renewed every certificate, faster than its
                # kill moment: T as the machine runs now. On a shared machine whose load
                # drops after the calibration, the kills still land within the runs.
                pace = duration
            if progress:
                what = "killed" if killed else f"exited {rc}"
                print(f"round {index}: {'--force ' if force else ''}kill at {kill_at:.2f}s: "
                      f"{what}", file=sys.stderr)
            problems = [p for c in fleet for p in check_version(state / "certs" / c.name)
                        if (state / "certs" / c.name).is_dir()]
            if not killed:
                output = (logs / f"round-{index:03d}.out").read_text()
                problems += completed_run_problems(state, output)
                problems += _exit_problems(report, state, rc, output)
            _note(report, seen, f"round {index}", problems)

        _note(report, seen, "after the kill rounds",
              check_fleet(state, fleet, since=swept_since - 0.02))

        final_rc, out, _ = _timed_run(config, False, logs / "final.err",
                                      timeout=max(120.0, 10 * report.expected))
        report.final_rc, report.final_output = final_rc, out
        (logs / "final.out").write_text(out)
        _note(report, seen, "final run", _exit_problems(report, state, final_rc, out))
        final = check_fleet(state, fleet, since=None, final=True)
        final += completed_run_problems(state, out)
        _note(report, seen, "after the final run", final)

        report.orders = orders_seen(lab) - report.orders_before
        completed = sum(version_counts(state, fleet).values())
        report.bound_low = completed
        report.bound_high = completed + CONCURRENCY * report.killed
        report.bound_coarse = certs * (1 + report.forced) + CONCURRENCY * report.killed
        if not report.bound_low <= report.orders <= min(report.bound_high,
                                                         report.bound_coarse):
            _note(report, seen, "orders", [
                f"Pebble saw {report.orders} orders, outside {report.bound_low}.."
                f"{min(report.bound_high, report.bound_coarse)}"])
    finally:
        if own_lab:
            lab.stop()
        report.elapsed = time.monotonic() - began
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--certs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None,
                        help="RNG seed (default: random, printed)")
    parser.add_argument("--expected", type=float, default=None,
                        help="expected run time in seconds (default: measured)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep everything here (default: a temporary directory)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"kill9: seed {seed}", file=sys.stderr)
    if args.workdir is not None:
        report = campaign(args.workdir, rounds=args.rounds, certs=args.certs, seed=seed,
                          expected=args.expected, progress=True)
    else:
        with tempfile.TemporaryDirectory(prefix="kill9-") as tmp:
            report = campaign(Path(tmp), rounds=args.rounds, certs=args.certs, seed=seed,
                              expected=args.expected, progress=True)
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
