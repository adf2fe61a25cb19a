"""The seed's topology, end to end: CA -> LB1/LB2 (real nginx) -> Work host (certfleet
serve) and deploy -> Web1a/Web1b (real sshd + nginx). The load balancers run exactly the
snippets `certfleet nginx-config` prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from ..conftest import require
from .fleet_helpers import orders_seen, run_cli

pytestmark = pytest.mark.integration
SITES_NAMES = ("www.example.com", "www.example.net", "shop.example.org")

def _labs() -> Any:
    import web_lab

    require(web_lab.find_binaries, web_lab.WebLabUnavailable)
    import seed_lab

    return seed_lab


def _snippet(config: Path, *extra: str) -> str:
    rc, out = run_cli("nginx-config", "--config", str(config), *extra)
    assert rc == 0, out
    return out.split("# On the Work host")[0]


@pytest.fixture
def seed(pebble_lab_factory: Any, tmp_path: Path) -> Iterator[Any]:
    seed_lab = _labs()
    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    with seed_lab.build(tmp_path, lab) as seed:
        yield seed


def _serial(state: Path, site: str) -> int:
    pem = (state / "certs" / site / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def test_proxy_mode_issue_deploy_then_broken_lb2(seed: Any) -> None:
    # The load balancers run what nginx-config printed: the proxy location.
    snippet = _snippet(seed.config)
    assert "location ^~ /.well-known/acme-challenge/ {" in snippet
    assert f"proxy_pass http://127.0.0.1:{seed.serve_port};" in snippet

    rc, out = run_cli("run", "--config", str(seed.config))
    assert rc == 0, out
    for site in SITES_NAMES:
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


def test_stateless_mode_without_work_host_responder(seed: Any) -> None:
    seed.stop_serve()
    snippet = _snippet(seed.config, "--stateless")
    assert 'return 200 "$1.' in snippet
    for lb in seed.lbs.values():
        lb.reconfigure(snippet)
    text = seed.config.read_text().replace('mode = "serve"', 'mode = "stateless"')
    seed.config.write_text(text)
    rc, out = run_cli("run", "--config", str(seed.config))
    assert rc == 0, out
    for site in SITES_NAMES:
        assert f"{site}: issued (expires " in out
        assert seed.web["web1b"].wait_for_serial(site, _serial(seed.state, site))
    # An unsafe token never matches the snippet's regex.
    assert seed.lbs["LB1"].get("/.well-known/acme-challenge/..%2F..%2Fetc",
                               "www.example.com")[0] == 404
