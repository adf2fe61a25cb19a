"""One name, two key types, one nginx showing both: the probe checks each certificate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certfleet.deploy.probe import served_serial
from tests.conftest import require

from .fleet_helpers import by_name, run_cli, write_config

pytestmark = pytest.mark.integration
SITE = "dual.probe.example.com"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Any]:
    import web_lab

    require(web_lab.find_binaries, web_lab.WebLabUnavailable)
    host = web_lab.WebHost(tmp_path / "web1", "127.0.0.2", name="web1", sites=[SITE],
                           rsa_too=True)
    with host:
        yield host


def _probed_config(pebble: Any, web: Any, tmp_path: Path,
                   more: dict[str, Any] | None = None) -> Path:
    """A config deploying SITE to ``web`` over SSH, its TLS port probed after each deploy."""
    import web_lab

    ssh_config, known_hosts = web_lab.trust(tmp_path, {"web1": web})
    domains = tmp_path / "domains.txt"
    domains.write_text(f"{SITE}|web1:{web.site_dir(SITE)}\n")
    return write_config(tmp_path / "certfleet.toml", pebble, tmp_path / "state", domains,
                        sections={
                            "ssh": {"config": [str(ssh_config)],
                                    "known_hosts": str(known_hosts)},
                            'hosts."web1"': {"reload": web.reload_argv(),
                                             "probe": {"port": web.tls_port,
                                                       "address": web.address}},
                            **(more or {})})


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_each_key_type_is_probed_for_its_own_certificate(pebble: Any, web: Any,
                                                         tmp_path: Path) -> None:
    config = _probed_config(pebble, web, tmp_path,
                            {f'certs."{SITE}"': {"key_type": ["ec256", "rsa2048"]}})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert by_name(out)[SITE].endswith("deployed to 1/1 targets")
    assert by_name(out)[f"{SITE}+rsa2048"].endswith("deployed to 1/1 targets")
    state = tmp_path / "state" / "certs"
    # The deploy's probe saw both new certificates served; nginx's old worker may still
    # take a connection for a moment after the reload, and serve what it had.
    assert web.wait_for_one_worker()
    rsa = asyncio.run(served_serial(web.address, web.tls_port, SITE, "rsa"))
    ec = asyncio.run(served_serial(web.address, web.tls_port, SITE, "ec"))
    assert rsa == _serial(state / f"{SITE}+rsa2048" / "cert.pem")
    assert ec == _serial(state / SITE / "cert.pem")


def test_monitor_sees_a_target_serving_an_old_certificate(pebble: Any, web: Any,
                                                          tmp_path: Path) -> None:
    """The store is fine, the target has its files: only asking it over TLS shows that it
    still serves something else (here nginx was given an old pair and reloaded)."""
    import subprocess

    import web_lab

    from tests.cli import run_main

    config = _probed_config(pebble, web, tmp_path)
    assert run_cli("run", "--config", str(config))[0] == 0
    # The deploy saw the new certificate served; nginx's old worker may still take a
    # connection for a moment, and the monitor would rightly report what it serves.
    assert web.wait_for_serial(SITE, _serial(tmp_path / "state" / "certs" / SITE / "cert.pem"))
    rc, out, _ = run_main(["monitor", "--probe", "--config", str(config)])
    assert (rc, out.split(" - ")[0]) == (0, "CERTFLEET OK"), out
    old, cert_pem, key_pem = web_lab.self_signed(SITE, [SITE])
    (web.site_dir(SITE) / "fullchain.pem").write_bytes(cert_pem)
    (web.site_dir(SITE) / "privkey.pem").write_bytes(key_pem)
    subprocess.run(web.reload_argv(), check=True)
    assert web.wait_for_serial(SITE, old.serial_number)
    rc, out, _ = run_main(["monitor", "--config", str(config)])
    assert rc == 0, out  # the store and the records are fine
    rc, out, _ = run_main(["monitor", "--probe", "--config", str(config)])
    assert rc == 1
    assert f"{SITE} at web1:{web.site_dir(SITE)} serves serial {old.serial_number:x}, not " \
           "the active version" in out
