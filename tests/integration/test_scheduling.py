"""contrib/systemd: the timer, the run it starts and the http-01 responder, each promise
checked for real.

What this machine checks: the unit files with systemd's own ``systemd-analyze verify``
(any warning fails) and ``systemd-analyze calendar``; the settings promised; and each
unit's command line (ExecStart=, Environment=), run against Pebble as the unit would run
it: as an unprivileged user with the unit's no_new_privs and capability sets (setpriv(1),
the kernel interfaces systemd uses), and for certfleet-serve.service also in the mount
namespace its TemporaryFileSystem= and BindReadOnlyPaths= make (unshare(1), mount(8)), and
on port 80 in a private network namespace.

What it cannot check: systemd itself running the units. No systemd is PID 1 here, so the
timer never fires, Persistent= and RandomizedDelaySec= are not observed, and the sandbox
settings without a kernel-level stand-in here (ProtectSystem=, ProtectHome=, PrivateTmp=,
PrivateDevices=, SystemCallFilter=, RestrictAddressFamilies=, ...) are only verified as
valid, not enforced.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import waits

from .scheduling_helpers import (
    SYSTEMD,
    UNIT_STATE,
    World,
    certfleet_program,
    exec_argv,
    issued_lines,
    make_world,
    need,
    need_root,
    one,
    parse_unit,
    run,
    setpriv,
    unit_environment,
    wait_listening,
    words,
)

pytestmark = pytest.mark.integration

UNITS = ("certfleet.service", "certfleet.timer", "certfleet-serve.service")


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world()


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    return parse_unit(SYSTEMD / name)


def _verify(directory: Path, names: tuple[str, ...]) -> str:
    rc, out, err = run(["systemd-analyze", "verify", "--man=no",
                        *(str(directory / n) for n in names)])
    assert rc == 0, out + err
    return out + err


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    """systemd's own check of the three units, with ExecStart= naming a certfleet that
    exists (verify checks that the program is there). It exits 0 even for an unknown key,
    so any output at all fails the test; the misspelt copy shows that it would."""
    need("systemd-analyze")
    program = certfleet_program()
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        (tmp_path / name).write_text(text.replace("/usr/local/bin/certfleet", program))
    assert _verify(tmp_path, UNITS) == ""

    bad = tmp_path / "bad"
    bad.mkdir()
    text = (tmp_path / "certfleet.service").read_text()
    (bad / "certfleet.service").write_text(text.replace("ProtectSystem=", "ProtectSytem="))
    assert "Unknown key" in _verify(bad, ("certfleet.service",))


def test_the_timer_fires_twice_a_day_spread_and_catching_up() -> None:
    need("systemd-analyze")
    timer = unit("certfleet.timer")
    calendar = one(timer, "Timer", "OnCalendar")
    assert calendar == "*-*-* 00,12:00:00"
    assert one(timer, "Timer", "Persistent") == "true"
    delay = one(timer, "Timer", "RandomizedDelaySec")
    assert re.fullmatch(r"[1-9][0-9]*h", delay), delay
    assert int(delay[:-1]) <= 12    # at most the interval: never skips a run
    assert one(timer, "Install", "WantedBy") == "timers.target"
    assert "Unit" not in timer["Timer"]     # so it starts certfleet.service

    env = {**os.environ, "TZ": "UTC"}
    rc, out, err = run(["systemd-analyze", "calendar", "--iterations=5", calendar], env)
    assert rc == 0, err
    stamps = [dt.datetime.strptime(m, "%Y-%m-%d %H:%M:%S") for m in re.findall(
        r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", out)]
    assert len(stamps) == 5, out
    assert {b - a for a, b in itertools.pairwise(stamps)} == {dt.timedelta(hours=12)}
    assert {s.hour for s in stamps} == {0, 12}


def test_the_run_unit_promises() -> None:
    service = unit("certfleet.service")
    s = service["Service"]
    assert one(service, "Service", "Type") == "oneshot"
    assert exec_argv(one(service, "Service", "ExecStart"), "certfleet")[1:] == ["run", "--quiet"]
    assert "2" in words(service, "Service", "SuccessExitStatus")
    assert one(service, "Service", "User") not in ("", "root", "0")
    assert one(service, "Service", "NoNewPrivileges") == "yes"
    assert s["CapabilityBoundingSet"] == [""]           # no capability at all
    assert "AmbientCapabilities" not in s
    assert one(service, "Service", "ProtectSystem") == "strict"
    assert one(service, "Service", "ProtectHome") == "yes"
    assert one(service, "Service", "PrivateTmp") == "yes"
    assert one(service, "Service", "PrivateDevices") == "yes"
    writable = words(service, "Service", "ReadWritePaths")
    assert UNIT_STATE in writable
    assert "-/etc/ssl/certfleet" in writable             # the documented local target
    assert one(service, "Service", "StateDirectory") == Path(UNIT_STATE).name
    assert one(service, "Service", "StateDirectoryMode") == "0700"
    assert set(words(service, "Service", "RestrictAddressFamilies")) == {
        "AF_UNIX", "AF_INET", "AF_INET6"}
    assert one(service, "Service", "TimeoutStartSec")   # a hung run cannot block the timer
    assert "Install" not in service                      # started by the timer only


def test_the_serve_unit_promises() -> None:
    serve = unit("certfleet-serve.service")
    s = serve["Service"]
    assert exec_argv(one(serve, "Service", "ExecStart"), "certfleet")[1:] == ["serve"]
    assert one(serve, "Service", "Restart") == "on-failure"
    user = one(serve, "Service", "User")
    assert user not in ("", "root", "0")
    # The same user as the run: it writes the tokens 0600 and serve reads them.
    assert user == one(unit("certfleet.service"), "Service", "User")
    assert words(serve, "Service", "AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"]
    assert words(serve, "Service", "CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"]
    assert one(serve, "Service", "NoNewPrivileges") == "yes"
    assert one(serve, "Service", "ProtectSystem") == "strict"
    # Only the challenges, read-only: the rest of the state directory is a read-only tmpfs.
    assert s["TemporaryFileSystem"] == [f"{UNIT_STATE}:ro"]
    assert s["BindReadOnlyPaths"] == [f"{UNIT_STATE}/challenges"]
    for key in ("ReadWritePaths", "StateDirectory", "BindPaths"):
        assert key not in s, key
    assert one(serve, "Service", "PrivateTmp") == "yes"
    assert one(serve, "Service", "ProtectHome") == "yes"
    assert set(words(serve, "Service", "RestrictAddressFamilies")) == {
        "AF_UNIX", "AF_INET", "AF_INET6"}
    assert one(serve, "Install", "WantedBy") == "multi-user.target"


def _run_unit(service: dict[str, Any], world: World, config: Path,
              **env: str) -> tuple[int, str, str]:
    argv = exec_argv(one(service, "Service", "ExecStart"), certfleet_program())
    environ = unit_environment(service, world.user, CERTFLEET_CONFIG=str(config))
    return run([*world.reach(), *setpriv(service, world.user), "--", *argv],
               {**environ, **env})


def test_the_timer_service_runs_as_its_unit_says(pebble: Any, world: World) -> None:
    """ExecStart= and Environment= of certfleet.service, the configuration pointed at
    Pebble, run as an unprivileged user with no capability and no_new_privs, as the unit
    makes it: it issues and deploys to a local target the user owns; the second run has
    nothing to do and says nothing. systemd counts both exit codes as success."""
    need("setpriv")
    service = unit("certfleet.service")
    www = world.owned_dir(world.root / "www")
    config = world.config(pebble, f"unit.sched.example.com|{www}\n")

    rc, out, err = _run_unit(service, world, config)
    assert (rc, err) == (0, ""), out + err
    issued_lines(out, ["unit.sched.example.com"], deployed=1)
    fullchain = www / "unit.sched.example.com" / "fullchain.pem"
    assert fullchain.stat().st_uid == world.uid
    assert (www / "unit.sched.example.com" / "privkey.pem").stat().st_mode & 0o777 == 0o600

    rc, out, err = _run_unit(service, world, config)
    assert (rc, out, err) == (2, "", "")                  # nothing to do: nothing logged

    success = {"0", *words(service, "Service", "SuccessExitStatus")}
    assert {"0", "2"} <= success


def test_a_home_the_sandbox_hides_is_a_home_without_ssh_config(
        pebble: Any, world: World) -> None:
    """ProtectHome=yes makes /home, /root and /run/user inaccessible, so a certfleet user
    whose home is there cannot even look for ~/.ssh/config: that is no ssh config (as a
    missing one), not a crash. Here the home is a directory of root's, mode 0700."""
    need("setpriv")
    need_root("a home the unprivileged user cannot enter")
    home = world.root / "closed-home"
    home.mkdir(mode=0o700)
    config = world.config(pebble, "home.sched.example.com\n")
    rc, out, err = _run_unit(unit("certfleet.service"), world, config, HOME=str(home))
    assert (rc, err) == (0, ""), out + err
    issued_lines(out, ["home.sched.example.com"])


def test_local_owner_needs_only_the_two_documented_capabilities(
        pebble: Any, world: World) -> None:
    """The drop-in the unit's comment gives for hosts.NAME.owner on a local target
    (CapabilityBoundingSet= and AmbientCapabilities= CAP_CHOWN CAP_DAC_OVERRIDE): with it
    the unprivileged run gives root the files; without it the deploy fails."""
    need("setpriv")
    need_root("files given to root by an unprivileged user")
    text = (SYSTEMD / "certfleet.service").read_text()
    block = re.search(r"^# hosts\.NAME\.owner.*?\n((?:#   .*\n)+)", text, re.M)
    assert block, "the owner drop-in is documented in certfleet.service"
    dropin = [line.removeprefix("#   ") for line in block.group(1).splitlines()]
    assert dropin[0] == "[Service]"
    service = unit("certfleet.service")
    for line in dropin[1:]:
        key, _, value = line.partition("=")
        service["Service"][key] = [value]
    assert words(service, "Service", "AmbientCapabilities") == ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]

    www = world.owned_dir(world.root / "www")
    hosts = {"hosts.default": {"owner": "root", "group": "root"}}
    config = world.config(pebble, f"owner.sched.example.com|{www}\n", sections=hosts)
    rc, out, err = _run_unit(unit("certfleet.service"), world, config)  # the unit as shipped
    assert rc == 1, out + err
    assert "owner.sched.example.com: issued (expires " in out
    assert "Operation not permitted" in out, out
    rc, out, err = _run_unit(service, world, config)                     # with the drop-in
    assert (rc, err) == (0, ""), out + err
    assert "deployed to 1/1 targets" in out, out
    for pem in ("fullchain.pem", "privkey.pem"):
        info = (www / "owner.sched.example.com" / pem).stat()
        assert (info.st_uid, info.st_gid) == (0, 0)


SANDBOX = r"""
# The mount namespace certfleet-serve.service asks for, made as systemd makes it:
# TemporaryFileSystem=STATE:ro, then BindReadOnlyPaths=STATE/challenges.
state=$1 challenges=$2 aside=$3; shift 3
mount --bind "$challenges" "$aside"
mount -t tmpfs -o mode=0755,nodev,strictatime tmpfs "$state"
mkdir "$challenges"
mount --bind "$aside" "$challenges"
mount -o remount,bind,ro "$challenges"
umount "$aside"
mount -o remount,ro "$state"
exec "$@"
"""


def _sandboxed_serve(serve: dict[str, Any], world: World, config: Path,
                     netns: bool = False) -> subprocess.Popen[str]:
    """certfleet-serve.service's ExecStartPre= (as root, "+") and then its ExecStart= in
    the namespace its settings make, as its user with its capabilities."""
    s = serve["Service"]

    def here(path: str) -> str:       # the unit's state directory is the test's here
        return path.replace(UNIT_STATE, str(world.state), 1)

    for line in s.get("ExecStartPre", []):
        assert line.startswith("+"), line
        pre = [here(a) for a in exec_argv(line, certfleet_program())]
        for option, number in (("-o", world.uid), ("-g", world.gid)):
            pre[pre.index(option) + 1] = str(number)   # certfleet is nobody here
        rc, out, err = run(pre)
        assert rc == 0, out + err
    (tmpfs,) = s["TemporaryFileSystem"]
    state, _, options = tmpfs.partition(":")
    assert options == "ro"
    (bound,) = s["BindReadOnlyPaths"]
    aside = world.root / "aside"
    aside.mkdir(exist_ok=True)
    argv = exec_argv(one(serve, "Service", "ExecStart"), certfleet_program())
    env = unit_environment(serve, world.user, CERTFLEET_CONFIG=str(config))
    command = ["unshare", "--mount", "--propagation", "private"]
    if netns:
        command += ["--net"]
    script = SANDBOX.replace("exec \"$@\"", "ip link set lo up\nexec \"$@\"") if netns \
        else SANDBOX
    return subprocess.Popen(
        [*world.reach(), *command, "sh", "-ec", script, "sh", here(state), here(bound), str(aside),
         *setpriv(serve, world.user), "--", *argv],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _serve_pid(proc: subprocess.Popen[str]) -> int:
    """The sandbox's shell execs setpriv, which execs certfleet: one process, one pid;
    wait until it is certfleet (its status shows its own user and capabilities)."""
    deadline = time.monotonic() + waits.PROCESS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode}: {proc.communicate()}")
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        if any(part.endswith(b"certfleet") for part in cmdline[:2]) and b"serve" in cmdline:
            return proc.pid
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"certfleet serve did not start: {proc.communicate()}")


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)   # what systemctl stop sends
    _, err = proc.communicate(timeout=waits.PROCESS)
    return proc.returncode, err


def test_serve_sees_only_the_challenges_and_answers_the_run(
        pebble: Any, world: World) -> None:
    """Both units together, as the seed's Work host runs them: certfleet-serve.service's
    command in its sandbox (its user, only CAP_NET_BIND_SERVICE, no_new_privs, the state
    directory a read-only tmpfs holding only the read-only challenges) answers Pebble for
    the certificate that certfleet.service's command orders; it sees no key."""
    need("setpriv", "unshare")
    need_root("mount namespaces")
    serve, service = unit("certfleet-serve.service"), unit("certfleet.service")
    config = world.config(pebble, "serve.sched.example.com\n", sections={"challenge": {
        "mode": "serve", "serve_listen": f"127.0.0.1:{pebble.http_port}"}})
    proc = _sandboxed_serve(serve, world, config)
    try:
        pid = _serve_pid(proc)
        wait_listening(pebble.http_port, proc)
        status = _status(pid)
        assert status["Uid"].split() == [str(world.uid)] * 4
        assert status["NoNewPrivs"] == "1"
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            assert int(status[cap], 16) == 1 << 10, (cap, status[cap])  # net_bind_service

        rc, out, err = _run_unit(service, world, config)
        assert (rc, err) == (0, ""), out + err
        issued_lines(out, ["serve.sched.example.com"])

        seen = Path(f"/proc/{pid}/root") / str(world.state).lstrip("/")
        assert sorted(p.name for p in seen.iterdir()) == ["challenges"]
        assert (world.state / "accounts").is_dir()            # there, but not for serve
        with pytest.raises(OSError, match="Read-only file system"):
            (seen / "challenges" / "planted").write_text("x")
    finally:
        rc, err = _stop(proc)
    assert rc == 0, err
    assert re.search(r"Host serve\.sched\.example\.com(:\d+)?, token \S+ -> 200", err), err


def test_serve_binds_port_80_with_its_one_capability(pebble: Any, world: World) -> None:
    """User= not root binds port 80 only through AmbientCapabilities=CAP_NET_BIND_SERVICE:
    in a private network namespace (port 80 of this machine is not touched), the sandboxed
    command answers on 127.0.0.1:80; without the capability it cannot start (and
    Restart=on-failure would try again)."""
    need("setpriv", "unshare", "nsenter", "ip")
    need_root("network namespaces")
    serve = unit("certfleet-serve.service")
    config = world.config(pebble, "", sections={"challenge": {
        "mode": "serve", "serve_listen": "127.0.0.1:80"}})
    proc = _sandboxed_serve(serve, world, config, netns=True)
    try:
        pid = _serve_pid(proc)
        deadline = time.monotonic() + waits.PROCESS
        while time.monotonic() < deadline:    # its namespace's table: 127.0.0.1:80 LISTEN
            table = Path(f"/proc/{pid}/net/tcp").read_text()
            if re.search(r"^\s*\d+: 0100007F:0050 00000000:0000 0A ", table, re.M):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("certfleet serve does not listen on 127.0.0.1:80")
        probe = ("import urllib.request, urllib.error\n"
                 "try:\n"
                 "    urllib.request.urlopen('http://127.0.0.1:80/.well-known/acme-challenge/"
                 + "A" * 43 + "', timeout=5)\n"
                 "except urllib.error.HTTPError as e:\n"
                 "    print(e.code)\n")
        rc, out, err = run(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c",
                            probe])
        assert (rc, out) == (0, "404\n"), err
    finally:
        rc, err = _stop(proc)
    assert rc == 0, err

    without = unit("certfleet-serve.service")
    without["Service"]["AmbientCapabilities"] = [""]
    proc = _sandboxed_serve(without, world, config, netns=True)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None), err
    assert "Permission denied" in err or "permission" in err.lower(), err


def test_serve_refuses_a_state_directory_others_may_write(tmp_path: Path) -> None:
    """The one check serve keeps on the state directory around the challenges: only its
    user or root may own it, and no one else write it."""
    from certfleet.errors import StoreError
    from certfleet.serve import challenge_dir

    state = tmp_path / "state"
    made = challenge_dir(state)                    # first start: made as `run` makes it
    assert made == state / "challenges"
    assert sorted(p.name for p in state.iterdir()) == ["accounts", "certs", "challenges"]
    assert challenge_dir(state) == made
    os.chmod(state, 0o770)
    with pytest.raises(StoreError, match="writable by group or others"):
        challenge_dir(state)
    os.chmod(state, 0o700)
    os.chmod(made, 0o730)
    with pytest.raises(StoreError, match="writable by group or others"):
        challenge_dir(state)
    os.chmod(made, 0o700)
    link = tmp_path / "link"
    link.symlink_to(state)
    with pytest.raises(StoreError, match="symlinks are not followed"):
        challenge_dir(link)
    shutil.rmtree(state / "accounts")           # nothing but the challenges is looked at
    shutil.rmtree(state / "certs")
    assert challenge_dir(state) == made
