"""The monitoring plugin's verdict, and the command's conventions (exit 0/1/2/3, one line
with perfdata), over synthetic stored certificates."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certfleet.store import PEM_FILES, Store, VersionMeta
from tests.cli import run_main

NOW = datetime.now(UTC)


def _keep(store: Store, name: str, days_left: float, lifetime: float = 90) -> None:
    meta = VersionMeta(
        version=1, names=(name,), key_type="ec256", serial=0xABC, issuer="CN=Test",
        not_before=(NOW - timedelta(days=lifetime - days_left)).isoformat(),
        not_after=(NOW + timedelta(days=days_left)).isoformat(), aki="",
        issued_at=NOW.isoformat(), directory="https://ca.invalid/dir", order_url="")
    store.activate(name, dict.fromkeys(PEM_FILES, b"x\n"), meta)


def _monitor(tmp_path: Path, names: list[str], *extra: str) -> tuple[int, str]:
    domains = tmp_path / "domains.txt"
    domains.write_text("".join(f"{n}\n" for n in names))
    rc, out, err = run_main(["monitor", "--domains", str(domains), "--state-dir",
                             str(tmp_path / "state"), *extra])
    assert err == ""
    assert out.count("\n") == 1  # one line, as a plugin prints
    return rc, out.rstrip("\n")


def test_all_fine_is_ok_with_perfdata(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    _keep(store, "a.example", 60)
    _keep(store, "b.example", 45)
    rc, line = _monitor(tmp_path, ["a.example", "b.example"])
    assert rc == 0
    assert line.startswith("CERTFLEET OK - 2 certificates, the first to expire in 4")
    assert line.endswith("| certificates=2 critical=0 warning=0 min_days_left=" +
                         line.rsplit("=", 1)[1])


def test_near_the_end_is_critical_and_failing_is_warning(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    _keep(store, "late.example", 3)
    _keep(store, "failing.example", 20)
    _keep(store, "fine.example", 70)
    assert store.try_lock("failing.example")
    store.update_state("failing.example", lambda s: s.after_attempt(
        NOW, "renewed", "rateLimited", asked_ca=True))
    store.unlock("failing.example")
    rc, line = _monitor(tmp_path, ["late.example", "failing.example", "fine.example",
                                   "new.example"])
    assert rc == 2
    assert line.startswith("CERTFLEET CRITICAL - 1 critical, 2 warning of 4 certificates: "
                           "late.example expires in 3.0 days; ")
    assert "failing.example renewal failing (1 in a row): rateLimited" in line
    assert "new.example not issued yet" in line
    rc, line = _monitor(tmp_path, ["failing.example", "fine.example"])
    assert rc == 1
    assert line.startswith("CERTFLEET WARNING - 0 critical, 1 warning of 2 certificates")
    rc, line = _monitor(tmp_path, ["late.example"], "--critical-days", "2")
    assert rc == 1  # 3 days left: not critical by days, but past its renewal time
    assert "past its renewal time" in line


def test_a_target_without_the_active_version_is_a_warning(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    _keep(store, "site.example", 60)
    domains = tmp_path / "domains.txt"
    domains.write_text(f"site.example|{tmp_path / 'site.example'}\n")
    rc, out, _ = run_main(["monitor", "--domains", str(domains), "--state-dir",
                           str(store.root)])
    assert rc == 1
    assert f"site.example at {tmp_path / 'site.example'} lacks the active version" in out


@pytest.mark.parametrize("argv", [["monitor", "--bogus"], ["monitor", "--critical", "x"]])
def test_usage_errors_are_unknown(argv: list[str]) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "certfleet", *argv], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 3


def test_a_bad_configuration_is_unknown(tmp_path: Path) -> None:
    rc, out, _ = run_main(["monitor", "--domains", str(tmp_path / "missing.txt"),
                           "--state-dir", str(tmp_path)])
    assert rc == 3
    assert out.startswith("CERTFLEET UNKNOWN - command line (--domains): cannot read domains "
                          "file ")


def test_a_record_damaged_in_place_is_critical_even_behind_a_fresh_index(
        tmp_path: Path) -> None:
    """The index stands in for the records while the certificate's directory is unchanged;
    a ``state.json`` damaged in place leaves it unchanged. Reading the records is what
    finds the damage, so it is read before the damage is asked for."""
    store = Store(tmp_path / "state")
    _keep(store, "a.example", 60)
    _keep(store, "b.example", 60)
    (tmp_path / "domains.txt").write_text("a.example\nb.example\n")
    folder = tmp_path / "state" / "certs" / "b.example"
    mtime = folder.stat().st_mtime_ns - 10_000_000_000   # older than the racy window
    os.utime(folder, ns=(mtime, mtime))
    store.write_clock({"checked_at": NOW.isoformat()})
    rc, out, err = run_main(["run", "--domains", str(tmp_path / "domains.txt"), "--state-dir",
                             str(tmp_path / "state"), "--webroot", str(tmp_path)])
    assert rc == 2, out + err    # nothing due: the run made the index
    assert (tmp_path / "state" / "index.json").exists()
    with open(folder / "state.json", "w") as record:   # in place: the folder stays as it is
        record.write("{garbage")
    os.utime(folder, ns=(mtime, mtime))
    rc, line = _monitor(tmp_path, ["a.example", "b.example"])
    assert rc == 2
    assert line.startswith(f"CERTFLEET CRITICAL - 1 critical, 0 warning of 2 certificates: "
                           f"b.example damaged: {folder}/state.json: damaged JSON")
