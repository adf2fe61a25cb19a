"""contrib/freebsd: the periodic(8) script, the rc.d script for `certfleet serve` and the
crontab line, each run for real against Pebble.

The scripts are POSIX sh: each is parsed by `sh -n` and `dash -n` and run under dash, a
strict POSIX shell (FreeBSD's /bin/sh is another ash descendant).

What this machine cannot check: FreeBSD itself. periodic(8) is not here: the script is run
as periodic runs it (as root, stdin from /dev/null, output captured) with a stand-in for
/etc/defaults/periodic.conf that defines source_periodic_confs the way the real one does;
what periodic then does with the output and the return code (show or mask by
daily_show_success/info/badconfig, mail it) is FreeBSD's periodic.sh and is not run. For
the rc.d script, rc.subr(8) and daemon(8) are not here: a stand-in rc.subr runs the
script's start path up to the command line rc.subr would run (daemon's arguments, after
the script's start_precmd), and the test then runs the program daemon would supervise,
as its user, and stops it as daemon passes on `service certfleet_serve stop` (SIGTERM).
Daemon's supervision (-r), its pid file and syslog output (-S), and rc.subr's su(1) to
certfleet_serve_user are not exercised. cron(8) is not run either: its line is parsed and
its command run through /bin/sh -c as its user, with cron's small environment.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import waits

from .fleet_helpers import orders_seen
from .scheduling_helpers import (
    FREEBSD,
    INSTALLED,
    World,
    certfleet_program,
    free_port,
    issued_lines,
    make_world,
    need,
    run,
    wait_listening,
)

pytestmark = pytest.mark.integration

PERIODIC = FREEBSD / "periodic" / "daily" / "480.certfleet"
RC_D = FREEBSD / "rc.d" / "certfleet_serve"
CRONTAB = FREEBSD / "crontab"
HEADER = "\nCertificate renewal (certfleet):\n"


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world()


def _default(script: Path, variable: str) -> str:
    """The default a script gives a knob: ``: ${var:=value}`` or ``: ${var=value}``."""
    found = re.findall(rf"^: \$\{{{variable}:?=(.*)\}}$", script.read_text(), re.M)
    assert len(found) == 1, (script, variable, found)
    return str(found[0])


def _user_name(world: World) -> str:
    """The name to give the scripts' user knobs: nobody when the tests run as root;
    empty (run as the current user) otherwise."""
    return "nobody" if world.user is not None else ""


@pytest.mark.parametrize("script", [PERIODIC, RC_D], ids=lambda p: p.name)
def test_the_scripts_are_posix_sh(script: Path) -> None:
    need("sh", "dash")
    assert script.read_text().startswith("#!/bin/sh\n")
    assert os.access(script, os.X_OK)               # periodic runs only executable files
    for shell in ("sh", "dash"):
        rc, out, err = run([shell, "-n", str(script)])
        assert (rc, out, err) == (0, "", ""), shell


# -- periodic(8) ----------------------------------------------------------------------------

class Periodic:
    """Runs 480.certfleet the way periodic(8) does, with a periodic.conf of the test's."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.bin = world.root / "bin"
        self.bin.mkdir(mode=0o755)
        (self.bin / "certfleet").symlink_to(certfleet_program())
        self.conf = world.root / "periodic.conf"
        self.defaults = world.root / "defaults-periodic.conf"
        # As /etc/defaults/periodic.conf: the defaults, then source_periodic_confs,
        # which reads the files of periodic_conf_files (here only the test's).
        self.defaults.write_text(
            'daily_show_success="YES"\ndaily_show_info="YES"\ndaily_show_badconfig="NO"\n'
            f'periodic_conf_files="{self.conf}"\n'
            "source_periodic_confs() {\n"
            "\tfor i in ${periodic_conf_files}; do\n"
            "\t\t[ -r $i ] && . $i\n"
            "\tdone\n"
            "}\n")

    def run(self, **knobs: str) -> tuple[int, str, str]:
        self.conf.write_text("".join(f'{k}="{v}"\n' for k, v in knobs.items()))
        env = {
            # root's cron environment; the test's certfleet first in PATH
            "PATH": f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin", "SHELL": "/bin/sh",
            "HOME": "/root", "LOGNAME": "root", "PERIODIC_DEFAULTS": str(self.defaults),
        }
        if "PYTHONPATH" in os.environ:      # the certfleet under test, in a work tree
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        return run([*self.world.reach(), "dash", str(PERIODIC)], env)


def test_periodic_reports_only_what_changed_or_failed(pebble: Any, world: World) -> None:
    """periodic.conf's knobs, the real certfleet through PATH, Pebble: the first day
    prints what was issued and returns 1 (notable information, mailed); the next says
    nothing and returns 0; disabled or not enabled it does nothing at all."""
    need("dash", "su")
    periodic = Periodic(world)
    config = world.config(pebble, "periodic.sched.example.com\n")
    knobs = {"daily_certfleet_enable": "YES", "daily_certfleet_config": str(config),
             "daily_certfleet_flags": "--concurrency 2",
             "daily_certfleet_user": _user_name(world)}

    rc, out, err = periodic.run(**knobs)
    assert (rc, err) == (1, ""), out + err
    assert out.startswith(HEADER), out
    issued_lines(out.removeprefix(HEADER), ["periodic.sched.example.com"])
    state = world.state / "certs" / "periodic.sched.example.com"
    assert state.stat().st_uid == world.uid             # run as daily_certfleet_user

    assert periodic.run(**knobs) == (0, "", "")          # nothing to do: nothing to mail

    orders = orders_seen(pebble)
    forced = {**knobs, "daily_certfleet_flags": "--force"}
    assert periodic.run(**{**forced, "daily_certfleet_enable": "NO"}) == (0, "", "")
    assert periodic.run(**{k: v for k, v in forced.items()
                           if k != "daily_certfleet_enable"}) == (0, "", "")
    assert orders_seen(pebble) == orders                 # certfleet did not run


def test_periodic_reports_a_failure_as_never_masked(pebble: Any, world: World) -> None:
    """A CA that refuses the connection: the failure is printed and the script returns 3,
    which periodic(8) never masks (2 would be hidden by daily_show_badconfig="NO"). No
    certfleet to be found is reported the same way."""
    need("dash", "su")
    periodic = Periodic(world)
    closed = free_port()
    config = world.config(pebble, "refused.sched.example.com\n", sections={
        "ca": {"directory": f"https://127.0.0.1:{closed}/dir",
               "ca_bundle": str(world.root / "pebble-ca.pem")}})
    knobs = {"daily_certfleet_enable": "YES", "daily_certfleet_config": str(config),
             "daily_certfleet_user": _user_name(world)}
    rc, out, err = periodic.run(**knobs)
    assert (rc, err) == (3, ""), out + err
    lines = out.removeprefix(HEADER).splitlines()
    assert out.startswith(HEADER), out
    assert len(lines) == 2, out
    assert lines[0].startswith(f"refused.sched.example.com: failed: https://127.0.0.1:{closed}"
                               "/dir: cannot connect"), out
    assert lines[1] == "1 certificate: 1 failed"

    rc, out, err = periodic.run(**knobs, daily_certfleet_program="/nonexistent/certfleet")
    assert (rc, out, err) == (3, f"{HEADER}/nonexistent/certfleet: not found; nothing was "
                                 "renewed\n", "")


# -- rc.d -----------------------------------------------------------------------------------

# Stands in for /etc/rc.subr: for "start", what run_rc_command does up to the command line
# (rc_flags from ${name}_flags, then start_precmd), printed one word a line instead of run.
FAKE_RC_SUBR = r"""
load_rc_config() { [ "$1" = "$name" ] || exit 9; . "$FAKE_RC_CONF"; }
checkyesno() {
	eval "case \${$1} in [Yy][Ee][Ss]) return 0 ;; *) return 1 ;; esac"
}
install() { echo "precmd: install $*"; }
run_rc_command() {
	[ "$1" = start ] || exit 9
	if ! checkyesno "$rcvar"; then echo "disabled"; return 0; fi
	eval rc_flags=\$${name}_flags
	eval "$start_precmd"
	echo "user: $(eval echo \$${name}_user)"
	echo "pidfile: $pidfile"
	for word in $command $rc_flags; do echo "argv: $word"; done
}
"""

DAEMON_OPTIONS_WITH_VALUE = {"-p", "-P", "-u", "-o", "-s", "-l", "-t", "-m", "-R", "-T"}
DAEMON_FLAGS = {"-c", "-f", "-H", "-S", "-r"}


def _rc_start(world: World, **rc_conf: str) -> dict[str, list[str]]:
    """Run the rc.d script's start with the stand-in rc.subr and an rc.conf of the test's:
    ``{"argv": [...], "user": [...], "pidfile": [...], "precmd": [...]}``."""
    text = RC_D.read_text()
    assert text.count("\n. /etc/rc.subr\n") == 1
    subr = world.root / "rc.subr"
    subr.write_text(FAKE_RC_SUBR)
    script = world.root / "certfleet_serve"
    script.write_text(text.replace("\n. /etc/rc.subr\n", f"\n. {subr}\n"))
    conf = world.root / "rc.conf"
    conf.write_text("".join(f'{k}="{v}"\n' for k, v in rc_conf.items()))
    rc, out, err = run(["dash", str(script), "start"],
                       {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "FAKE_RC_CONF": str(conf)})
    assert (rc, err) == (0, ""), out + err
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(": ")
        found.setdefault(key, []).append(value)
    return found


def _daemon(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """daemon(8)'s own options, and the command it runs and supervises."""
    assert argv[0] == "/usr/sbin/daemon"
    options: dict[str, str] = {}
    i = 1
    while argv[i].startswith("-"):
        if argv[i] in DAEMON_OPTIONS_WITH_VALUE:
            options[argv[i]] = argv[i + 1]
            i += 2
        else:
            assert argv[i] in DAEMON_FLAGS, argv[i]
            options[argv[i]] = ""
            i += 1
    return options, argv[i:]


def test_rc_d_defaults_and_disabled(world: World) -> None:
    need("dash")
    assert _rc_start(world) == {"disabled": [""]}                 # NO unless enabled
    found = _rc_start(world, certfleet_serve_enable="YES")
    options, child = _daemon(found["argv"])
    assert child == ["/usr/local/bin/certfleet", "serve", "--config",
                     "/usr/local/etc/certfleet/certfleet.toml"]
    assert found["user"] == ["certfleet"]
    assert found["pidfile"] == ["/var/run/certfleet/serve.pid"]
    assert options["-P"] == "/var/run/certfleet/serve.pid"       # daemon's own pid: stop
    assert {"-f", "-r", "-S"} <= options.keys()                  # detach, restart, syslog
    assert options["-T"] == "certfleet_serve"
    assert "-u" not in options      # rc.subr already runs daemon as certfleet_serve_user
    assert found["precmd"] == ["install -d -o certfleet -m 0755 /var/run/certfleet"]


def test_rc_d_starts_certfleet_serve_with_its_flags(pebble: Any, world: World) -> None:
    """certfleet_serve_flags reach certfleet serve, not daemon(8): the command daemon would
    supervise, run as the test's user, answers 404 for a token nobody presented and stops
    at SIGTERM with exit 0."""
    need("dash", "setpriv")
    port = free_port()
    config = world.config(pebble, "", sections={"challenge": {"mode": "serve"}})
    found = _rc_start(world, certfleet_serve_enable="YES",
                      certfleet_serve_flags=f"--listen 127.0.0.1:{port}",
                      certfleet_serve_config=str(config),
                      certfleet_serve_certfleet=certfleet_program(),
                      certfleet_serve_user=_user_name(world) or "unused")
    _options, child = _daemon(found["argv"])
    assert child == [certfleet_program(), "serve", "--config", str(config),
                     "--listen", f"127.0.0.1:{port}"]
    become = ["setpriv", f"--reuid={world.uid}", f"--regid={world.gid}", "--clear-groups",
              "--"] if world.user is not None else []
    proc = subprocess.Popen([*world.reach(), *become, *child], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/.well-known/acme-challenge/{'B' * 43}",
            headers={"Host": "rc.sched.example.com"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=5)
        assert answer.value.code == 404
    finally:
        proc.send_signal(signal.SIGTERM)   # what daemon(8) passes on at stop
        _, err = proc.communicate(timeout=waits.PROCESS)
    assert proc.returncode == 0, err
    assert "-> 404" in err, err


# -- cron -----------------------------------------------------------------------------------

def _cron_line() -> list[str]:
    lines = [line for line in CRONTAB.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 6)
    assert len(fields) == 7, fields        # 5 time fields, the user, the command
    return fields


def test_the_crontab_line_runs_twice_a_day_as_the_scripts_user() -> None:
    minute, hour, mday, month, wday, user, command = _cron_line()
    assert minute.isdigit()
    assert 0 < int(minute) < 60
    hours = [int(h) for h in hour.split(",")]
    assert len(hours) == 2
    assert abs(hours[1] - hours[0]) == 12
    assert (mday, month, wday) == ("*", "*", "*")
    # One user for everything that touches the state directory.
    assert user == _default(RC_D, "certfleet_serve_user") == \
        _default(PERIODIC, "daily_certfleet_user") == "certfleet"
    assert shlex.split(command) == [INSTALLED, "run", "--quiet", "--config",
                                    _default(PERIODIC, "daily_certfleet_config")]
    assert _default(RC_D, "certfleet_serve_config") == \
        _default(PERIODIC, "daily_certfleet_config")


def test_the_crontab_command_mails_only_when_something_changed(
        pebble: Any, world: World) -> None:
    """The crontab's command, through /bin/sh -c as cron runs it, as its user, with
    cron's environment: the first run prints the issued certificate (cron mails it); the
    second prints nothing at all (no mail), whatever its exit code, which cron ignores."""
    need("setpriv", "sh")
    *_, command = _cron_line()
    config = world.config(pebble, "cron.sched.example.com\n")
    default_config = _default(PERIODIC, "daily_certfleet_config")
    assert command.count(default_config) == 1
    assert command.count(INSTALLED) == 1
    command = command.replace(INSTALLED, certfleet_program()).replace(
        default_config, str(config))
    become = ["setpriv", f"--reuid={world.uid}", f"--regid={world.gid}", "--clear-groups",
              "--"] if world.user is not None else []
    env = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": "/nonexistent",
           "LOGNAME": "nobody"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    rc, out, err = run([*world.reach(), *become, "/bin/sh", "-c", command], env)
    assert (rc, err) == (0, ""), out + err
    issued_lines(out, ["cron.sched.example.com"])
    orders = orders_seen(pebble)
    rc, out, err = run([*world.reach(), *become, "/bin/sh", "-c", command], env)
    assert (rc, out, err) == (2, "", "")
    assert orders_seen(pebble) == orders  # it did nothing, rather than nothing it showed
