"""The preflight of `certfleet run` through real load balancers (nginx), against Pebble.

LB1 proxies the challenge path to the Work host's responder, as `certfleet nginx-config`
has it; LB2 is broken one way per test: it answers with the wrong body, it redirects, or
nothing listens where it should be. Each time the run fails the certificate with one line
naming LB2 and what it did, LB1 is not named, and the CA is not asked for an order;
`certfleet check` names the same fault.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import require
from .fleet_helpers import orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration
NAME = "preflight.example.com"
LB1, LB2 = "127.0.0.21", "127.0.0.22"


def _lb_lab() -> Any:
    import web_lab

    require(web_lab.find_binaries, web_lab.WebLabUnavailable)
    import lb_lab

    return lb_lab


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def lab(pebble_lab_factory: Any) -> Any:
    return pebble_lab_factory()


@pytest.fixture
def lb1(lab: Any, tmp_path: Path) -> Iterator[Any]:
    """A good load balancer: the challenge path proxied to the run's own responder."""
    lb_lab = _lb_lab()
    lb = lb_lab.LoadBalancer(tmp_path / "lb1", LB1, _free_port(LB1), name="LB1")
    lb.start("location ^~ /.well-known/acme-challenge/ {\n"
             f"    proxy_pass http://127.0.0.1:{lab.http_port};\n"
             "    proxy_set_header Host $host;\n}\n")
    try:
        yield lb
    finally:
        lb.stop()


def _refused(lab: Any, tmp_path: Path, lb1: Any, lb2: str, reason: str) -> None:
    config = write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state",
                          _domains(tmp_path), sections={"lb": {"addresses": [lb1.label, lb2]}})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1, out
    line, summary = out.splitlines()
    assert line == f"{NAME}: failed: preflight (CA not asked): {lb2} for {NAME}: {reason}"
    assert summary == "1 certificate: 1 failed"
    assert orders_seen(lab) == 0
    rc, out = run_cli("check", "--config", str(config))
    assert rc == 1, out
    assert f"{NAME} via {lb1.label}: ok" in out
    assert f"{NAME} via {lb2}: FAILED: {reason}" in out


def _domains(tmp_path: Path) -> Path:
    domains = tmp_path / "domains.txt"
    domains.write_text(f"{NAME}\n")
    return domains


def test_a_load_balancer_answering_the_wrong_body(lab: Any, lb1: Any, tmp_path: Path) -> None:
    lb_lab = _lb_lab()
    lb2 = lb_lab.LoadBalancer(tmp_path / "lb2", LB2, _free_port(LB2), name="LB2")
    lb2.start('location ^~ /.well-known/acme-challenge/ {\n    return 200 "hello\\n";\n}\n')
    try:
        _refused(lab, tmp_path, lb1, lb2.label,
                 "answered, but not with the probe's key authorization (got 'hello')")
    finally:
        lb2.stop()


def test_a_load_balancer_that_redirects(lab: Any, lb1: Any, tmp_path: Path) -> None:
    lb_lab = _lb_lab()
    lb2 = lb_lab.LoadBalancer(tmp_path / "lb2", LB2, _free_port(LB2), name="LB2")
    lb2.start("location ^~ /.well-known/acme-challenge/ {\n"
              "    return 301 https://www.example.org/elsewhere;\n}\n")
    try:
        _refused(lab, tmp_path, lb1, lb2.label, "HTTP 301 for the probe token (a redirect to "
                 "https://www.example.org/elsewhere)")
    finally:
        lb2.stop()


def test_a_load_balancer_that_cannot_be_reached(lab: Any, lb1: Any, tmp_path: Path) -> None:
    lb2 = f"{LB2}:{_free_port(LB2)}"  # nothing listens there
    _refused(lab, tmp_path, lb1, lb2, "cannot fetch the probe: cannot connect: Connection refused")
