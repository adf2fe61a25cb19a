"""The seed's files verbatim, one path for every command, one owner for each state record:
against real Pebble, OpenSSH sshd and nginx."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.conftest import need_root, require

from .conftest import webroot_server
from .fleet_helpers import by_name, run_cli, write_config

pytestmark = pytest.mark.integration

SEED_DOMAINS = """\
# ACME domain configuration file.
# format: domain|server:dir server:dir ...
www.example.com|198.51.100.11:/some/where/Certs 198.51.100.12:/some/where/Certs
www.example.net|198.51.100.11:/some/where/Certs 198.51.100.12:/some/where/Certs
"""
SEED_DIR = Path("/some/where/Certs")
SITES = ("www.example.com", "www.example.net", "shop.example.org")


@pytest.fixture
def lab(pebble_lab_factory: Any) -> Any:
    return pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})


@contextlib.contextmanager
def seed_mount_point() -> Iterator[None]:
    """``/some/where/Certs`` must exist as a mount point for the web hosts' own copies of
    it; only what this makes is removed afterwards."""
    made = [p for p in (SEED_DIR, *SEED_DIR.parents) if not p.exists()]
    SEED_DIR.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()


@pytest.fixture
def seed_web(lab: Any, tmp_path: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """The seed's two web servers, 198.51.100.11 and .12 as the domains file names them
    (ssh_config maps them to loopback), each with its own /some/where/Certs."""
    import web_lab

    require(web_lab.find_binaries, web_lab.WebLabUnavailable)
    need_root("the seed's web servers (mount namespaces)")
    hosts = {f"198.51.100.{n}": web_lab.WebHost(
        tmp_path / f"web{n}", f"127.0.0.{n - 9}", name=f"web{n}", sites=SITES,
        mounts={str(SEED_DIR): tmp_path / f"web{n}" / "certs"}) for n in (11, 12)}
    with seed_mount_point():
        try:
            for host in hosts.values():
                host.start()
            ssh_config, known_hosts = web_lab.trust(tmp_path, hosts)
            domains = tmp_path / "domains.txt"
            domains.write_text(SEED_DOMAINS)
            sections: dict[str, dict[str, Any]] = {
                "ssh": {"config": [str(ssh_config)], "known_hosts": str(known_hosts)}}
            for alias, host in hosts.items():
                sections[f'hosts."{alias}"'] = {
                    "reload": host.reload_argv(),
                    "probe": {"port": host.tls_port, "address": host.address}}
            config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state",
                                  domains, sections=sections)
            yield hosts, config
        finally:
            for host in hosts.values():
                host.stop()


def _serial(state: Path, site: str) -> int:
    pem = (state / "certs" / site / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def test_the_seeds_domains_file_verbatim(seed_web: tuple[dict[str, Any], Path],
                                         tmp_path: Path) -> None:
    hosts, config = seed_web
    state = tmp_path / "state"
    rc, out = run_cli("run", "--config", str(config), "--dry-run")
    assert rc == 0, out
    assert "  deploy to 198.51.100.11:/some/where/Certs/www.example.com/{cert,chain,fullchain," \
           "privkey}.pem" in out.splitlines()
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    for site in SITES[:2]:
        assert by_name(out)[site].endswith("deployed to 2/2 targets"), out
        for host in hosts.values():
            # Each server's nginx serves the certificate from its own /some/where/Certs.
            assert host.wait_for_serial(site, _serial(state, site)), (host.name, site)
            assert (host.site_dir(site) / "privkey.pem").stat().st_mode & 0o777 == 0o600
    rc, out = run_cli("status", "--config", str(config), "--json")
    paths = {row["name"]: {k: v["paths"] for k, v in row["targets"].items()}
             for row in json.loads(out)}
    assert paths["www.example.com"]["198.51.100.12:/some/where/Certs"] == (
        "198.51.100.12:/some/where/Certs/www.example.com/{cert,chain,fullchain,privkey}.pem")
    assert not any(SEED_DIR.iterdir())  # the machine's own /some/where/Certs got nothing
    before = {(h, s): (host.site_dir(s) / "fullchain.pem").stat().st_mtime_ns
              for h, host in hosts.items() for s in SITES[:2]}

    # A third line: neither existing certificate's paths change, nor its files.
    domains = tmp_path / "domains.txt"
    domains.write_text(SEED_DOMAINS + "shop.example.org|198.51.100.11:/some/where/Certs\n")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert by_name(out)["shop.example.org"].endswith("deployed to 1/1 targets")
    assert hosts["198.51.100.11"].wait_for_serial("shop.example.org",
                                                  _serial(state, "shop.example.org"))
    rc, out = run_cli("status", "--config", str(config), "--json")
    after = {row["name"]: {k: v["paths"] for k, v in row["targets"].items()}
             for row in json.loads(out)}
    assert {k: after[k] for k in paths} == paths
    assert {(h, s): (host.site_dir(s) / "fullchain.pem").stat().st_mtime_ns
            for h, host in hosts.items() for s in SITES[:2]} == before


def test_revoke_finds_what_run_issued_through_the_config(lab: Any, tmp_path: Path) -> None:
    domains = tmp_path / "domains.txt"
    domains.write_text("revoke-me.example.com\n")
    config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains)
    assert run_cli("run", "--config", str(config))[0] == 0
    serial = _serial(tmp_path / "state", "revoke-me.example.com")
    # No --state-dir, no --directory: the configuration says where and which CA.
    rc, out = run_cli("revoke", "revoke-me.example.com", "--config", str(config))
    assert rc == 0, out
    assert out == f"revoke-me.example.com: revoked (serial {serial:x}, reason unspecified)\n"
    assert lab.cert_status(serial)["Status"] == "Revoked"
    rc, out = run_cli("status", "--config", str(config))
    assert "REVOKED" in out
    rc, out = run_cli("run", "--config", str(config), "--dry-run")
    assert out == "revoke-me.example.com: will be ordered (revoked; http-01)\n"


def test_each_line_is_printed_when_its_certificate_is_done(lab: Any, tmp_path: Path) -> None:
    webroot = tmp_path / "webroot"
    webroot.mkdir()
    domains = tmp_path / "domains.txt"
    domains.write_text("slow.example.com\nfast.example.com\n")
    config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                          sections={"challenge": {"webroot": str(webroot)}})
    release = threading.Event()

    def before(host: str) -> None:
        if host == "slow.example.com":
            release.wait(60)

    with webroot_server(webroot, lab.http_port, before=before):
        proc = subprocess.Popen([sys.executable, "-m", "certfleet", "run", "--config",
                                 str(config)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            # The fast certificate's line came while the slow one is still being validated.
            assert first.startswith("fast.example.com: issued (expires "), first
            assert proc.poll() is None
        finally:
            release.set()
            rest, _ = proc.communicate(timeout=120)
    assert rest.splitlines()[0].startswith("slow.example.com: issued (expires ")
    assert proc.returncode == 0


def test_a_deploy_and_a_renewal_at_once_lose_nothing(lab: Any, tmp_path: Path) -> None:
    """Run A deploys (its reload is slow: it holds the certificate while it works); run B
    renews the same certificate meanwhile. B waits for A, then renews and deploys; the
    state record ends with both runs' updates, and says what the target really holds."""
    target = tmp_path / "pair.example.com"
    target.mkdir()
    domains = tmp_path / "domains.txt"
    domains.write_text(f"pair.example.com|{target}\n")
    slow = tmp_path / "slow-reload.sh"
    marker = tmp_path / "reloading"
    slow.write_text(f"#!/bin/sh\ntouch {marker}\nsleep 3\n")
    slow.chmod(0o755)
    config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                          sections={"hosts.default": {"reload": [str(slow)]}})
    assert run_cli("run", "--config", str(config))[0] == 0
    old = _serial(tmp_path / "state", "pair.example.com")
    marker.unlink()
    cmd = [sys.executable, "-m", "certfleet", "--config", str(config)]
    deploy = subprocess.Popen([*cmd[:3], "deploy", *cmd[3:]], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "A never reloaded"
        assert deploy.poll() is None, "A ended before reloading"
        time.sleep(0.02)
    renew = subprocess.run([*cmd[:3], "run", "--force", *cmd[3:]], capture_output=True,
                           text=True, timeout=180, check=False)
    deployed, _ = deploy.communicate(timeout=60)
    assert deploy.returncode == 0, deployed
    assert renew.returncode == 0, renew.stdout + renew.stderr
    assert renew.stdout.startswith("pair.example.com: renewed (expires "), renew.stdout
    state = json.loads((tmp_path / "state" / "certs" / "pair.example.com" / "state.json")
                       .read_text())
    new = _serial(tmp_path / "state", "pair.example.com")
    assert new != old
    on_target = x509.load_pem_x509_certificate((target / "cert.pem").read_bytes())
    assert on_target.serial_number == new
    assert state["last"]["result"] == "renewed"
    assert state["deploy"][str(target)]["serial"] == f"{new:x}"
