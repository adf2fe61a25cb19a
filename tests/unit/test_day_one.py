"""What a new operator meets on day one, offline: usage errors, missing files, read-only
commands that must create nothing, errors on stderr, JSON that stays JSON, back-off shown,
a certificate that cannot be answered caught before any network, damaged state."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certfleet.config import ConfigErrors, load_job
from certfleet.config.defaults import PRESETS
from certfleet.config.sources import job_from
from certfleet.keytypes import to_pem
from certfleet.state import CertState
from certfleet.store import Store, VersionMeta
from tests.cli import run_main

from .pki import new_key, version_files

NOW = datetime.now(UTC)


def _never_contacted(ca: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        ca.accept()


def _ca_url(ca: socket.socket) -> str:
    return f"http://127.0.0.1:{ca.getsockname()[1]}/dir"


def _store_with(root: Path, names: list[str], *, days_left: int = 60) -> Store:
    """A state directory holding a version of each name: its files from a test CA (the
    record's dates are the ones planning reads; the certificate's are the test CA's)."""
    store = Store(root)
    for name in names:
        meta = VersionMeta(
            version=1, names=(name,), key_type="ec256", serial=0x1234, issuer="CN=Test",
            not_before=(NOW - timedelta(days=90 - days_left)).isoformat(),
            not_after=(NOW + timedelta(days=days_left)).isoformat(), aki="",
            issued_at=NOW.isoformat(), directory="https://ca.invalid/dir", order_url="")
        store.activate(name, version_files(name), meta)
    return store


# -- usage and input errors -----------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["run", "--bogus"], ["revoke"], ["status", "--state-dir"], ["frobnicate"],
    ["run", "--concurrency", "many"], ["account"], ["revoke", "x", "--reason", "whim"],
])
def test_usage_errors_exit_1_never_2(argv: list[str]) -> None:
    """2 means "nothing to do": a cron wrapper must never take a typo for that."""
    proc = subprocess.run([sys.executable, "-m", "certfleet", *argv], capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_ca_bundle_is_one_line(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, err = run_main(["status", "--state-dir", str(tmp_path), "--ca-bundle",
                             str(tmp_path / "nope.pem")])
    assert (rc, out) == (1, "")
    assert err == (f"certfleet: command line (--ca-bundle): ca_bundle {tmp_path / 'nope.pem'}: "
                   "no such file\n")
    monkeypatch.setenv("CERTFLEET_CA_BUNDLE", str(tmp_path / "gone.pem"))
    rc, out, err = run_main(["status", "--state-dir", str(tmp_path)])
    assert rc == 1
    assert err == (f"certfleet: environment (CERTFLEET_CA_BUNDLE): ca_bundle "
                   f"{tmp_path / 'gone.pem'}: no such file\n")


@pytest.mark.parametrize("content", [b"not a csr at all\n", b"-----BEGIN CERTIFICATE REQUEST"
                                     b"-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                                     b"\x30\x82\x01\x00" + b"\x00" * 20])
def test_a_csr_that_is_not_a_csr(tmp_path: Path, content: bytes,
                                  silent_ca: socket.socket) -> None:
    csr = tmp_path / "req.pem"
    csr.write_bytes(content)
    rc, out, err = run_main(["issue", "--csr", str(csr), "--state-dir", str(tmp_path / "s"),
                             "--directory", _ca_url(silent_ca), "--insecure-http",
                             "--webroot", str(tmp_path)])
    assert (rc, out) == (1, "")
    assert err == f"certfleet: {csr}: not a certificate signing request (PEM or DER)\n"
    assert not (tmp_path / "s").exists()
    _never_contacted(silent_ca)


@pytest.mark.parametrize(("text", "reason"), [
    ("[ca]\nmax_clock_skew = nan\n", "2: max_clock_skew must be a number of seconds from 0 to "
                                     "86400, not nan"),
    ("[ca]\nmax_clock_skew = inf\n", "2: max_clock_skew must be a number of seconds"),
    ("[ca]\nmax_clock_skew = -1\n", "2: max_clock_skew must be a number of seconds"),
    ("[defaults]\nkey_type = []\n", "2: key_type must be a key type or a non-empty list"),
    ("[defaults]\nkey_type = [1]\n", "2: key_type must be a key type or a non-empty list"),
    ("[dns]\nmethod = 'hook'\nhook = []\n", "3: hook must be a non-empty list of strings"),
    ("[dns]\nmethod = 'hook'\nhook = ['x']\nhook_timeout = -5\n",
     "4: hook_timeout must be a number of seconds from 1 to 86400, not -5"),
    ("[dns]\nmethod = 'hook'\nhook = ['x']\npropagation_timeout = inf\n",
     "4: propagation_timeout must be a number of seconds from 1 to 86400, not inf"),
    ("[dns]\nmethod = 'hook'\nhook = ['x']\nhook_delay = nan\n",
     "4: hook_delay must be a number of seconds"),
    ("[dns]\nmethod = 'carrier pigeon'\n", "2: method 'carrier pigeon': use rfc2136 or hook"),
    ("renew_fraction = nan\n", "1: renew_fraction must be between 0 and 1"),
    ("[dns]\nserver = '1.2.3.4'\ntsig_key_name = 'k'\ntsig_secret = 'c2VjcmV0'\n"
     "tsig_algorithm = 'rot13'\n", "5: tsig_algorithm 'rot13': use one of"),
    ("[hosts.default]\nmode = '0999'\n", "2: mode '0999' is not an octal mode"),
    ("[hosts.default]\ndir_mode = '0777'\n", "2: dir_mode 0o777 gives others too much access"),
    ("[certs]\nx = 1\n", "2: x must be a table [certs.\"x\"], not an integer"),
])
def test_every_bad_value_is_a_file_line_reason(tmp_path: Path, text: str, reason: str) -> None:
    config = tmp_path / "certfleet.toml"
    config.write_text(text)
    with pytest.raises(ConfigErrors) as caught:
        load_job(config)
    assert any(p.startswith(f"{config}:{reason}") for p in caught.value.problems), \
        caught.value.problems


def test_presets_work_for_every_command(tmp_path: Path) -> None:
    """``--directory letsencrypt-staging`` is resolved by the one configuration path that
    every command shares (issue and account included); shown offline by ``account show``."""
    job = job_from({"directory": "letsencrypt-staging", "state_dir": str(tmp_path)}, {})
    assert job.directory == PRESETS["letsencrypt-staging"]
    _store_with(tmp_path / "s", [])
    rc, out, err = run_main(["account", "show", "--directory", "letsencrypt-staging",
                             "--state-dir", str(tmp_path / "s")])
    assert rc == 0, err
    assert out.splitlines()[0] == f"CA:         {PRESETS['letsencrypt-staging']}"


# -- read-only commands create nothing -------------------------------------------------------

def test_read_only_commands_create_nothing(tmp_path: Path, silent_ca: socket.socket) -> None:
    state = tmp_path / "mistyped-state"
    domains = tmp_path / "domains.txt"
    domains.write_text(f"www.example.com|{tmp_path / 't'}\n")
    common = ["--state-dir", str(state), "--directory", _ca_url(silent_ca), "--insecure-http"]
    for argv in (["status"], ["account", "show"]):
        rc, out, err = run_main([*argv, *common])
        assert (rc, out) == (1, ""), argv
        assert err == (f"certfleet: state directory {state} does not exist (nothing issued "
                       "there yet, or a mistyped --state-dir / state_dir?)\n")
    rc, out, err = run_main(["run", "--dry-run", "--domains", str(domains), "--webroot",
                             str(tmp_path), *common])
    assert rc == 0, err
    assert out.splitlines()[0] == "www.example.com: will be ordered (new; http-01)"
    config = tmp_path / "certfleet.toml"  # a load balancer nothing listens on: no DNS asked
    config.write_text(f'domains = "{domains}"\n[lb]\naddresses = ["127.0.0.1:9"]\n')
    rc, out, err = run_main(["check", "--config", str(config), "--webroot", str(tmp_path),
                             *common])
    assert rc == 1
    assert out.splitlines()[0].startswith("www.example.com via 127.0.0.1:9: FAILED: cannot "
                                          "fetch the probe")
    assert "Traceback" not in err
    assert not state.exists()  # no state directory, so no account key either
    _never_contacted(silent_ca)


def test_status_json_stays_json_on_errors(tmp_path: Path) -> None:
    rc, out, err = run_main(["status", "--json", "--state-dir", str(tmp_path / "nope")])
    assert rc == 1
    assert json.loads(out) == {"error": f"state directory {tmp_path / 'nope'} does not exist "
                                        "(nothing issued there yet, or a mistyped --state-dir "
                                        "/ state_dir?)"}
    assert err.startswith("certfleet: state directory ")


def test_status_piped_into_head_is_no_traceback(tmp_path: Path) -> None:
    _store_with(tmp_path / "state", [f"host{i:03d}.example.com" for i in range(400)])
    proc = subprocess.run(
        f"{sys.executable} -m certfleet status --json --state-dir {tmp_path / 'state'} | "
        "head -1; exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
        capture_output=True, text=True, check=False, timeout=120)
    assert proc.stdout == "[\n"
    assert "Traceback" not in proc.stderr
    assert "Broken pipe" not in proc.stderr
    assert proc.returncode == 0, proc.stderr


def test_output_on_a_full_disk_is_a_one_line_failure(tmp_path: Path) -> None:
    """cron's log on a full disk: the command's own work is done, its lines are lost, and
    it says so in one line on stderr and exits 1 (a reader that left is no fault: above)."""
    _store_with(tmp_path / "state", [f"host{i:03d}.example.com" for i in range(40)])
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "certfleet", "status", "--state-dir",
                               str(tmp_path / "state")], stdout=full, stderr=subprocess.PIPE,
                              text=True, check=False, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == ("certfleet: cannot write to standard output (No space left on "
                           "device); this command's lines are lost\n")


def test_a_closed_stdout_or_stderr_is_no_traceback(tmp_path: Path) -> None:
    """Started with stdout closed (``>&-``): the work is done and the lost lines are said
    on stderr, exit 1; with stderr closed, the command runs as ever."""
    _store_with(tmp_path / "state", ["host.example.com"])
    argv = [sys.executable, "-m", "certfleet", "status", "--state-dir", str(tmp_path / "state")]
    closed_out = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, check=False, timeout=120,
                                preexec_fn=lambda: os.close(1))
    assert closed_out.returncode == 1
    assert closed_out.stderr == ("certfleet: cannot write to standard output (it is closed); "
                                 "this command's lines are lost\n")
    closed_err = subprocess.run(argv, capture_output=True, text=True, check=False,
                                timeout=120, preexec_fn=lambda: os.close(2))
    assert closed_err.returncode == 0
    assert closed_err.stdout.startswith("host.example.com: ")


# -- back-off, damage and the challenge, shown before any network ---------------------------

def test_back_off_is_visible_in_status_and_dry_run(tmp_path: Path) -> None:
    store = _store_with(tmp_path / "state", ["flaky.example.com"], days_left=5)
    assert store.try_lock("flaky.example.com")
    store.update_state("flaky.example.com", lambda s: s.after_attempt(
        datetime.now(UTC), "renewed", "https://ca/order: rateLimited: too many", asked_ca=True,
        retry_after=3600))
    store.unlock("flaky.example.com")
    state = ["--state-dir", str(tmp_path / "state")]
    rc, out, _ = run_main(["status", *state])
    assert rc == 0
    assert "  last run " in out
    assert ": failed: https://ca/order: rateLimited: too many" in out
    assert "  next attempt after " in out
    rc, out, _ = run_main(["status", "--json", *state])
    (row,) = json.loads(out)
    assert row["last"]["error"] == "https://ca/order: rateLimited: too many"
    assert datetime.fromisoformat(row["next_attempt"]) > NOW
    assert row["failures"] == 1
    domains = tmp_path / "domains.txt"
    domains.write_text("flaky.example.com\n")
    rc, out, _ = run_main(["run", "--dry-run", "--domains", str(domains), "--webroot",
                           str(tmp_path), *state])
    assert out.startswith("flaky.example.com: waiting: next attempt after ")
    assert out.rstrip().endswith("; last failure: https://ca/order: rateLimited: too many")
    # ... and it exits as the run would: that certificate is reported failed, exit 1
    assert rc == 1
    rc, out, _ = run_main(["run", "--domains", str(domains), "--webroot", str(tmp_path),
                           *state])
    assert (rc, out.splitlines()[0].split(": ")[1]) == (1, "failed")


def test_no_usable_challenge_is_caught_before_any_network(tmp_path: Path,
                                                          silent_ca: socket.socket) -> None:
    domains = tmp_path / "domains.txt"
    domains.write_text("a.example.com\n*.b.example.com\n")
    config = tmp_path / "certfleet.toml"
    config.write_text(f'domains = "{domains}"\n[certs."*.b.example.com"]\nchallenge = "dns-01"\n')
    common = ["--config", str(config), "--state-dir", str(tmp_path / "state"),
              "--directory", _ca_url(silent_ca), "--insecure-http"]
    rc, out, _ = run_main(["run", "--dry-run", *common])
    assert rc == 1
    assert out.splitlines() == [
        "a.example.com: will fail: cannot be ordered: no way to answer http-01: set [challenge] "
        "mode, webroot or http_listen in certfleet.toml, or pass --webroot DIR / "
        "--http-listen HOST:PORT",
        "*.b.example.com: will fail: cannot be ordered: dns-01 needs a [dns] section (rfc2136 "
        "or hook) in certfleet.toml"]
    rc, out, _ = run_main(["run", *common])
    assert rc == 1
    assert "a.example.com: failed: cannot be ordered: no way to answer http-01" in out
    rc, out, _ = run_main(["issue", "c.example.com", *common[2:]])
    assert (rc, out.split(": failed: ")[0]) == (1, "c.example.com")
    _never_contacted(silent_ca)


@pytest.mark.parametrize("damage", ["state.json", "current", "outside", "unreadable",
                                    "version"])
def test_one_damaged_certificate_fails_alone(tmp_path: Path, damage: str) -> None:
    """``outside``: ``current`` leads to another certificate's version, whose files must
    not be deployed as this one's; ``unreadable``: ``current`` is a directory, not a link."""
    names = ["a.example.com", "b.example.com", "c.example.com"]
    store = _store_with(tmp_path / "state", names)
    folder = store.root / "certs" / "b.example.com"
    if damage == "state.json":
        (folder / "state.json").write_text("{half a record")
    elif damage in ("current", "outside", "unreadable"):
        (folder / "current").unlink()
        if damage == "unreadable":
            (folder / "current").mkdir()
        else:
            (folder / "current").symlink_to("versions/9" if damage == "current"
                                            else "../a.example.com/versions/1")
    else:
        for entry in (folder / "versions" / "1").iterdir():
            entry.unlink()
        (folder / "versions" / "1").rmdir()
    domains = tmp_path / "domains.txt"
    domains.write_text("".join(f"{n}|{tmp_path / 't'}\n" for n in names))
    (tmp_path / "t").mkdir()
    common = ["--domains", str(domains), "--state-dir", str(store.root), "--webroot",
              str(tmp_path)]
    rc, out, _ = run_main(["status", "--state-dir", str(store.root)])
    assert rc == 1
    lines = {line.split(":")[0]: line for line in out.splitlines() if not line.startswith(" ")}
    assert lines["b.example.com"].startswith(f"b.example.com: DAMAGED: {folder}/")
    reason = {"outside": "current: points outside versions/: '../a.example.com/versions/1'",
              "unreadable": "current: unreadable: Invalid argument"}.get(damage)
    if reason is not None:
        assert lines["b.example.com"] == f"b.example.com: DAMAGED: {folder}/{reason}"
    assert lines["a.example.com"].startswith("a.example.com: a.example.com; expires ")
    assert lines["c.example.com"].startswith("c.example.com: c.example.com; expires ")
    # deploy carries on with the others
    rc, out, _ = run_main(["deploy", *common])
    assert rc == 1
    assert f"b.example.com: failed: {folder}/{reason or ''}" in out
    for name in ("a.example.com", "c.example.com"):
        assert (tmp_path / "t" / name / "cert.pem").read_bytes() == \
            (store.root / "certs" / name / "versions" / "1" / "cert.pem").read_bytes()
    assert not (tmp_path / "t" / "b.example.com").exists()
    assert os.path.lexists(folder)  # nothing of the damaged one was removed


def test_a_lost_revocation_answer_still_counts(tmp_path: Path) -> None:
    store = _store_with(tmp_path / "state", ["r.example.com"])
    assert store.try_lock("r.example.com")
    store.update_state("r.example.com", lambda s: s.revoking(0x1234, NOW))
    store.unlock("r.example.com")
    state = store.load_state("r.example.com")
    assert state.is_revoked(0x1234)
    assert CertState.from_json(state.to_json()) == state
    domains = tmp_path / "domains.txt"
    domains.write_text("r.example.com\n")
    _rc, out, _ = run_main(["run", "--dry-run", "--domains", str(domains), "--state-dir",
                           str(store.root), "--webroot", str(tmp_path)])
    assert out.splitlines() == ["r.example.com: will be ordered (revoked; http-01)"]


def test_log_lines_escape_what_they_carry(capsys: pytest.CaptureFixture[str]) -> None:
    """Log lines quote the CA, targets and files: no control character gets through."""
    import logging

    from certfleet.cli import _setup_logging

    _setup_logging(1)
    logging.getLogger("certfleet.test").info("order %s is %s", "https://ca/\x1b]0;x\x07",
                                             "valid\x1b[2J\nFAKE")
    err = capsys.readouterr().err
    assert err == ("certfleet: INFO: order https://ca/\\x1b]0;x\\x07 is "
                   "valid\\x1b[2J\\nFAKE\n")  # one record, one line


def test_what_asyncio_reports_is_shown_at_vv_only(capsys: pytest.CaptureFixture[str]) -> None:
    """A request left to a server that stopped answering fails when its session closes,
    and asyncio says so (with a traceback) when the task is collected."""
    import logging

    from certfleet.cli import _setup_logging

    loop_log = logging.getLogger("asyncio")
    before = list(loop_log.handlers), loop_log.propagate
    try:
        _setup_logging(0)
        try:
            raise ConnectionError("lost \x1b[2J")
        except ConnectionError:
            loop_log.exception("Task exception was never retrieved")
        assert capsys.readouterr().err == ""
        _setup_logging(2)
        try:
            raise ConnectionError("lost \x1b[2J")
        except ConnectionError:
            loop_log.exception("Task exception was never retrieved")
        first, *rest = capsys.readouterr().err.splitlines()
        assert first == "certfleet: ERROR: Task exception was never retrieved"
        assert rest[-1] == r"    ConnectionError: lost \x1b[2J", repr(rest)
    finally:
        loop_log.handlers[:], loop_log.propagate = before


def test_status_table_for_a_terminal(tmp_path: Path) -> None:
    store = _store_with(tmp_path / "state", ["a.example.com", "bb.example.com"])
    assert store.try_lock("bb.example.com")
    # The failure is now, not at import: the suite may reach this test after the first
    # backoff step (5 minutes) has passed.
    store.update_state("bb.example.com", lambda s: s.after_attempt(
        datetime.now(UTC), "renewed", "boom", asked_ca=True))
    store.unlock("bb.example.com")
    rc, out, _ = run_main(["status", "--table", "--state-dir", str(store.root)])
    assert rc == 0
    head, first, second = out.splitlines()
    assert head.split() == ["NAME", "EXPIRES", "RENEW", "AT", "LAST", "TARGETS", "NOTE"]
    assert first.split()[:2] == ["a.example.com", (NOW + timedelta(days=60)).date().isoformat()]
    assert second.split()[0] == "bb.example.com"
    assert "retry after" in second
    assert second.index("retry") == head.index("NOTE")  # columns line up
    rc, out, _ = run_main(["status", "--state-dir", str(store.root)])  # piped: lines
    assert out.startswith("a.example.com: a.example.com; expires ")


def test_progress_is_shown_on_a_terminal_only(tmp_path: Path) -> None:
    """A run on a terminal rewrites one progress line on stderr; piped, it prints none."""
    import pty

    domains = tmp_path / "domains.txt"
    domains.write_text("a.example.com\nb.example.com\n")
    argv = [sys.executable, "-m", "certfleet", "run", "--domains", str(domains),
            "--state-dir", str(tmp_path / "state")]  # no way to answer: fails offline
    master, slave = pty.openpty()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=slave, check=False,
                          timeout=60)
    os.close(slave)
    seen = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(master, 65536):
            seen += chunk
    os.close(master)
    assert proc.returncode == 1
    assert b"certfleet: 2/2 done, 0 being ordered, 2 failed" in seen
    assert b"\x1b" not in proc.stdout  # the report itself stays plain
    piped = subprocess.run(argv, capture_output=True, check=False, timeout=60)
    assert b"being ordered" not in piped.stderr


def test_a_locale_that_cannot_spell_a_file_name_is_one_line(tmp_path: Path) -> None:
    """cron's environment on an old host: LANG=C without UTF-8, where file names are ASCII
    bytes. A non-ASCII path read from a UTF-8 file would be other bytes on disk, or a
    traceback where it is opened: refused where it is written, with what to do."""
    (tmp_path / "domains.txt").write_text("a.example|/srv/証明書\n", encoding="utf-8")
    config = tmp_path / "certfleet.toml"
    config.write_text(f'state_dir = "{tmp_path}/状態"\ndomains = "domains.txt"\n'
                      '[challenge]\nhttp_listen = "127.0.0.1:5002"\n', encoding="utf-8")
    for path in (config, tmp_path / "domains.txt"):
        path.chmod(0o600)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-X", "utf8=0", "-m", "certfleet", "run",
                           "--dry-run", "--config", str(config)], capture_output=True,
                          env=env, check=False, timeout=120)
    assert proc.returncode == 1
    spelled = "is not ASCII, and the locale here spells file names in ascii: run certfleet " \
        "with LANG=C.UTF-8 (or PYTHONUTF8=1)"
    assert proc.stderr.decode("ascii").splitlines() == [
        f"{config}:1: '{tmp_path}/\\u72b6\\u614b' {spelled}",
        f"{tmp_path}/domains.txt:1: /srv/\\u8a3c\\u660e\\u66f8: '/srv/\\u8a3c\\u660e\\u66f8' "
        f"{spelled}"]
    assert proc.stdout == b""
    # The same files under a UTF-8 locale: no complaint about the names.
    env["LC_ALL"] = "C.UTF-8"
    proc = subprocess.run([sys.executable, "-m", "certfleet", "run", "--dry-run", "--config",
                           str(config)], capture_output=True, env=env, check=False, timeout=120)
    assert b"is not ASCII" not in proc.stderr, proc.stderr


def test_a_line_the_locale_cannot_spell_is_printed_escaped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """stdout in ASCII with strict errors (LANG=C without UTF-8): a character it cannot
    carry is escaped, as on stderr, never a UnicodeEncodeError."""
    import io

    from certfleet.cli import _open_streams, output

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", stream)
    assert _open_streams() is False
    output.say("b\u00fccher.example: \u8a3c")
    output.flush()
    stream.flush()
    assert raw.getvalue() == b"b\\xfccher.example: \\u8a3c\n"


@pytest.mark.parametrize("damage", ["emptied", "cut short", "another key", "another serial"])
def test_a_store_file_damaged_since_it_was_written_is_never_deployed(
        tmp_path: Path, damage: str) -> None:
    """The good copy on a target is never overwritten by a damaged one: the active
    version's files are checked together as they read now, before anything is sent."""
    store = _store_with(tmp_path / "state", ["a.example.com", "b.example.com"])
    domains = tmp_path / "domains.txt"
    domains.write_text(f"a.example.com|{tmp_path / 't'}\nb.example.com|{tmp_path / 't'}\n")
    (tmp_path / "t").mkdir()
    common = ["--domains", str(domains), "--state-dir", str(store.root), "--webroot",
              str(tmp_path)]
    assert run_main(["deploy", *common])[0] == 0
    version = store.root / "certs" / "b.example.com" / "versions" / "1"
    deployed = {p.name: p.read_bytes() for p in (tmp_path / "t" / "b.example.com").iterdir()}
    if damage == "emptied":
        (version / "fullchain.pem").write_bytes(b"")
        reason = "fullchain.pem: not a PEM certificate chain"
    elif damage == "cut short":
        (version / "cert.pem").write_bytes((version / "cert.pem").read_bytes()[:300])
        reason = "cert.pem: not a PEM certificate chain"
    elif damage == "another key":
        (version / "privkey.pem").write_bytes(to_pem(new_key()))
        reason = ": privkey.pem does not belong to cert.pem"
    else:
        for pem, data in version_files("b.example.com", serial=0x99).items():
            (version / pem).write_bytes(data)
        reason = "cert.pem: serial 99, not the version's 1234"
    rc, out, _ = run_main(["deploy", *common])
    assert rc == 1
    [line] = [line for line in out.splitlines() if line.startswith("b.example.com")]
    assert line == f"b.example.com: failed: {version}{'' if reason[0] == ':' else '/'}{reason}"
    assert {p.name: p.read_bytes() for p in (tmp_path / "t" / "b.example.com").iterdir()} \
        == deployed
    assert "a.example.com: not due until" in out  # the other goes on
    assert "deployed 1/1 targets" in out.splitlines()[-1]


def test_a_record_that_cannot_be_written_leaves_only_its_certificate_undeployed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark written before anything is sent (``fleet_deploy._mark``) fails for one
    certificate (its directory not writable, a full disk): the others are deployed and
    reported, and that one says why."""
    from certfleet import fleet_deploy
    from certfleet.errors import StoreError

    store = _store_with(tmp_path / "state", ["a.example.com", "b.example.com"])
    domains = tmp_path / "domains.txt"
    domains.write_text(f"a.example.com|{tmp_path / 't'}\nb.example.com|{tmp_path / 't'}\n")
    (tmp_path / "t").mkdir()
    marked = fleet_deploy._mark

    def mark(store: Store, plan: fleet_deploy.CertPlan, keys: list[str], now: datetime) -> None:
        if plan.name == "b.example.com":
            raise StoreError(f"{store.root}/certs/b.example.com/state.json: cannot write: "
                             "Permission denied")
        marked(store, plan, keys, now)

    monkeypatch.setattr(fleet_deploy, "_mark", mark)
    rc, out, _ = run_main(["deploy", "--domains", str(domains), "--state-dir",
                           str(store.root), "--webroot", str(tmp_path)])
    assert rc == 1
    lines = out.splitlines()
    assert lines[0].startswith("a.example.com: not due until ")
    assert lines[0].endswith(", deployed to 1/1 targets")
    assert lines[1] == f"b.example.com: failed: {store.root}/certs/b.example.com/state.json: " \
        "cannot write: Permission denied"
    assert (tmp_path / "t" / "a.example.com" / "cert.pem").exists()
    assert not (tmp_path / "t" / "b.example.com").exists()


def test_a_challenge_that_cannot_be_set_up_is_recorded(tmp_path: Path,
                                                       silent_ca: socket.socket) -> None:
    """The responder's port is taken (nginx on :80 of the Work host): every due certificate
    fails, and its record says so, so that ``status`` and ``monitor`` no longer show the
    last success. The CA was not asked: no back-off."""
    store = _store_with(tmp_path / "state", ["a.example.com"])
    domains = tmp_path / "domains.txt"
    domains.write_text("a.example.com\n")
    taken = f"127.0.0.1:{silent_ca.getsockname()[1]}"
    config = tmp_path / "certfleet.toml"
    config.write_text("[ca]\nmax_clock_skew = 0\n")  # else the clock is compared first
    config.chmod(0o600)
    common = ["--config", str(config), "--domains", str(domains), "--state-dir",
              str(store.root), "--directory", _ca_url(silent_ca), "--insecure-http",
              "--http-listen", taken]
    rc, out, _ = run_main(["run", "--force", *common])
    assert rc == 1
    why = f"cannot listen on {taken}: Address already in use"
    assert out.splitlines()[0] == f"a.example.com: failed: {why}"
    state = store.load_state("a.example.com")
    assert state.last is not None
    assert (state.last.result, state.last.error) == ("failed", why)
    assert state.backoff is None
    rc, out, _ = run_main(["status", "--state-dir", str(store.root)])
    assert f"  last run {state.last.at.isoformat()[:16]}: failed: {why}" in out.splitlines()
    rc, out, _ = run_main(["monitor", *common])
    assert (rc, out.split(" | ")[0]) == (1, "CERTFLEET WARNING - 0 critical, 1 warning of "
                                           f"1 certificate: a.example.com last run failed: {why}")
    _never_contacted(silent_ca)


def test_deploy_orders_nothing_and_says_what_is_not_issued_yet(tmp_path: Path) -> None:
    """``deploy`` before the first ``run``: no word about answering challenges (it orders
    nothing), and the certificate is named as not issued, not as "not due"; a renewal
    backing off is no deploy failure either."""
    store = _store_with(tmp_path / "state", ["b.example.com"])
    assert store.try_lock("b.example.com")
    store.update_state("b.example.com", lambda s: s.after_attempt(
        datetime.now(UTC), "renewed", "https://ca/order: rateLimited: too many", asked_ca=True,
        retry_after=3600))
    store.unlock("b.example.com")
    domains = tmp_path / "domains.txt"
    domains.write_text(f"a.example.com|{tmp_path / 't'}\nb.example.com|{tmp_path / 't'}\n")
    (tmp_path / "t").mkdir()
    rc, out, _ = run_main(["deploy", "--domains", str(domains), "--state-dir",
                           str(store.root)])
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert lines["a.example.com"] == "a.example.com: not issued yet: nothing to deploy"
    assert lines["b.example.com"].endswith(", deployed to 1/1 targets")
    assert "failed" not in out
    assert rc == 0
