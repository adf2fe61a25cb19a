"""Start-up stays light: `certfleet --version`, `certfleet status` and `certfleet monitor`
(without --probe) load neither the network stack nor the crypto stack, whatever the
configuration holds.

Each command runs in a fresh interpreter (what was imported there is what the command
imported), then the test reads its ``sys.modules``. Times are measured by
bench/startup_bench.py, never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certfleet.store import Store, VersionMeta

from .pki import version_files

# The packages a command that talks to no CA, target or DNS server must not load.
HEAVY = ("cryptography", "aiohttp", "asyncssh", "dns", "ssl", "asyncio")

_RUN = """
import json, sys
report, argv = sys.argv[1], sys.argv[2:]
from certfleet.cli import main
try:
    code = main(argv)
except SystemExit as exc:
    code = exc.code
with open(report, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def imported(argv: list[str], tmp_path: Path,
             env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    """(exit code, the modules loaded) of ``certfleet ARGV`` in a fresh interpreter."""
    report = tmp_path / "imported.json"
    report.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", _RUN, str(report), *argv],
                          capture_output=True, text=True, check=False, timeout=120,
                          env={**os.environ, **(env or {})})
    assert report.exists(), proc.stdout + proc.stderr
    found = json.loads(report.read_text())
    return found["code"], set(found["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory with two issued certificates."""
    store = Store(tmp_path / "state")
    now = datetime.now(UTC)
    for name in ("www.example.com", "www.example.net"):
        meta = VersionMeta(
            version=1, names=(name,), key_type="ec256", serial=0x1234, issuer="CN=Test",
            not_before=(now - timedelta(days=30)).isoformat(),
            not_after=(now + timedelta(days=60)).isoformat(), aki="",
            issued_at=now.isoformat(), directory="https://ca.invalid/dir", order_url="")
        store.activate(name, version_files(name), meta)
    return store.root


def test_version_loads_no_command(tmp_path: Path) -> None:
    code, modules = imported(["--version"], tmp_path)
    assert code == 0
    assert heavy(modules) == []
    # Only the parser: no command module, no configuration parser, no store, not even the
    # exit codes (`--version` exits through argparse, as a usage error would).
    assert not {"certfleet.cli.fleet", "certfleet.config.job", "certfleet.store",
                "certfleet.report"} & modules
    assert "shutil" not in modules  # argparse's way to the terminal's width imports it


def test_a_usage_error_loads_no_command(tmp_path: Path) -> None:
    """A usage error exits 1 (never argparse's 2, "nothing to do"); for `monitor`, 3
    (UNKNOWN, as a monitoring plugin's caller expects). Neither runs a command."""
    for argv, expected in ((["run", "--bogus"], 1), (["monitor", "--bogus"], 3)):
        code, modules = imported(argv, tmp_path)
        assert code == expected, argv
        assert heavy(modules) == [], argv
        assert "certfleet.cli.fleet" not in modules, argv


def test_status_loads_no_network_or_crypto(state: Path, tmp_path: Path) -> None:
    code, modules = imported(["status", "--state-dir", str(state)], tmp_path)
    assert code == 0
    assert heavy(modules) == []


@pytest.fixture
def config(state: Path, tmp_path: Path) -> Path:
    """A configuration naming dns-01, SSH targets, two key types and an IDN."""
    domains = tmp_path / "domains.txt"
    domains.write_text(f"www.example.com|web1:/srv/certs {tmp_path / 'local'}\n"
                       "*.example.net example.net|deploy@[2001:db8::1]:/srv/certs\n"
                       "bücher.example\n")
    path = tmp_path / "certfleet.toml"
    path.write_text(f'state_dir = "{state}"\ndomains = "{domains}"\n'
                    '[ca]\ndirectory = "letsencrypt-staging"\n'
                    '[challenge]\nwebroot = "/var/www/acme"\n'
                    '[dns]\nserver = "192.0.2.53:53"\ntsig_key_name = "certfleet"\n'
                    '[certs."www.example.com"]\nkey_type = ["ec256", "rsa2048"]\n'
                    '[certs."*.example.net"]\nchallenge = "dns-01"\n'
                    '[hosts.web1]\nreload = ["sudo", "systemctl", "reload", "nginx"]\n'
                    'probe = { port = 443 }\n')
    for file in (domains, path):
        file.chmod(0o600)
    return path


TSIG = {"CERTFLEET_TSIG_SECRET": "c2VjcmV0"}


def test_status_with_every_kind_of_configuration(config: Path, tmp_path: Path) -> None:
    """Whatever the configuration names, status loads nothing of what ordering or
    deploying would need."""
    for argv in (["status"], ["status", "--json"]):
        code, modules = imported([*argv, "--config", str(config)], tmp_path, env=TSIG)
        assert code == 0, argv
        assert heavy(modules) == [], argv


def test_monitor_without_probes_loads_no_network_or_crypto(config: Path, tmp_path: Path) -> None:
    """`monitor` judges from the store as `status` reads it; only --probe needs TLS."""
    code, modules = imported(["monitor", "--config", str(config)], tmp_path, env=TSIG)
    assert code in (0, 1, 2)  # a verdict, not UNKNOWN (3)
    assert heavy(modules) == []


def test_a_dry_run_loads_no_ca_client_ssh_dns_or_crypto(config: Path, tmp_path: Path) -> None:
    """`run --dry-run` plans from what is on disk (it runs the runner's module, so asyncio
    is there), and asks no CA, target or DNS server."""
    code, modules = imported(["run", "--dry-run", "--config", str(config)], tmp_path, env=TSIG)
    assert code == 0
    assert [m for m in heavy(modules) if m.split(".")[0] not in ("asyncio", "ssl")] == []


def test_every_command_of_the_parser_runs_something() -> None:
    """The parser (cli/arguments.py) and the table of commands (cli/__init__.py) are
    written apart: they must name the same commands, each a function that exists."""
    import argparse

    from certfleet.cli import COMMANDS, command
    from certfleet.cli.arguments import parser

    [sub] = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(COMMANDS)
    for name in COMMANDS:
        assert callable(command(name)), name


def _config(tmp_path: Path, state: Path, domains_text: str) -> Path:
    """A certfleet.toml over ``state`` and a domains file of ``domains_text`` (a CA that
    cannot be reached: these commands must not need one)."""
    domains = tmp_path / "domains.txt"
    domains.write_text(domains_text)
    path = tmp_path / "certfleet.toml"
    path.write_text(f'state_dir = "{state}"\ndomains = "{domains}"\n'
                    '[ca]\ndirectory = "https://ca.invalid/dir"\n'
                    '[challenge]\nwebroot = "/var/www/acme"\n')
    for file in (domains, path):
        file.chmod(0o600)
    return path


def test_a_run_with_nothing_due_loads_no_ca_client_or_crypto(state: Path,
                                                            tmp_path: Path) -> None:
    """Nothing due, the clock compared today, no renewal window to ask for (the stored
    certificates carry no AKI): the run decides from the store alone, so it builds no CA
    client (ssl context, HTTP framing) and loads no account key (cryptography)."""
    Store(state).write_clock({"checked_at": datetime.now(UTC).isoformat()})
    path = _config(tmp_path, state, "www.example.com\nwww.example.net\n")
    code, modules = imported(["run", "--config", str(path)], tmp_path)
    assert code == 2   # nothing to do
    assert [m for m in heavy(modules) if m.split(".")[0] not in ("asyncio", "ssl")] == []
    assert not {"certfleet.acme_client", "certfleet.http11", "certfleet.http_framing",
                "certfleet.registration", "h11"} & modules
    assert "shutil" not in modules  # and its compression modules: only a clean-up needs them


def test_a_deploy_to_local_targets_loads_no_ssh(state: Path, tmp_path: Path) -> None:
    """The SSH stack (asyncssh: a quarter of a second to import) is for remote targets."""
    site = tmp_path / "site"
    site.mkdir()
    path = _config(tmp_path, state, f"www.example.com|{site}\n")
    code, modules = imported(["deploy", "--config", str(path)], tmp_path)
    assert code == 0
    assert (site / "www.example.com" / "fullchain.pem").read_bytes() == \
        (state / "certs" / "www.example.com" / "versions" / "1" / "fullchain.pem").read_bytes()
    assert not {m for m in modules if m.split(".")[0] == "asyncssh"}
    assert "certfleet.deploy.local" in modules
