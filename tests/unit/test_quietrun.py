"""quietrun.py: a run with nothing to do is recorded, and the next one made from the same
inputs prints its lines again without planning; any input a plan reads that changed since,
and the run is made in full again.

Each ``certfleet run`` is a real process over a real state directory (certificates stored
with synthetic PEM files, never parsed) and a CA that cannot be reached (127.0.0.1:9): a
run that would ask it fails, so a replay that hid a due certificate would show. Whether a
run replayed is seen on the record: a replay never writes it, a full quiet run writes a new
one (``made``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certfleet import quietrun
from certfleet.fsutil import TMP_MARK
from certfleet.plan import CertPlan
from certfleet.report import Outcome
from certfleet.spec import CertSpec
from certfleet.standing import NOTHING
from certfleet.state import CertState
from certfleet.store import Snapshot, Store, VersionMeta

from .pki import version_files

NAMES = ("www.example.com", "www.example.net", "mail.example.org")
HOUR_NS = 3600 * 10**9


def _age(state: Path) -> None:
    """Certificate directories last changed an hour ago (a change within two seconds of a
    run is not trusted, and such a run records nothing)."""
    old = time.time_ns() - HOUR_NS
    for folder in (state / "certs").iterdir():
        os.utime(folder, ns=(old, old))


def _store(state: Path, names: tuple[str, ...] = NAMES, days_left: int = 60) -> Store:
    store = Store(state)
    now = datetime.now(UTC)
    for name in names:
        meta = VersionMeta(
            version=1, names=(name,), key_type="ec256", serial=0x1234, issuer="CN=Test",
            not_before=(now - timedelta(days=90 - days_left)).isoformat(),
            not_after=(now + timedelta(days=days_left)).isoformat(), aki="",
            issued_at=now.isoformat(), directory="https://127.0.0.1:9/dir", order_url="")
        store.activate(name, version_files(name), meta)
    store.write_clock({"checked_at": now.isoformat()})
    _age(state)
    return store


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A configuration over three stored certificates, none due; returns its path."""
    state = tmp_path / "state"
    _store(state)
    domains = tmp_path / "domains.txt"
    domains.write_text("".join(f"{name}\n" for name in NAMES))
    config = tmp_path / "certfleet.toml"
    config.write_text(f'state_dir = "{state}"\ndomains = "{domains}"\n'
                      '[ca]\ndirectory = "https://127.0.0.1:9/dir"\n'
                      '[challenge]\nwebroot = "/var/www/acme"\n')
    for file in (domains, config):
        file.chmod(0o600)
    return config


def run(config: Path, *args: str, env: dict[str, str] | None = None,
        ) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "certfleet", "run", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=120, check=False,
                          env={k: v for k, v in {**os.environ, **(env or {})}.items()
                               if not k.startswith("CERTFLEET_") or k in (env or {})})
    return proc.returncode, proc.stdout, proc.stderr


def record(config: Path) -> Path:
    return config.parent / "state" / quietrun.NAME


def made(config: Path) -> float | None:
    try:
        return float(json.loads(record(config).read_text())["made"])
    except FileNotFoundError:
        return None


def recorded(config: Path) -> tuple[int, str]:
    """A first run that records; returns its exit code and output."""
    code, out, err = run(config)
    assert (code, err) == (2, "")
    assert made(config) is not None
    return code, out


def test_a_quiet_run_is_replayed_word_for_word(lab: Path) -> None:
    _, out = recorded(lab)
    assert out.splitlines()[-1] == "3 certificates: 3 not due"
    assert all(f"{name}: not due until " in out for name in NAMES)
    first = made(lab)
    assert run(lab) == (2, out, "")
    assert made(lab) == first                      # replayed: the record was not rewritten
    assert record(lab).stat().st_mode & 0o777 == 0o600
    assert run(lab, "-q") == (2, "", "")           # quiet: nothing to say, as a full run
    assert made(lab) == first


def test_the_replay_loads_nothing_of_a_full_run(lab: Path) -> None:
    recorded(lab)
    # The process ends after its exit handlers (cli.entry): one of them reports.
    probe = ("import atexit, sys, runpy\n"
             "sys.argv = ['certfleet', 'run', '--config', sys.argv[1]]\n"
             "atexit.register(lambda: print('asyncio' in sys.modules,"
             " 'certfleet.fleet' in sys.modules, flush=True))\n"
             "runpy.run_module('certfleet', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", probe, str(lab)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr  # nothing to do
    assert proc.stdout.splitlines()[-1] == "False False"


@pytest.mark.parametrize("change", [
    "config", "domains-comment", "environment", "option", "clock", "record-damaged",
])
def test_a_changed_input_means_a_full_run(lab: Path, change: str) -> None:
    _, before = recorded(lab)
    first = made(lab)
    env: dict[str, str] = {}
    args: list[str] = []
    if change == "config":
        lab.write_text(lab.read_text() + "# reviewed\n")
    elif change == "domains-comment":
        domains = lab.parent / "domains.txt"
        domains.write_text("# the same certificates\n" + domains.read_text())
    elif change == "environment":
        env["CERTFLEET_DIRECTORY"] = "https://127.0.0.1:9/other"
    elif change == "option":
        args = ["--concurrency", "3"]
    elif change == "clock":
        Store(lab.parent / "state").write_clock(
            {"checked_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
    elif change == "record-damaged":
        record(lab).write_text('{"format": 1, "key": [')
    time.sleep(0.01)  # a full run's record is made later than the first
    code, out, err = run(lab, *args, env=env)
    assert (code, out, err) == (2, before, "")
    assert made(lab) is not None
    assert made(lab) != first                         # planned again, and recorded


def test_a_new_certificate_in_the_domains_file_is_ordered(lab: Path) -> None:
    recorded(lab)
    domains = lab.parent / "domains.txt"
    domains.write_text(domains.read_text() + "new.example.com\n")
    code, out, _ = run(lab)
    assert code == 1
    assert "new.example.com: failed: " in out       # the CA was asked (and cannot answer)


def test_a_certificate_changed_since_is_planned_again(lab: Path) -> None:
    _, before = recorded(lab)
    store = Store(lab.parent / "state")
    assert store.try_lock("www.example.net")
    try:
        store.update_state("www.example.net", lambda s: s.revoked(0x1234, datetime.now(UTC)))
    finally:
        store.unlock("www.example.net")
    code, out, _ = run(lab)
    assert code == 1                                  # revoked: due, and the CA cannot answer
    assert "www.example.net: failed: " in out
    assert out != before


def test_a_certificate_changed_in_the_same_second_is_not_trusted(lab: Path) -> None:
    state = lab.parent / "state"
    os.utime(state / "certs" / "www.example.com")     # changed just now
    code, _, _ = run(lab)
    assert code == 2
    assert made(lab) is None                          # quiet, but not recorded


def test_a_killed_run_is_swept_by_a_full_run(lab: Path) -> None:
    recorded(lab)
    first = made(lab)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    runs = lab.parent / "state" / "runs"
    (runs / dead).touch()
    leftover = lab.parent / "state" / "certs" / "www.example.com" / \
        f".cert.pem{TMP_MARK}{dead}-0123456789ab"
    leftover.write_text("half")
    assert run(lab)[0] == 2
    assert not (runs / dead).exists()
    assert not leftover.exists()
    assert made(lab) == first   # the sweep changed a certificate directory: not recorded


def test_a_run_while_another_holds_the_fleet_stops_as_before(lab: Path) -> None:
    recorded(lab)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
         "os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); "
         "os.write(fd, b'4242'); print(1, flush=True); time.sleep(60)",
         str(lab.parent / "state" / "fleet.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "1\n"
        code, out, err = run(lab)
    finally:
        holder.kill()
        holder.wait()
    assert (code, out) == (1, "")
    assert "another certfleet run (pid 4242) is working on the whole fleet" in err


@pytest.mark.parametrize("plant", ["fifo", "symlink"])
def test_a_record_planted_by_someone_else_is_not_read(lab: Path, plant: str) -> None:
    _, before = recorded(lab)
    path = record(lab)
    copy = lab.parent / "copy.json"
    copy.write_bytes(path.read_bytes())
    path.unlink()
    if plant == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(copy)
    assert run(lab) == (2, before, "")               # planned in full, no hang
    assert path.is_file()                            # and a record of its own in its place
    assert not path.is_symlink()


@pytest.mark.parametrize("args", [["www.example.com"], ["--force"], ["--dry-run"], ["-v"]])
def test_only_a_plain_run_replays(lab: Path, args: list[str]) -> None:
    recorded(lab)
    record(lab).write_text(record(lab).read_text().replace("not due until", "NOT DUE UNTIL"))
    assert "NOT DUE UNTIL" in run(lab)[1]           # the doctored record shows it is read
    _, out, _ = run(lab, *args)
    assert "NOT DUE UNTIL" not in out


def test_a_run_that_writes_metrics_records_nothing(lab: Path) -> None:
    metrics = lab.parent / "metrics.prom"
    lab.write_text(lab.read_text() + f'[metrics]\ntextfile = "{metrics}"\n')
    assert run(lab)[0] == 2
    assert made(lab) is None
    assert metrics.exists()


def test_a_run_that_deployed_records_nothing_until_it_has_nothing_to_do(lab: Path) -> None:
    site = lab.parent / "site"
    site.mkdir()
    domains = lab.parent / "domains.txt"
    domains.write_text(f"www.example.com|{site}\nwww.example.net\nmail.example.org\n")
    code, out, _ = run(lab)
    assert code == 0
    assert "deployed to 1/1 targets" in out
    assert made(lab) is None
    _age(lab.parent / "state")
    assert run(lab)[0] == 2
    assert made(lab) is not None


# -- the time a record holds, and what makes a run quiet (pure) ------------------------------

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _plan(name: str, renew_at: datetime | None, **kw: object) -> CertPlan:
    return CertPlan(CertSpec(names=(name,)), kw.pop("due", None), renew_at, (),  # type: ignore[arg-type]
                    **kw)  # type: ignore[arg-type]


def _snap(not_after: datetime, **kw: object) -> Snapshot:
    held = NOTHING._replace(names=("x",), not_after=not_after.timestamp(), **kw)  # type: ignore[arg-type]
    return Snapshot(None, CertState(), None, held)


def test_quiet_until_the_earliest_change() -> None:
    plans = [_plan("a", NOW + timedelta(days=20)), _plan("b", NOW + timedelta(days=5))]
    snaps = {"a": _snap(NOW + timedelta(days=50)), "b": _snap(NOW + timedelta(days=4))}
    outcomes = [Outcome("a"), Outcome("b")]
    clock = {"checked_at": NOW.isoformat()}
    # b expires before its renewal time; the clock comparison is due in a day
    assert quietrun.quiet_until(plans, snaps, outcomes, clock, False) == \
        (NOW + timedelta(days=4)).timestamp()
    assert quietrun.quiet_until(plans, snaps, outcomes, clock, True) == \
        (NOW + timedelta(days=1)).timestamp()
    snaps["a"] = _snap(NOW + timedelta(days=50), has_aki=True,
                       ari_fetch_at=(NOW + timedelta(hours=6)).timestamp())
    assert quietrun.quiet_until(plans, snaps, outcomes, clock, True) == \
        (NOW + timedelta(hours=6)).timestamp()


@pytest.mark.parametrize("spoil", [
    "due", "blocked", "deferred", "backoff", "never issued", "failures", "waiting",
    "ari never fetched", "damaged", "outcome failed", "clock never compared"])
def test_not_quiet(spoil: str) -> None:
    kw: dict[str, object] = {}
    if spoil in ("due", "blocked", "deferred", "backoff"):
        kw[spoil] = "why"
    plan = _plan("a", None if spoil == "never issued" else NOW + timedelta(days=9), **kw)
    held: dict[str, object] = {"failures": 2} if spoil == "failures" else \
        {"waiting_until": NOW.timestamp()} if spoil == "waiting" else \
        {"has_aki": True} if spoil == "ari never fetched" else {}
    snap = _snap(NOW + timedelta(days=30), **held)
    if spoil == "damaged":
        snap = Snapshot(None, CertState(), "cannot read", snap.standing)
    outcome = Outcome("a", error="boom" if spoil == "outcome failed" else None)
    clock = {} if spoil == "clock never compared" else {"checked_at": NOW.isoformat()}
    assert quietrun.quiet_until([plan], {"a": snap}, [outcome], clock, True) is None


def test_a_record_holds_from_when_it_was_made_until_its_end(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _store(state, names=("a.example",))
    given = quietrun.inputs({}, {}, [])
    assert given is not None
    made_ns = int(NOW.timestamp() * 1e9)
    # The directory as it would be: changed before the run planned (NOW is fixed, the
    # directory was made just now, and a change after planning would void the record).
    os.utime(state / "certs" / "a.example", ns=(made_ns - 10**10, made_ns - 10**10))
    seen = quietrun.marks(state, ["a.example"])
    until = (NOW + timedelta(days=3)).timestamp()
    quietrun.keep(state, given, names=["a.example"], seen=seen, planned_ns=made_ns,
                  until=until, outcomes=[Outcome("a.example")], clock={"c": 1})
    lines = (["a.example: not due"], "1 certificate: 1 not due")
    assert quietrun.replay(state, given, NOW, {"c": 1}) == lines
    assert quietrun.replay(state, given, NOW + timedelta(days=3) - timedelta(seconds=1),
                           {"c": 1}) == lines
    assert quietrun.replay(state, given, NOW + timedelta(days=3), {"c": 1}) is None
    assert quietrun.replay(state, given, NOW - timedelta(seconds=1), {"c": 1}) is None
    assert quietrun.replay(state, given, NOW, {"c": 2}) is None
    assert quietrun.replay(state, quietrun.Inputs("other", (), (), ()), NOW, {"c": 1}) is None


def test_a_bad_configuration_is_reported_whole(lab: Path) -> None:
    """The replay reads the configuration without the domains file; a fault there must
    not hide the domains file's own: the full run reports both, as it always did."""
    recorded(lab)
    lab.write_text(lab.read_text().replace('domains = ', 'concurrency = 0\ndomains = '))
    domains = lab.parent / "domains.txt"
    domains.write_text(domains.read_text() + "bad..example\n")
    code, out, err = run(lab)
    assert (code, out) == (1, "")
    assert "certfleet.toml:2" in err
    assert "domains.txt:4" in err
