"""dns-01 end to end: a real BIND 9 (tools/dns_lab.py) that certfleet updates and that a
real Pebble (-strict) resolves through, with RFC2136Solver and HookSolver.

Everything is on 127.0.0.1: Pebble's VA asks named (``-dnsserver``), named is
authoritative for the test zones and for the root, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.asyncresolver
import pytest
from cryptography import x509
from dns_lab import DnsLab, DnsLabUnavailable, PebbleWithDns, find_named
from pebble_lab import LabUnavailable, find_binaries

from certfleet.acme_client import AcmeClient
from certfleet.errors import ChallengeError
from certfleet.keytypes import KeyType
from certfleet.protocol.challenges import dns01_txt_value
from certfleet.registration import open_account
from certfleet.session import Session
from certfleet.solvers import Solver
from certfleet.solvers.dns_hook import HookSolver
from certfleet.solvers.dns_rfc2136 import RFC2136Solver
from certfleet.store import Store
from tests.conftest import require
from tests.issuing import issue_names as issue

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_system_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name here is in the lab's zones: a fallback to the system's resolver (which
    would leave loopback) would be a bug, so it fails the test instead."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the system resolver was asked")

    monkeypatch.setattr(dns.asyncresolver, "Resolver", refuse)


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    require(find_named, DnsLabUnavailable)
    with DnsLab(tmp_path_factory.mktemp("bind")) as lab:
        yield lab


@pytest.fixture(scope="module")
def pebble(bind: DnsLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleWithDns]:
    require(find_binaries, LabUnavailable)
    with PebbleWithDns(tmp_path_factory.mktemp("pebble-dns"), bind) as lab:
        yield lab


class Recorder:
    """Wraps the client's ``post`` to see which URLs certfleet POSTed to."""

    def __init__(self, client: AcmeClient) -> None:
        self.urls: list[str] = []
        self.order_url: str | None = None
        post = client.post

        async def recording_post(url: str, *args: Any, **kwargs: Any) -> Any:
            self.urls.append(url)
            response = await post(url, *args, **kwargs)
            if "new-order" in url or url.endswith("/order-plz"):
                self.order_url = response.location
            return response

        client.post = recording_post  # type: ignore[method-assign]


def run_issue(pebble: PebbleWithDns, state: Path, names: list[str], solver: Solver,
              recorder: list[Recorder] | None = None) -> x509.Certificate:
    async def go() -> x509.Certificate:
        store = Store(state)
        async with AcmeClient(pebble.directory_url, ca_bundle=pebble.ca_bundle) as client:
            if recorder is not None:
                recorder.append(Recorder(client))
            session: Session = await open_account(client, store, KeyType.EC256, [])
            stored = await issue(session, store, names, KeyType.EC256, solver)
            return x509.load_pem_x509_certificate(stored.file("cert.pem").read_bytes())

    return asyncio.run(go())


def sans(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(ext.get_values_for_type(x509.DNSName))


def rfc2136(bind: DnsLab, **kwargs: Any) -> RFC2136Solver:
    options: dict[str, Any] = {"ns_port": bind.port, "poll_interval": 0.2,
                               "propagation_timeout": 10, **kwargs}
    return RFC2136Solver(bind.address, bind.key_name, bind.key_secret, bind.key_algorithm,
                         **options)


def added_values(bind: DnsLab, record: str) -> list[str]:
    """Every TXT value named logged as added at ``record`` (named logs each update)."""
    marker = f"adding an RR at '{record}' TXT \""
    return [line.split(marker, 1)[1].rstrip('"') for line in bind.log_text().splitlines()
            if marker in line]


def test_wildcard_and_base_name(bind: DnsLab, pebble: PebbleWithDns, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    record = "_acme-challenge.example.com"
    before = added_values(bind, record)
    deletes = bind.log_text().count(f"deleting an RR at {record} TXT")
    # No nameservers given: the check finds ns1.example.com by NS, at the lab's port.
    cert = run_issue(pebble, tmp_path / "state", ["*.example.com", "example.com"],
                     rfc2136(bind))
    assert sans(cert) == ["*.example.com", "example.com"]
    # Two values were added at the one name (one per authorization), and both are gone,
    # each by its own one-record delete (never a whole-RRset delete).
    assert len(added_values(bind, record)) == len(before) + 2
    assert bind.log_text().count(f"deleting an RR at {record} TXT") == deletes + 2
    assert "deleting rrset" not in bind.log_text()
    assert bind.query(record) == []
    assert bind.query("example.com", "A") == ["127.0.0.1"]  # the zone is otherwise untouched
    key_path = tmp_path / "state" / "certs" / "_wildcard.example.com" / "privkey.pem"
    assert stat.S_IMODE(os.stat(key_path.resolve()).st_mode) == 0o600
    _assert_no_secret(bind, caplog.text)


@pytest.mark.parametrize(("key_name", "secret", "reason"), [
    ("certfleet-lab", base64.b64encode(b"w" * 32).decode(),
     "TSIG signature not accepted (BADSIG): wrong secret or algorithm for this key name?"),
    ("no-such-key", None, "TSIG key not accepted (BADKEY)"),
    ("certfleet-lab-readonly", "readonly", "REFUSED (is this key allowed to update this name?)"),
], ids=["wrong-secret", "unknown-key", "key-without-rights"])
def test_refused_update_is_one_clear_error_and_nothing_is_finalized(
        bind: DnsLab, pebble: PebbleWithDns, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        key_name: str, secret: str | None, reason: str) -> None:
    caplog.set_level(logging.DEBUG)
    if secret is None:
        secret = bind.key_secret
    elif secret == "readonly":
        secret = bind.readonly_key_secret
    solver = RFC2136Solver(bind.address, key_name, secret)
    name = f"{key_name}.refused.example.com"
    recorder: list[Recorder] = []
    with pytest.raises(ChallengeError) as info:
        run_issue(pebble, tmp_path / "state", [name], solver, recorder)
    assert str(info.value) == (f"{name}: DNS update refused by 127.0.0.1:{bind.port} for zone "
                               f"example.com: {reason}")
    posted = recorder[0].urls
    assert recorder[0].order_url is not None
    assert not [u for u in posted if "finalize" in u], posted
    assert not [u for u in posted if "chal" in u], "the CA was told to validate"
    assert not (tmp_path / "state" / "certs" / name / "current").exists()
    _assert_no_secret(bind, caplog.text, str(info.value), secrets=(secret, bind.key_secret))


def test_cname_delegation(bind: DnsLab, pebble: PebbleWithDns, tmp_path: Path) -> None:
    target = "www-example-org.acme-delegate.example.net"
    assert bind.query("_acme-challenge.www.example.org", "CNAME") == [target + "."]
    before = added_values(bind, target)
    cert = run_issue(pebble, tmp_path / "state", ["www.example.org"], rfc2136(bind))
    assert sans(cert) == ["www.example.org"]
    assert len(added_values(bind, target)) == len(before) + 1
    assert added_values(bind, "_acme-challenge.www.example.org") == []
    assert bind.query(target) == []
    assert bind.query("_acme-challenge.www.example.org", "CNAME") == [target + "."]


HOOK = """#!/bin/sh
# certfleet dns-01 hook for the test: ACTION -- NAME RECORD VALUE, applied with nsupdate.
set -eu
action=$1 name=$3 record=$4 value=$5
case $action in
    present) op=add ;;
    cleanup) op=delete ;;
    *) echo "unknown action $action" >&2; exit 2 ;;
esac
case $record in
    *.example.com) zone=example.com ;;
    *.example.org) zone=example.org ;;
    *) echo "no zone for $record" >&2; exit 3 ;;
esac
echo "$op $record for $name" >> "$HOOK_LOG"
nsupdate -k "$KEY_FILE" <<EOF
server 127.0.0.1 $DNS_PORT
zone $zone
update $op $record. 60 TXT "$value"
send
EOF
"""


def test_hook_solver_with_nsupdate(bind: DnsLab, pebble: PebbleWithDns,
                                   tmp_path: Path) -> None:
    require(_find_nsupdate, FileNotFoundError)
    script = tmp_path / "dns-hook"
    script.write_text(HOOK)
    script.chmod(0o755)
    log = tmp_path / "hook.log"
    solver = HookSolver([str(script)], timeout=20, nameservers=[bind.address],
                        poll_interval=0.2, propagation_timeout=10,
                        env={"KEY_FILE": str(bind.key_file), "DNS_PORT": str(bind.port),
                             "HOOK_LOG": str(log)})
    names = ["hook.example.com", "*.hook.example.com"]
    cert = run_issue(pebble, tmp_path / "state", names, solver)
    assert sans(cert) == sorted(names)
    lines = sorted(log.read_text().splitlines())
    record = "_acme-challenge.hook.example.com"
    assert lines == sorted([f"add {record} for hook.example.com",
                            f"add {record} for *.hook.example.com",
                            f"delete {record} for hook.example.com",
                            f"delete {record} for *.hook.example.com"])
    assert bind.query(record) == []


def test_hook_failure_is_reported(bind: DnsLab, pebble: PebbleWithDns, tmp_path: Path) -> None:
    script = tmp_path / "dns-hook"
    script.write_text(HOOK)
    script.chmod(0o755)
    solver = HookSolver([str(script)], env={"KEY_FILE": str(bind.key_file),
                                           "DNS_PORT": str(bind.port),
                                           "HOOK_LOG": str(tmp_path / "hook.log")})
    with pytest.raises(ChallengeError) as info:  # example.net is not a zone the hook knows
        run_issue(pebble, tmp_path / "state", ["hook.example.net"], solver)
    assert str(info.value) == (f"hook.example.net: DNS hook {script} present failed: exit "
                               "status 3 (output: no zone for _acme-challenge.hook.example.net)")


def _find_nsupdate() -> str:
    found = shutil.which("nsupdate")
    if found is None:
        raise FileNotFoundError("nsupdate not installed (Debian package bind9-dnsutils; run "
                                "scripts/install-test-components)")
    return found


def _dead_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_propagation_timeout_names_the_silent_server(
        bind: DnsLab, pebble: PebbleWithDns, tmp_path: Path) -> None:
    dead = ("127.0.0.1", _dead_udp_port())
    solver = rfc2136(bind, nameservers=[bind.address, dead], propagation_timeout=1.5,
                     poll_interval=0.3, query_timeout=0.5)
    name = "slow.example.com"
    recorder: list[Recorder] = []
    with pytest.raises(ChallengeError) as info:
        run_issue(pebble, tmp_path / "state", [name], solver, recorder)
    # (dnspython reports a closed UDP port as a timeout; an ICMP error would do as well)
    assert re.fullmatch(re.escape(f"{name}: TXT _acme-challenge.{name} did not appear at "
                                  f"127.0.0.1:{dead[1]} within 1.5 s: no answer (")
                        + "(timed out|Connection refused)\\)", str(info.value)), str(info.value)
    assert not [u for u in recorder[0].urls if "chal" in u], "the CA was told to validate"
    assert bind.query(f"_acme-challenge.{name}") == []  # cleaned up all the same
    value_count = len(added_values(bind, f"_acme-challenge.{name}"))
    assert value_count == 1


def test_solver_against_bind_directly(bind: DnsLab) -> None:
    """present/ready/cleanup without a CA: values coexist and cleanup deletes only its own."""
    solver = rfc2136(bind)
    record = "_acme-challenge.direct.example.com"

    async def go() -> None:
        await solver.present("*.direct.example.com", "t1", "t1.x")
        await solver.present("direct.example.com", "t2", "t2.x")
        await solver.ready()
        assert bind.query(record) == sorted([dns01_txt_value("t1.x"), dns01_txt_value("t2.x")])
        await solver.cleanup("direct.example.com", "t2", "t2.x")
        assert bind.query(record) == [dns01_txt_value("t1.x")]
        await solver.cleanup("*.direct.example.com", "t1", "t1.x")

    asyncio.run(go())
    assert bind.query(record) == []


def test_dns_lab_lifecycle(tmp_path: Path) -> None:
    """The harness: every zone answers, stop() ends exactly its named, twice is harmless."""
    require(find_named, DnsLabUnavailable)
    lab = DnsLab(tmp_path / "bind").start()
    try:
        (pid,) = lab.pids
        assert lab.running
        assert lab.query("ns1.acme-delegate.example.net", "A") == ["127.0.0.1"]
        assert lab.query("anything.example.com", "A") == ["127.0.0.1"]
        assert lab.query("example.invalid", "A") == []  # NXDOMAIN from its own root
        assert oct(lab.key_file.stat().st_mode & 0o777) == "0o600"
    finally:
        lab.stop()
    lab.stop()
    assert not lab.running
    assert lab.pids == []
    assert not Path(f"/proc/{pid}").exists() or "named" not in Path(
        f"/proc/{pid}/comm").read_text()


def _assert_no_secret(bind: DnsLab, *texts: str, secrets: tuple[str, ...] = ()) -> None:
    forms = set()
    for secret in (*secrets, bind.key_secret, bind.readonly_key_secret):
        forms |= {secret, secret.rstrip("="), base64.b64decode(secret).hex()}
    for text in (*texts, bind.log_text()):
        for form in forms:
            assert form not in text


def test_run_issues_a_wildcard_with_dns01_from_the_config(
        bind: DnsLab, pebble: PebbleWithDns, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """`certfleet run` with [dns] in certfleet.toml: a wildcard and its base name."""
    from .fleet_helpers import run_cli, write_config

    domains = tmp_path / "domains.txt"
    domains.write_text("*.example.org example.org\n")
    secret_file = tmp_path / "tsig.secret"
    secret_file.write_text(bind.key_secret + "\n")
    secret_file.chmod(0o600)
    config = write_config(tmp_path / "certfleet.toml", pebble, tmp_path / "state", domains,
                          sections={"defaults": {"challenge": "dns-01"}, "dns": {
                              "server": f"127.0.0.1:{bind.port}",
                              "tsig_key_name": bind.key_name,
                              "tsig_algorithm": bind.key_algorithm,
                              "tsig_secret_file": str(secret_file),
                              "ns_port": bind.port, "propagation_timeout": 20}})
    assert bind.key_secret not in config.read_text()
    caplog.set_level(logging.DEBUG)
    rc, out = run_cli("run", "-vv", "--config", str(config))
    assert rc == 0, out
    assert out.startswith("*.example.org: issued (expires ")
    assert caplog.text
    assert bind.key_secret not in caplog.text + out
    pem = (tmp_path / "state" / "certs" / "_wildcard.example.org" / "cert.pem").read_bytes()
    san = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["*.example.org", "example.org"]
    assert bind.query("_acme-challenge.example.org", "TXT") == []
