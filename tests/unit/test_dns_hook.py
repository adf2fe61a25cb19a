"""certfleet.solvers.dns_hook: the argv a hook gets (never a shell), exit status and output
in errors, the timeout, and ready() (fixed delay, or the propagation check on FakeDns).
Hooks here are small Python scripts run as child processes; nothing touches the network."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from certfleet.errors import ChallengeError, ConfigError
from certfleet.protocol.challenges import dns01_txt_value
from certfleet.solvers.dns_hook import MAX_OUTPUT, HookSolver, hook_argv

from .test_dns_common import FakeDns, install_fake

STALL = 600.0  # seconds a hung hook (and its child) would run if nothing killed it


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    return install_fake(monkeypatch)

RECORDER = """
import json, os, sys
with open(os.environ["HOOK_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.stdout.write(os.environ.get("HOOK_SAY", ""))
sys.exit(int(os.environ.get("HOOK_EXIT", "0")))
"""


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[list[str], Path]:
    script = tmp_path / "hook.py"
    script.write_text(RECORDER)
    return [sys.executable, str(script)], tmp_path / "calls.jsonl"


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_hook_argv() -> None:
    value = dns01_txt_value("tok.thumb")
    assert hook_argv(["/usr/local/bin/dns-hook", "--provider", "x"], "present",
                     "*.example.com", "tok.thumb") == [
        "/usr/local/bin/dns-hook", "--provider", "x", "present", "--", "*.example.com",
        "_acme-challenge.example.com", value]
    assert hook_argv(["h"], "cleanup", "www.example.com", "tok.thumb") == [
        "h", "cleanup", "--", "www.example.com", "_acme-challenge.www.example.com", value]


def _dash_value_key_auth() -> str:
    """A key authorization whose TXT value begins with '-' (about 1 in 64 do)."""
    return next(f"t{i}.thumb" for i in range(10_000)
                if dns01_txt_value(f"t{i}.thumb").startswith("-"))


def test_a_value_starting_with_a_dash_is_never_an_option(tmp_path: Path) -> None:
    """A hook written with argparse, as most are, gets the value as the value."""
    hook = tmp_path / "hook.py"
    out = tmp_path / "seen.json"
    hook.write_text(
        "import argparse, json, os, sys\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('action'); p.add_argument('name'); p.add_argument('record')\n"
        "p.add_argument('value')\n"
        "a = p.parse_args()\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('CERTFLEET_DNS_')}\n"
        f"open({str(out)!r}, 'w').write(json.dumps([vars(a), env]))\n")
    key_auth = _dash_value_key_auth()
    value = dns01_txt_value(key_auth)
    asyncio.run(HookSolver([sys.executable, str(hook)])._run("present", "x.example.com",
                                                              key_auth))
    args, env = json.loads(out.read_text())
    assert args == {"action": "present", "name": "x.example.com",
                    "record": "_acme-challenge.x.example.com", "value": value}
    assert env == {"CERTFLEET_DNS_ACTION": "present", "CERTFLEET_DNS_NAME": "x.example.com",
                   "CERTFLEET_DNS_RECORD": "_acme-challenge.x.example.com",
                   "CERTFLEET_DNS_VALUE": value}


def test_present_and_cleanup_run_the_hook_without_a_shell(
        recorder: tuple[list[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    command, log = recorder
    # Shell syntax in the command and a glob in the name reach the hook as plain text.
    hostile = ["$(touch pwned)", "; touch pwned2", "`id`"]
    solver = HookSolver([*command, *hostile], env={"HOOK_LOG": str(log)})

    async def scenario() -> None:
        await solver.present("*.example.com", "t1", "t1.thumb")
        await solver.present("example.com", "t2", "t2.thumb")
        await solver.ready()
        await solver.cleanup("*.example.com", "t1", "t1.thumb")
        await solver.cleanup("example.com", "t2", "t2.thumb")

    monkeypatch.chdir(tmp_path)  # where a shell would have created the files
    asyncio.run(scenario())
    record = "_acme-challenge.example.com"
    v1, v2 = dns01_txt_value("t1.thumb"), dns01_txt_value("t2.thumb")
    assert calls(log) == [
        [*hostile, "present", "--", "*.example.com", record, v1],
        [*hostile, "present", "--", "example.com", record, v2],
        [*hostile, "cleanup", "--", "*.example.com", record, v1],
        [*hostile, "cleanup", "--", "example.com", record, v2],
    ]
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned2").exists()


def test_failure_shows_status_and_output_tail(recorder: tuple[list[str], Path]) -> None:
    command, log = recorder
    solver = HookSolver(command, env={"HOOK_LOG": str(log), "HOOK_EXIT": "3",
                                      "HOOK_SAY": "zone not found\x1b[31m\nbye\n"})
    with pytest.raises(ChallengeError) as info:
        asyncio.run(solver.present("example.com", "t", "t.x"))
    assert str(info.value) == (
        f"example.com: DNS hook {command[0]} present failed: exit status 3 "
        "(output: zone not found\\x1b[31m\\nbye)")


def test_large_output_is_bounded(tmp_path: Path) -> None:
    script = tmp_path / "noisy.py"
    script.write_text("import sys\nsys.stdout.write('x' * 3_000_000 + '\\nTHE END')\n"
                      "sys.exit(1)\n")
    solver = HookSolver([sys.executable, str(script)])
    with pytest.raises(ChallengeError) as info:
        asyncio.run(solver.present("example.com", "t", "t.x"))
    message = str(info.value)
    assert message.endswith("THE END)")
    assert "exit status 1" in message
    assert len(message) < 700
    assert MAX_OUTPUT < 3_000_000


def test_killed_by_signal(tmp_path: Path) -> None:
    script = tmp_path / "die.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    with pytest.raises(ChallengeError, match=r"present failed: killed by signal SIGTERM "
                       r"\(no output\)$"):
        asyncio.run(HookSolver([sys.executable, str(script)]).present("example.com", "t", "t.x"))


def test_timeout_kills_the_hook_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = tmp_path / "slow.py"
    script.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen(['sleep', '{STALL:g}'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "print('working...', flush=True)\n"
        f"time.sleep({STALL:g})\n")
    solver = HookSolver([sys.executable, str(script)], timeout=1.5)
    started = time.monotonic()
    with pytest.raises(ChallengeError) as info:
        asyncio.run(solver.present("example.com", "t", "t.x"))
    # Not waiting for the child, which holds the output pipe: that would take STALL (the
    # child's sleep). The hook is killed after 1.5 s; starting Python under load is the rest.
    assert time.monotonic() - started < STALL / 5
    assert str(info.value) == (f"example.com: DNS hook {sys.executable} present: still running "
                               "after 1.5 s; killed (output: working...)")
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a zombie until its parent (the killed hook) is reaped by init
        if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the hook's child survived the timeout")


def test_missing_program() -> None:
    solver = HookSolver(["/nonexistent/dns-hook"])
    with pytest.raises(ChallengeError, match=r"^example.com: DNS hook /nonexistent/dns-hook "
                       "present: cannot run it: No such file or directory$"):
        asyncio.run(solver.present("example.com", "t", "t.x"))


def test_empty_command() -> None:
    with pytest.raises(ConfigError):
        HookSolver([])


def test_ready_waits_the_fixed_delay(recorder: tuple[list[str], Path]) -> None:
    command, log = recorder
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    solver = HookSolver(command, env={"HOOK_LOG": str(log)}, delay=30, sleep=sleep)
    asyncio.run(solver.ready())  # nothing presented: nothing to wait for
    assert slept == []

    async def scenario() -> None:
        await solver.present("example.com", "t", "t.x")
        await solver.ready()

    asyncio.run(scenario())
    assert slept == [30]


def test_ready_checks_the_nameservers(recorder: tuple[list[str], Path],
                                      fake_dns: FakeDns) -> None:
    command, log = recorder
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    server = ("192.0.2.1", 53)
    solver = HookSolver(command, env={"HOOK_LOG": str(log)}, nameservers=[server],
                        propagation_timeout=6, poll_interval=2, sleep=sleep,
                        clock=lambda: now[0])
    value = dns01_txt_value("t.x")
    with pytest.raises(ChallengeError, match=(
            "example.com: TXT _acme-challenge.example.com did not appear at 192.0.2.1:53 "
            f'within 6 s: missing 1 of 1 values \\("{value}"\\)')):
        asyncio.run(_present_ready(solver))  # the recorder adds nothing to DNS
    fake_dns.records[("_acme-challenge.example.com.", "TXT")] = [value]
    asyncio.run(_present_ready(solver))
    assert ("_acme-challenge.example.com.", "TXT", server) in fake_dns.queries


async def _present_ready(solver: HookSolver) -> None:
    await solver.present("example.com", "t", "t.x")
    await solver.ready()
