"""``deploy_all``: a fault in one host's deploy fails that host's targets only.

Hosts are deployed in parallel; an exception of a kind no transport is meant to raise (a
fault of certfleet's own, as the hostile-target rounds once found: a ``StoreError`` from
the local transport, ``InvalidVersion`` from the probe) must become that host's result and
never end ``deploy_all`` while other hosts are in flight. The healthy host here is a real
local target directory; the faulty one stands in for the bug.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pytest
from cryptography.hazmat.primitives import serialization

from certfleet.deploy import DeployFile, Transport
from certfleet.deploy import probe as probe_
from certfleet.deploy.batch import DeployJob, default_transport, deploy_all
from certfleet.deploy.local import LocalTransport
from certfleet.deploy.ssh import SshTransport
from certfleet.errors import DeployError, safe_text
from certfleet.layout import Placement
from certfleet.spec import HostSettings, Target, TlsProbe
from tests.unit.pki import CA, new_key, rsa_key

FILES = (DeployFile("cert.pem", b"cert\n", 0o644), DeployFile("privkey.pem", b"key\n", 0o600))


class Faulty:
    """A host whose install fails with an exception no transport should let out."""

    label = "faulty"

    def __init__(self, fault: BaseException) -> None:
        self.fault = fault

    async def __aenter__(self) -> Faulty:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    async def install(self, where: Placement, files: Sequence[DeployFile],
                      settings: HostSettings) -> None:
        await asyncio.sleep(0)   # the other host is in flight meanwhile
        raise self.fault

    async def run(self, argv: Sequence[str]) -> None:
        raise AssertionError("no reload after a failed install")

    def peer_address(self) -> str | None:
        return None


def _job(target: Target) -> DeployJob:
    placement = Placement(target.path, tuple((f.name, f.name) for f in FILES), False)
    return DeployJob("a.example", target, FILES, 0x1234, HostSettings(trust_target_dir=True),
                     1, placement)


@pytest.mark.parametrize("fault", [RuntimeError("a bug\x1b[2J"), KeyError("cert.pem"),
                                   ValueError("x")])
def test_a_fault_of_one_host_fails_its_targets_only(tmp_path: Path,
                                                    fault: BaseException) -> None:
    good = tmp_path / "good"
    good.mkdir()
    jobs = [_job(Target(str(good))), _job(Target("/srv/tls", host="bad.example")),
            _job(Target("/srv/other", host="bad.example"))]

    def transport(job: DeployJob) -> Transport:
        return LocalTransport() if job.target.is_local else Faulty(fault)

    heard: list[str] = []
    results = asyncio.run(deploy_all(jobs, transport, lambda r: heard.append(r.target.key)))
    by_target = {result.target.key: result for result in results}
    assert by_target[str(good)].ok
    assert (good / "cert.pem").read_bytes() == b"cert\n"
    for key in ("bad.example:/srv/tls", "bad.example:/srv/other"):
        error = by_target[key].error
        assert error is not None
        assert error == f"unexpected error: {type(fault).__name__}: {safe_text(str(fault))}"
        assert "\x1b" not in error
    assert sorted(heard) == sorted(by_target)   # every result was reported as it came


# -- one connection and one reload per host, results, probes ----------------------------------

class Recorder:
    """A host reached as ``label``: installs into real local directories (the target's path)
    through a LocalTransport and runs the reload for real; records what it was asked."""

    def __init__(self, label: str, log: list[str], *, refuse: str | None = None,
                 peer: str | None = None) -> None:
        self.label, self.log, self.refuse, self.peer = label, log, refuse, peer
        self.local = LocalTransport()

    async def __aenter__(self) -> Recorder:
        if self.refuse is not None:
            raise DeployError(self.refuse)
        self.log.append(f"connect {self.label}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    async def install(self, where: Placement, files: Sequence[DeployFile],
                      settings: HostSettings) -> None:
        await self.local.install(where, files, settings)

    async def run(self, argv: Sequence[str]) -> None:
        self.log.append(f"reload {self.label}")
        await self.local.run(argv)

    def peer_address(self) -> str | None:
        return self.peer


def _remote(tmp_path: Path, name: str, host: str, user: str | None = None, *,
            settings: HostSettings | None = None, cert: str = "a.example",
            serial: int = 0x1234) -> DeployJob:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    target = Target(str(directory), host=host, user=user)
    placement = Placement(str(directory), tuple((f.name, f.name) for f in FILES), False)
    return DeployJob(cert, target, FILES, serial, settings or HostSettings(), 7, placement)


def test_each_host_and_user_gets_one_connection_and_one_reload(tmp_path: Path) -> None:
    reload = ("/bin/sh", "-c", f"echo reloaded >> {tmp_path}/reloads")
    plain = HostSettings(reload=reload)
    jobs = [_remote(tmp_path, "t1", "web1", settings=plain),
            _remote(tmp_path, "t2", "web1", settings=plain, cert="b.example", serial=0x99),
            _remote(tmp_path, "t3", "web1", "alice", settings=plain),
            _remote(tmp_path, "t4", "web1", settings=HostSettings(user="bob", reload=reload)),
            _remote(tmp_path, "t5", "web2", settings=plain),
            _remote(tmp_path, "t6", "web1", settings=HostSettings(user="carol", reload=reload))]
    log: list[str] = []
    results = asyncio.run(deploy_all(jobs, lambda job: Recorder(
        job.target.user or job.settings.user or job.target.host_key, log)))
    assert sorted(log) == ["connect alice", "connect bob", "connect carol", "connect web1",
                           "connect web2", "reload alice", "reload bob", "reload carol",
                           "reload web1", "reload web2"]
    assert (tmp_path / "reloads").read_text() == "reloaded\n" * 5
    assert [(r.cert, r.target, r.error, r.serial, r.version) for r in results] == [
        (job.cert, job.target, None, job.serial, 7) for job in jobs]
    for name in ("t1", "t2", "t3", "t4", "t5", "t6"):
        assert (tmp_path / name / "cert.pem").read_bytes() == b"cert\n"


def test_a_failed_install_or_reload_is_that_targets_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    failing = HostSettings(reload=("/bin/sh", "-c", "echo nope; exit 2"))
    good = _remote(tmp_path, "good", "web1", settings=failing)
    missing = _remote(tmp_path, "x", "web1", settings=failing)
    missing = DeployJob(missing.cert, missing.target, FILES, 1, failing, 7,
                        Placement(f"{tmp_path}/gone", missing.placement.files, False))
    log: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="certfleet.deploy.batch"):
        results = asyncio.run(deploy_all([good, missing], lambda job: Recorder("web1", log)))
    assert [r.error for r in results] == [
        "files in place, reload failed: reload /bin/sh exited 2: nope",
        f"{tmp_path}/gone: target directory missing"]
    assert log == ["connect web1", "reload web1"]
    assert [r.getMessage() for r in caplog.records] == [
        f"a.example: files in place at web1:{tmp_path}/good"]   # and no fault of its own


def test_a_host_that_cannot_be_reached_fails_each_of_its_targets(tmp_path: Path) -> None:
    jobs = [_remote(tmp_path, "t1", "web1"), _remote(tmp_path, "t2", "web1")]
    results = asyncio.run(deploy_all(jobs, lambda job: Recorder(
        "web1", [], refuse="web1: cannot connect: refused")))
    assert [(r.error, r.serial, r.version) for r in results] == [
        ("web1: cannot connect: refused", 0x1234, 7)] * 2
    assert not (tmp_path / "t1" / "cert.pem").exists()


def test_a_fault_is_logged_with_its_host(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    jobs = [_remote(tmp_path, "t1", "bad.example"), _job(Target(str(tmp_path)))]
    jobs[1] = DeployJob("c.example", Target("/srv/x"), FILES, 1, HostSettings(), 1,
                        jobs[1].placement)

    def transport(job: DeployJob) -> Transport:
        return Faulty(RuntimeError("bug"))

    with caplog.at_level(logging.DEBUG, logger="certfleet.deploy.batch"):
        asyncio.run(deploy_all(jobs, transport))
    faults = sorted((r.getMessage(), r.exc_info and r.exc_info[0]) for r in caplog.records)
    assert faults == [("deploy to bad.example", RuntimeError), ("deploy to local", RuntimeError)]


def test_at_most_eight_hosts_at_once(tmp_path: Path) -> None:
    busy: list[int] = [0, 0]   # now, most

    class Slow(Faulty):
        async def install(self, where: Placement, files: Sequence[DeployFile],
                          settings: HostSettings) -> None:
            busy[0] += 1
            busy[1] = max(busy)
            for _ in range(5):
                await asyncio.sleep(0)
            busy[0] -= 1

        async def run(self, argv: Sequence[str]) -> None:
            return None

    jobs = [_remote(tmp_path, f"t{i}", f"web{i}") for i in range(12)]
    results = asyncio.run(deploy_all(jobs, lambda job: Slow(ValueError())))
    assert all(result.ok for result in results)
    assert busy == [0, 8]


def test_the_default_transports(tmp_path: Path) -> None:
    settings = HostSettings(user="ops")
    make = default_transport([tmp_path / "ssh_config"], tmp_path / "known_hosts")
    local = make(_job(Target(str(tmp_path))))
    assert isinstance(local, LocalTransport)
    remote = make(DeployJob("a.example", Target("/srv/tls", host="web1"), FILES, 1, settings,
                            1, Placement("/srv/tls", (), False)))
    assert isinstance(remote, SshTransport)
    assert (remote.label, remote.settings, remote.ssh_config, remote.known_hosts) == (
        "ops@web1", settings, [str(tmp_path / "ssh_config")], tmp_path / "known_hosts")


@pytest.fixture
def tls_site(tmp_path: Path) -> tuple[ssl.SSLContext, int, int]:
    """A server context for SNI ``site.example`` only, holding an ECDSA and an RSA
    certificate of that name (the ECDSA one shown unless only RSA suites are offered)."""
    ca = CA()
    serials = {"ec": 0xEC01, "rsa": 0x45A1}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for kind, key in (("ec", new_key()), ("rsa", rsa_key())):
        (tmp_path / f"{kind}.pem").write_bytes(
            ca.issue(key.public_key(), ["site.example"], serials[kind]) + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        context.load_cert_chain(tmp_path / f"{kind}.pem")

    def only_site(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> int | None:
        return None if name == "site.example" else ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

    context.sni_callback = only_site  # type: ignore[assignment]
    return context, serials["ec"], serials["rsa"]


def test_each_installed_target_is_probed_for_its_own_serial(
        tmp_path: Path, tls_site: tuple[ssl.SSLContext, int, int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_, "PROBE_WAIT", 0.3)   # a wrong serial fails at once
    context, ec_serial, rsa_serial = tls_site

    async def served(*jobs: DeployJob, peer: str | None = None) -> list[str | None]:
        async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(hello, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            ready = [DeployJob(j.cert, j.target, j.files, j.serial, HostSettings(
                probe=None if j.settings.probe is None else TlsProbe(
                    port, j.settings.probe.address)), j.version, j.placement, j.key_type)
                for j in jobs]

            def transport(job: DeployJob) -> Transport:
                return LocalTransport() if job.target.is_local else Recorder(
                    job.target.host_key, [], peer=peer)
            return [r.error for r in await deploy_all(ready, transport)]

    def job(name: str, cert: str, serial: int, key_type: str = "", *, host: str | None = None,
            address: str | None = None, probe: bool = True) -> DeployJob:
        (tmp_path / name).mkdir()
        target = Target(str(tmp_path / name), host=host)
        return DeployJob(cert, target, FILES, serial, HostSettings(
            probe=TlsProbe(0, address) if probe else None), 1,
            Placement(str(tmp_path / name), tuple((f.name, f.name) for f in FILES), False),
            key_type)

    # A local target is probed on this host; NAME+rsa2048 asks for NAME's RSA certificate.
    assert asyncio.run(served(job("l1", "site.example", ec_serial, "ec256"),
                              job("l2", "site.example+rsa2048", rsa_serial, "rsa2048"))) \
        == [None, None]
    # A host without a peer address is probed by its name; a probe address wins over both.
    assert asyncio.run(served(job("r1", "site.example", ec_serial, host="127.0.0.1"))) == [None]
    assert asyncio.run(served(job("r2", "site.example", ec_serial, host="nowhere.invalid",
                                  address="127.0.0.1"), peer="192.0.2.1")) == [None]
    # A target without a probe is not probed; the next one still is, and fails here.
    errors = asyncio.run(served(job("n1", "site.example", 1, probe=False),
                                job("n2", "site.example", 0x77)))
    assert errors[0] is None
    assert errors[1] is not None
    assert errors[1].startswith("TLS check 127.0.0.1:")
    assert errors[1].endswith(f"(SNI site.example): presents serial {ec_serial:x}, "
                              "expected serial 77")
