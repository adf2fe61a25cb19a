"""The seed's topology, end to end: CA -> LB1/LB2 (real nginx) -> Work host (certfleet
serve) and deploy -> Web1a/Web1b (real sshd + nginx). The load balancers run exactly the
snippets `certfleet nginx-config` prints."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from .fleet_helpers import orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration

SITES = {"www.example.com": ["LB1"], "www.example.net": ["LB2"],
         "shop.example.org": ["LB1", "LB2"]}
LB_ADDRESS = {"LB1": "127.0.0.11", "LB2": "127.0.0.12"}


@dataclass
class Seed:
    lab: Any
    lbs: dict[str, Any]
    web: dict[str, Any]
    config: Path
    state: Path
    serve_port: int
    serve: subprocess.Popen[str] | None = None

    def start_serve(self) -> None:
        self.serve = subprocess.Popen(
            [sys.executable, "-m", "certfleet", "serve", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.serve_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("certfleet serve did not start")

    def stop_serve(self) -> str:
        if self.serve is None:
            return ""
        self.serve.send_signal(signal.SIGTERM)
        _, err = self.serve.communicate(timeout=10)
        assert self.serve.returncode == 0, err
        self.serve = None
        return err


def _labs() -> Any:
    import web_lab

    try:
        web_lab.find_binaries()
    except web_lab.WebLabUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} [CI is set: not skipping]", pytrace=False)
        pytest.skip(str(exc))
    return web_lab


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _snippet(config: Path, *extra: str) -> str:
    rc, out = run_cli("nginx-config", "--config", str(config), *extra)
    assert rc == 0, out
    return out.split("# On the Work host")[0]


@pytest.fixture
def seed(pebble_lab_factory: Any, tmp_path: Path) -> Iterator[Seed]:
    web_lab = _labs()
    import lb_lab

    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    for site, lbs in SITES.items():
        lab.add_a(site, [LB_ADDRESS[lb] for lb in lbs])
    web = {"web1a": web_lab.WebHost(tmp_path / "web1a", "127.0.0.2", name="web1a",
                                    sites=list(SITES)),
           "web1b": web_lab.WebHost(tmp_path / "web1b", "127.0.0.3", name="web1b",
                                    sites=list(SITES))}
    lbs = {name: lb_lab.LoadBalancer(tmp_path / name, address, lab.http_port, name=name)
           for name, address in LB_ADDRESS.items()}
    identity, public = web_lab.client_key(tmp_path)
    serve_port = _free_port()
    seed = None
    try:
        for host in web.values():
            host.start()
            host.authorize(public)
        known_hosts, ssh_config = tmp_path / "known_hosts", tmp_path / "ssh_config"
        web_lab.write_known_hosts(known_hosts, web.values())
        web_lab.write_ssh_config(ssh_config, web, identity, known_hosts)
        domains = tmp_path / "domains.txt"
        domains.write_text("".join(
            f"{site}|" + " ".join(f"{a}:{h.site_dir(site)}" for a, h in web.items()) + "\n"
            for site in SITES))
        sections: dict[str, dict[str, Any]] = {
            "challenge": {"mode": "serve", "serve_listen": f"127.0.0.1:{serve_port}"},
            "lb": {"addresses": [f"{a}:{lab.http_port}" for a in LB_ADDRESS.values()]},
            "ssh": {"config": [str(ssh_config)], "known_hosts": str(known_hosts)},
        }
        for alias, host in web.items():
            sections[f'hosts."{alias}"'] = {
                "reload": host.reload_argv(),
                "probe": {"port": host.tls_port, "address": host.address}}
        config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                              sections=sections)
        snippet = _snippet(config)
        for lb in lbs.values():
            lb.start(snippet)
        seed = Seed(lab, lbs, web, config, tmp_path / "state", serve_port)
        seed.start_serve()
        yield seed
    finally:
        if seed is not None and seed.serve is not None:
            seed.serve.kill()
        for thing in [*lbs.values(), *web.values()]:
            thing.stop()


def _serial(state: Path, site: str) -> int:
    pem = (state / "certs" / site / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def test_proxy_mode_issue_deploy_then_broken_lb2(seed: Seed) -> None:
    # The load balancers run what nginx-config printed: the proxy location.
    snippet = _snippet(seed.config)
    assert "location ^~ /.well-known/acme-challenge/ {" in snippet
    assert f"proxy_pass http://127.0.0.1:{seed.serve_port};" in snippet

    rc, out = run_cli("run", "--config", str(seed.config))
    assert rc == 0, out
    for site in SITES:
        assert f"{site}: issued (expires " in out
        for host in seed.web.values():
            assert host.wait_for_serial(site, _serial(seed.state, site)), (host.name, site)
    assert out.splitlines()[-1] == "3 certificates: 3 issued, deployed 6/6 targets"

    rc, out = run_cli("check", "--config", str(seed.config))
    assert rc == 0, out
    assert out.splitlines()[-1] == "6 probes: 6 ok, 0 failed"

    # LB2 loses its challenge location: every request there falls to `location /`.
    seed.lbs["LB2"].reconfigure("")
    lb2 = seed.lbs["LB2"].label
    rc, out = run_cli("check", "--config", str(seed.config))
    assert rc == 1
    assert f"www.example.net via {lb2}: FAILED: HTTP 404 for the probe token" in out
    assert f"www.example.com via {seed.lbs['LB1'].label}: ok" in out
    assert out.splitlines()[-1] == "6 probes: 3 ok, 3 failed"
    orders = orders_seen(seed.lab)
    rc, out = run_cli("run", "--config", str(seed.config), "--force", "www.example.net")
    assert rc == 1
    assert out.startswith(f"www.example.net: failed: preflight (CA not asked): {lb2} for "
                          "www.example.net: HTTP 404 for the probe token")
    assert orders_seen(seed.lab) == orders          # the CA was not asked

    log = seed.stop_serve()
    assert "http-01 request from 127.0.0.1 (for 127.0.0.1" in log  # via a load balancer


def test_stateless_mode_without_work_host_responder(seed: Seed) -> None:
    seed.stop_serve()
    snippet = _snippet(seed.config, "--stateless")
    assert 'return 200 "$1.' in snippet
    for lb in seed.lbs.values():
        lb.reconfigure(snippet)
    text = seed.config.read_text().replace('mode = "serve"', 'mode = "stateless"')
    seed.config.write_text(text)
    rc, out = run_cli("run", "--config", str(seed.config))
    assert rc == 0, out
    for site in SITES:
        assert f"{site}: issued (expires " in out
        assert seed.web["web1b"].wait_for_serial(site, _serial(seed.state, site))
    # An unsafe token never matches the snippet's regex.
    assert seed.lbs["LB1"].get("/.well-known/acme-challenge/..%2F..%2Fetc",
                               "www.example.com")[0] == 404
