"""Tests of the web-server harness itself (tools/web_lab.py): two hosts "web1a" and
"web1b", each a real sshd plus a real nginx on its own loopback address, driven with the
system's ssh/scp clients. certfleet is not involved."""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web_lab import (
    WebHost,
    WebLabUnavailable,
    client_key,
    find_binaries,
    self_signed,
    write_known_hosts,
    write_ssh_config,
)

from tests import waits
from tests.conftest import need_root, require

pytestmark = pytest.mark.integration

ADDRESSES = {"web1a": "127.0.0.2", "web1b": "127.0.0.3"}
SSH_TIMEOUT = 20


def _require_web_lab() -> None:
    """Skip when sshd/nginx are not installed, but fail under CI (CI=<non-empty>)."""
    require(find_binaries, WebLabUnavailable)
    need_root("the web lab runs sshd and nginx as root")


@dataclass
class Fleet:
    hosts: dict[str, WebHost]
    ssh_config: Path
    known_hosts: Path
    identity: Path
    tmp: Path

    def ssh(self, alias: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", alias, command],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SSH_TIMEOUT,
        )

    def scp(self, local: Path, alias: str, remote: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["scp", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "-q",
             str(local), f"{alias}:{remote}"],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SSH_TIMEOUT,
        )  # fmt: skip

    def trust_current_host_keys(self) -> None:
        write_known_hosts(self.known_hosts, self.hosts.values())


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    _require_web_lab()
    hosts: dict[str, WebHost] = {}
    try:
        for alias, address in ADDRESSES.items():
            hosts[alias] = WebHost(tmp_path / alias, address, name=alias).start()
        identity, public_line = client_key(tmp_path / "client")
        for host in hosts.values():
            host.authorize(public_line)
        fleet = Fleet(
            hosts=hosts,
            ssh_config=tmp_path / "ssh_config",
            known_hosts=tmp_path / "known_hosts",
            identity=identity,
            tmp=tmp_path,
        )
        fleet.trust_current_host_keys()
        write_ssh_config(fleet.ssh_config, hosts, identity, fleet.known_hosts)
        yield fleet
    finally:
        for host in hosts.values():
            host.stop()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _refused(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def _ok(result: subprocess.CompletedProcess[str], host: WebHost) -> str:
    assert result.returncode == 0, (
        f"rc={result.returncode}\nstdout={result.stdout}\nstderr={result.stderr}\n"
        + host.log_tail()
    )
    return result.stdout


# --------------------------------------------------------------------------- ssh


def test_key_auth_and_host_key_verification(fleet: Fleet) -> None:
    for alias, host in fleet.hosts.items():
        assert host.sshd_pid is not None
        assert host.nginx_pid is not None
        _ok(fleet.ssh(alias, "true"), host)
        # The alias really reaches this host's address and port, as root.
        out = _ok(fleet.ssh(alias, 'echo "$SSH_CONNECTION"; id -u'), host).split()
        assert out[2:] == [host.address, str(host.ssh_port), "0"]
        assert host.known_hosts_line() == (
            f"[{host.address}]:{host.ssh_port} {host.host_public_key_line}"
        )
        assert host.host_public_key_line.startswith("ssh-ed25519 AAAA")
        assert len(host.host_public_key_line.split()) == 2
    a, b = fleet.hosts.values()
    assert a.host_public_key_line != b.host_public_key_line


def test_unknown_client_key_is_refused(fleet: Fleet) -> None:
    other, _ = client_key(fleet.tmp / "intruder")
    cfg = fleet.tmp / "intruder_config"
    write_ssh_config(cfg, fleet.hosts, other, fleet.known_hosts)
    result = subprocess.run(
        ["ssh", "-F", str(cfg), "-o", "BatchMode=yes", "web1a", "true"],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SSH_TIMEOUT,
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_unknown_host_key_is_refused(fleet: Fleet) -> None:
    fleet.known_hosts.write_text(fleet.hosts["web1b"].known_hosts_line() + "\n")
    result = fleet.ssh("web1a", "true")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
    _ok(fleet.ssh("web1b", "true"), fleet.hosts["web1b"])


def test_rotated_host_key_is_refused(fleet: Fleet) -> None:
    host = fleet.hosts["web1a"]
    old_line, old_port, old_pid = host.host_public_key_line, host.ssh_port, host.sshd_pid
    new_line = host.rotate_host_key()
    assert new_line == host.host_public_key_line != old_line
    assert host.ssh_port == old_port
    assert host.sshd_pid not in (None, old_pid)

    result = fleet.ssh("web1a", "true")
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    assert "Host key verification failed" in result.stderr
    _ok(fleet.ssh("web1b", "true"), fleet.hosts["web1b"])  # the other host is unaffected

    fleet.trust_current_host_keys()
    _ok(fleet.ssh("web1a", "true"), host)


def test_sshd_down_and_up(fleet: Fleet) -> None:
    host = fleet.hosts["web1a"]
    port, key = host.ssh_port, host.host_public_key_line
    host.stop_sshd()
    host.stop_sshd()  # idempotent
    assert host.sshd_pid is None
    assert _refused(host.address, port)
    result = fleet.ssh("web1a", "true")
    assert result.returncode == 255
    assert "Connection refused" in result.stderr
    # nginx is a separate daemon: still serving.
    assert host.served_certificate("web1a.example").serial_number > 0

    host.start_sshd()
    assert (host.ssh_port, host.host_public_key_line) == (port, key)
    _ok(fleet.ssh("web1a", "true"), host)


# --------------------------------------------------------------------------- nginx


def test_placeholder_served_until_reload(fleet: Fleet) -> None:
    for host in fleet.hosts.values():
        cert = host.served_certificate("www.example.com")
        assert cert.subject.rfc4514_string() == "CN=placeholder"
        assert host.fullchain_path == host.deploy_dir / "fullchain.pem"
        assert host.privkey_path == host.deploy_dir / "privkey.pem"
        assert host.deploy_dir.is_dir()


def test_deploy_over_ssh_then_reload(fleet: Fleet) -> None:
    """Deploy to web1a like certfleet would (scp + reload command over ssh), and to
    web1b by writing the files locally and running reload_argv()."""
    a, b = fleet.hosts["web1a"], fleet.hosts["web1b"]

    cert_a, cert_pem, key_pem = self_signed("www.example.com", ["www.example.com"])
    staging = fleet.tmp / "staging"
    staging.mkdir()
    (staging / "fullchain.pem").write_bytes(cert_pem)
    (staging / "privkey.pem").write_bytes(key_pem)
    for name in ("privkey.pem", "fullchain.pem"):
        _ok(fleet.scp(staging / name, "web1a", a.deploy_dir / name), a)
    assert a.fullchain_path.read_bytes() == cert_pem
    reload = fleet.ssh("web1a", shlex.join(a.reload_argv()))
    _ok(reload, a)
    assert a.wait_for_serial("www.example.com", cert_a.serial_number)
    served = a.served_certificate("www.example.com")
    assert served.subject.rfc4514_string() == "CN=www.example.com"

    # web1b still has its placeholder: each host serves its own deploy_dir.
    assert b.served_certificate("www.example.com").subject.rfc4514_string() == "CN=placeholder"
    cert_b, cert_pem, key_pem = self_signed("www.example.com", ["www.example.com"])
    b.fullchain_path.write_bytes(cert_pem)
    b.privkey_path.write_bytes(key_pem)
    subprocess.run(b.reload_argv(), check=True, capture_output=True, timeout=10)
    assert b.wait_for_serial("www.example.com", cert_b.serial_number)
    assert a.served_certificate("www.example.com").serial_number == cert_a.serial_number

    assert not a.wait_for_serial("www.example.com", cert_b.serial_number, timeout=0.3)


def test_reload_with_broken_files_keeps_old_certificate(fleet: Fleet) -> None:
    """As with a real nginx: `nginx -s reload` parses the whole config (certificates and
    keys included) before it signals the master, so a broken deployment makes it exit 1
    without signalling; the running nginx keeps serving the old certificate."""
    host = fleet.hosts["web1a"]
    before = host.served_certificate("www.example.com").serial_number
    master = host.nginx_pid
    host.privkey_path.write_text("not a key\n")
    reload = subprocess.run(
        host.reload_argv(), check=False, capture_output=True, text=True, timeout=10
    )
    assert reload.returncode == 1
    assert "privkey.pem" in reload.stderr
    assert not host.wait_for_serial("www.example.com", before + 1, timeout=0.5)
    assert host.served_certificate("www.example.com").serial_number == before
    assert host.nginx_pid == master


# --------------------------------------------------------------------------- stop


def test_stop_leaves_no_process(fleet: Fleet) -> None:
    host = fleet.hosts["web1a"]
    # An open session: its sshd connection processes must go too.
    session = subprocess.Popen(
        ["ssh", "-F", str(fleet.ssh_config), "web1a", "sleep 60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # sshd listener + connection processes + the session's shell, nginx master + worker
        deadline = time.monotonic() + waits.PROCESS
        while len(host.pids) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = host.pids
        assert host.sshd_pid in pids
        assert host.nginx_pid in pids
        assert len(pids) >= 5, pids
        ports = (host.ssh_port, host.tls_port)

        host.stop()
        assert [p for p in pids if _alive(p)] == []
        assert host.pids == []
        assert host.sshd_pid is None
        assert host.nginx_pid is None
        assert all(_refused(host.address, port) for port in ports)
        host.stop()  # idempotent
        assert session.wait(timeout=waits.PROCESS) != 0  # the server dropped the session
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()

    other = fleet.hosts["web1b"]
    _ok(fleet.ssh("web1b", "true"), other)  # only web1a's processes were stopped
    other_pids = other.pids
    other.stop()
    assert [p for p in other_pids if _alive(p)] == []


def test_restart_keeps_host_key_and_deployed_files(fleet: Fleet) -> None:
    host = fleet.hosts["web1a"]
    key = host.host_public_key_line
    cert, cert_pem, key_pem = self_signed("www.example.com")
    host.fullchain_path.write_bytes(cert_pem)
    host.privkey_path.write_bytes(key_pem)
    host.stop()
    host.start()
    assert host.host_public_key_line == key
    assert host.served_certificate("www.example.com").serial_number == cert.serial_number
    _ok(fleet.ssh("web1a", "true"), host)
