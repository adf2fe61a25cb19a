"""The seed's topology for deployment: `certfleet run` deploys to two web servers, each a real
OpenSSH sshd and a real nginx serving TLS from the deployed files, reloaded over SSH."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certfleet.deploy import _HOST_TAG, TMP_PREFIX

from ..conftest import require
from .fleet_helpers import by_name, orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration

SITES = ("www.example.com", "www.example.net", "shop.example.org")


@dataclass
class Topology:
    lab: Any
    web: dict[str, Any]
    config: Path
    state: Path
    known_hosts: Path


def _require_web_lab() -> Any:
    import web_lab

    require(web_lab.find_binaries, web_lab.WebLabUnavailable)
    return web_lab


@pytest.fixture
def topology(pebble_lab_factory: Any, tmp_path: Path) -> Iterator[Topology]:
    web_lab = _require_web_lab()
    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    hosts = {
        "web1a": web_lab.WebHost(tmp_path / "web1a", "127.0.0.2", name="web1a", sites=SITES),
        "web1b": web_lab.WebHost(tmp_path / "web1b", "127.0.0.3", name="web1b", sites=SITES),
    }
    try:
        for host in hosts.values():
            host.start()
        ssh_config, known_hosts = web_lab.trust(tmp_path, hosts)
        lines = []
        for site in SITES:
            alt = f" {site.removeprefix('www.')}" if site.startswith("www.") else ""
            targets = " ".join(f"{alias}:{host.site_dir(site)}" for alias, host in hosts.items())
            lines.append(f"{site}{alt}|{targets}")
        domains = tmp_path / "domains.txt"
        domains.write_text("# the seed's format, extended with alternative names\n"
                           + "\n".join(lines) + "\n")
        sections: dict[str, dict[str, Any]] = {
            "ssh": {"config": [str(ssh_config)], "known_hosts": str(known_hosts)},
        }
        for alias, host in hosts.items():
            sections[f'hosts."{alias}"'] = {
                "reload": host.reload_argv(),
                "probe": {"port": host.tls_port, "address": host.address},
            }
        config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                              sections=sections)
        yield Topology(lab, hosts, config, tmp_path / "state", known_hosts)
    finally:
        for host in hosts.values():
            host.stop()


def _stored_serial(state: Path, site: str) -> int:
    pem = (state / "certs" / site / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def test_run_deploys_to_both_web_servers(topology: Topology) -> None:
    rc, out = run_cli("run", "--config", str(topology.config))
    assert rc == 0, out
    for site in SITES:
        line = by_name(out)[site]
        assert line.startswith(f"{site}: issued (expires 20"), out
        assert line.endswith("deployed to 2/2 targets"), out
        serial = _stored_serial(topology.state, site)
        for host in topology.web.values():
            assert host.wait_for_serial(site, serial), (host.name, site)
            assert (host.site_dir(site) / "privkey.pem").stat().st_mode & 0o777 == 0o600
    assert out.splitlines()[-1] == "3 certificates: 3 issued, deployed 6/6 targets"
    rc, out = run_cli("run", "--config", str(topology.config))
    assert rc == 2, out


def test_server_down_then_back(topology: Topology) -> None:
    web1b = topology.web["web1b"]
    web1b.stop_sshd()
    rc, out = run_cli("run", "--config", str(topology.config))
    assert rc == 1
    for site in SITES:
        assert f"deployed to 1/2 targets; web1b:{web1b.site_dir(site)}: web1b: cannot " \
               "connect: Connection refused\n" in out, out
        assert topology.web["web1a"].wait_for_serial(site, _stored_serial(topology.state, site))
    orders = orders_seen(topology.lab)
    assert orders == len(SITES)
    web1b.start_sshd()
    rc, out = run_cli("run", "--config", str(topology.config))
    assert rc == 0, out
    assert orders_seen(topology.lab) == orders  # nothing issued again
    for site in SITES:
        assert by_name(out)[site].startswith(f"{site}: not due until ")
        assert by_name(out)[site].endswith("deployed to 1/1 targets")
        assert web1b.wait_for_serial(site, _stored_serial(topology.state, site))


def test_changed_host_key_is_refused(topology: Topology) -> None:
    web1a = topology.web["web1a"]
    web1a.rotate_host_key()
    rc, out = run_cli("run", "--config", str(topology.config), "www.example.com")
    assert rc == 1
    line = out.splitlines()[0]
    assert "deployed to 1/2 targets" in line
    assert "web1a: host key not trusted (SHA256:" in line
    placeholder = web1a.served_certificate("www.example.com")
    assert placeholder.serial_number != _stored_serial(topology.state, "www.example.com")
    assert topology.web["web1b"].wait_for_serial(
        "www.example.com", _stored_serial(topology.state, "www.example.com"))
    assert web1a.known_hosts_line() not in topology.known_hosts.read_text()  # never learned


def test_failing_reload_is_reported_per_target(topology: Topology) -> None:
    text = topology.config.read_text()
    head, sep, tail = text.partition('[hosts."web1b"]\nreload = ')
    topology.config.write_text(head + sep + '["/bin/false"]' + tail[tail.index("\n"):])
    rc, out = run_cli("run", "--config", str(topology.config), "www.example.net")
    assert rc == 1
    assert "deployed to 1/2 targets; web1b:" in out
    assert "files in place, reload failed: web1b: /bin/false exited 1" in out
    rc, out = run_cli("status", "--config", str(topology.config))
    assert "web1b:" in out
    assert "failed" in out


def test_reload_words_reach_the_remote_command_as_they_are(topology: Topology,
                                                           tmp_path: Path) -> None:
    """The reload argv crosses the remote login shell quoted word by word: spaces, quotes,
    ``$(...)``, backquotes, ``;``, globs and variables reach the program as written, and
    nothing in them runs. The program is ``sh -c`` printing its arguments, one a line."""
    web1b, site = topology.web["web1b"], "www.example.net"
    record, pwned = tmp_path / "argv.txt", tmp_path / "pwned"
    words = ["one word", f"$(touch {pwned})", f"`touch {pwned}`", f"a; touch {pwned}",
             "it's", '"double"', "*", "back\\slash", "$HOME", "", "-n"]
    reload = ["/bin/sh", "-c", f'printf "<%s>\\n" "$@" > {record}', "sh", *words]
    domains = tmp_path / "reload-domains.txt"
    domains.write_text(f"{site}|web1b:{web1b.site_dir(site)}\n")
    config = write_config(tmp_path / "reload.toml", topology.lab, topology.state, domains,
                          sections={"ssh": {"config": [str(tmp_path / "ssh_config")],
                                            "known_hosts": str(topology.known_hosts)},
                                    'hosts."web1b"': {"reload": reload}})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert by_name(out)[site].endswith("deployed to 1/1 targets"), out
    assert record.read_text() == "".join(f"<{word}>\n" for word in words)
    assert not pwned.exists()


def test_owner_and_group_over_ssh(topology: Topology) -> None:
    import grp
    import pwd

    text = topology.config.read_text().replace(
        '[hosts."web1a"]\n', '[hosts."web1a"]\nowner = "nobody"\ngroup = "nogroup"\n')
    topology.config.write_text(text)
    rc, out = run_cli("run", "--config", str(topology.config), "www.example.com")
    assert rc == 0, out
    folder = topology.web["web1a"].site_dir("www.example.com")
    for pem in ("cert.pem", "privkey.pem"):
        info = (folder / pem).stat()
        assert info.st_uid == pwd.getpwnam("nobody").pw_uid
        assert info.st_gid == grp.getgrnam("nogroup").gr_gid
    assert (folder / "privkey.pem").stat().st_mode & 0o777 == 0o600
    assert (topology.web["web1b"].site_dir("www.example.com") / "privkey.pem").stat().st_uid \
        == 0


def test_known_hosts_setting_alone_vouches_for_the_host(
        pebble_lab_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``[ssh] known_hosts`` on its own: the ssh_config names no known_hosts file and HOME
    holds none, so only the setting in certfleet.toml can make the host key trusted."""
    web_lab = _require_web_lab()
    lab = pebble_lab_factory()
    site = "solo.example.com"
    host = web_lab.WebHost(tmp_path / "web1", "127.0.0.2", name="web1", sites=(site,))
    identity, public = web_lab.client_key(tmp_path)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("HOME", str(home))  # ~/.ssh/known_hosts cannot vouch either
    try:
        host.start()
        host.authorize(public)
        known_hosts = tmp_path / "known_hosts"
        web_lab.write_known_hosts(known_hosts, [host])
        ssh_config = tmp_path / "ssh_config"
        web_lab.write_ssh_config(ssh_config, {"web1": host}, identity, known_hosts)
        text = "".join(line for line in ssh_config.read_text().splitlines(keepends=True)
                       if "KnownHostsFile" not in line)
        assert "KnownHosts" not in text
        assert str(known_hosts.resolve()) not in text
        ssh_config.write_text(text)
        domains = tmp_path / "domains.txt"
        domains.write_text(f"{site}|web1:{host.site_dir(site)}\n")

        def config(**known: str) -> str:
            sections: dict[str, dict[str, Any]] = {
                "ssh": {"config": [str(ssh_config)], **known},
                'hosts."web1"': {"reload": host.reload_argv()}}
            return str(write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state",
                                    domains, sections=sections))

        rc, out = run_cli("run", "--config", config())
        assert rc == 1, out
        assert "deployed to 0/1 targets" in out
        assert "web1: host key not trusted (SHA256:" in out
        rc, out = run_cli("run", "--config", config(known_hosts=str(known_hosts)))
        assert rc == 0, out
        assert by_name(out)[site].endswith("deployed to 1/1 targets"), out
        assert host.wait_for_serial(site, _stored_serial(tmp_path / "state", site))
    finally:
        host.stop()


def test_authentication_refused_names_the_host_and_the_other_target_is_deployed(
        topology: Topology) -> None:
    """web1b is given a key it does not know ([hosts."web1b"] identity): one line naming the
    host, web1a deployed all the same; with the right key again, web1b catches up."""
    web_lab = _require_web_lab()
    stranger, _ = web_lab.client_key(topology.config.parent / "stranger")
    text = topology.config.read_text()
    topology.config.write_text(text.replace(
        '[hosts."web1b"]\n', f'[hosts."web1b"]\nidentity = "{stranger}"\n'))
    site = "www.example.com"
    folder = topology.web["web1b"].site_dir(site)
    rc, out = run_cli("run", "--config", str(topology.config), site)
    assert rc == 1, out
    line, summary = out.splitlines()
    assert line.startswith(f"{site}: issued (expires ")
    assert line.endswith(f", deployed to 1/2 targets; web1b:{folder}: web1b: SSH "
                         "authentication refused"), line
    assert summary == "1 certificate: 1 issued, deployed 1/2 targets"
    serial = _stored_serial(topology.state, site)
    assert topology.web["web1a"].wait_for_serial(site, serial)
    assert not (folder / "cert.pem").exists()

    topology.config.write_text(text)
    rc, out = run_cli("run", "--config", str(topology.config), site)
    assert rc == 0, out
    assert by_name(out)[site].endswith("deployed to 1/1 targets"), out
    assert topology.web["web1b"].wait_for_serial(site, serial)


KILLED_DEPLOY = """
import os, signal, sys
from certfleet.cli import main
from certfleet.deploy import sftp_files

async def rename(self, old, new):  # every file is written by now: die before the renames
    os.kill(os.getpid(), signal.SIGKILL)

sftp_files.Sftp.rename = rename
sys.exit(main(sys.argv[1:]))
"""


def test_the_next_deploy_sweeps_what_a_killed_one_left(topology: Topology) -> None:
    """A run is SIGKILLed in the middle of its deploy, after its temporary files are on a
    target: the next deploy to that target removes them (and only what is certainly dead:
    a live process's file, and another Work host's file younger than a day, stay)."""
    site = "www.example.net"
    config = str(topology.config)
    assert run_cli("run", "--config", config, site)[0] == 0
    folders = [host.site_dir(site) for host in topology.web.values()]
    killed = subprocess.run([sys.executable, "-c", KILLED_DEPLOY, "run", "--config", config,
                             "--force", site], capture_output=True, text=True, timeout=300,
                            check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    left = {folder: sorted(n for n in os.listdir(folder) if n.startswith(TMP_PREFIX))
            for folder in folders}
    dead = [name for names in left.values() for name in names]
    assert dead, "the killed deploy left no temporary file: nothing to sweep"
    assert all(f"{TMP_PREFIX}{_HOST_TAG}-" in name for name in dead)

    live = f"{TMP_PREFIX}{_HOST_TAG}-{os.getpid()}-0123456789ab-cert.pem"
    other_young = f"{TMP_PREFIX}0badc0de-4242-0123456789ab-cert.pem"
    other_old = f"{TMP_PREFIX}0badc0de-4343-0123456789ab-chain.pem"
    day_and_more = time.time() - 86400 - 3600
    for folder in folders:
        for name in (live, other_young, other_old):
            (folder / name).write_bytes(b"partial\n")
        os.utime(folder / other_old, (day_and_more, day_and_more))

    rc, out = run_cli("run", "--config", config, site)
    assert rc == 0, out
    assert by_name(out)[site].endswith("deployed to 2/2 targets"), out
    serial = _stored_serial(topology.state, site)
    for folder, host in zip(folders, topology.web.values(), strict=True):
        assert host.wait_for_serial(site, serial)
        assert sorted(n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)) == \
            sorted([live, other_young]), folder
