"""Hostile TLS probes: after the deploy, the server asked for the new serial lies or stalls.

The certificate ``a`` goes to a target on the alias ``evil`` (web1b's real sshd under
another name, so it is a host of its own with its own ``probe``), whose probe points at a
hostile server; ``a``'s other target (web1a) and ``b`` (web1b) are probed nowhere and must
get their files. Each hostile server fails that one target with a one-line reason, in
bounded time (``probe.PROBE_WAIT`` plus one attempt, here shortened; one test keeps the
real bounds), and never with an exception that would stop the other hosts. The servers
hold a connection for ``STALL`` seconds: a probe without its bounds would wait that long,
past ``BOUND``, so the test fails instead of hanging; and the reason names the attempt's
timeout when that is what ended it. Before this
module, a certificate the parser refused raised ``InvalidVersion`` out of the probe.

Servers: a certificate ``cryptography`` refuses (X.509 version 2), served by a Python TLS
server and by the real nginx of web1b; a server that accepts and says nothing (short
bounds, and the real ones); one that answers garbage; one that closes at once; one that
drips a TLS record header a byte at a time. The victims (``hostile_lab``) stay unchanged
throughout, as in every hostile-target test.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from certfleet.deploy import probe
from tests.faults.hostile_lab import Lab, Layout, start

pytestmark = pytest.mark.integration
SHORT_WAIT, SHORT_ATTEMPT = 2.0, 1.0
# A deploy here takes a few seconds (under 10 under load) plus the probe's own bound (4 s
# shortened, 21 s as shipped); one that waited for the hostile server would take STALL.
STALL = 300.0
BOUND = 120.0


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    for lab in start():
        import web_lab

        alias = lab.base / "ssh_config.evil"
        web_lab.write_ssh_config(alias, {"evil": lab.web["web1b"]}, lab.identity,
                                 lab.known_hosts)
        lab.extra_ssh_config.append(alias)
        yield lab


@pytest.fixture
def short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "PROBE_WAIT", SHORT_WAIT)
    monkeypatch.setattr(probe, "ATTEMPT_TIMEOUT", SHORT_ATTEMPT)


class RawServer:
    """A TCP server on 127.0.0.1 that runs ``handle(conn)`` for each connection."""

    def __init__(self, handle: Callable[[socket.socket, threading.Event], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.handle = handle
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.handle(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@contextlib.contextmanager
def serving(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[RawServer]:
    server = RawServer(handle)
    try:
        yield server
    finally:
        server.close()


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(STALL)


def garbage(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\x1b[2J\r\n\r\n"
                 + random.Random("garbage").randbytes(2048))
    stop.wait(STALL)


def closes(conn: socket.socket, stop: threading.Event) -> None:
    conn.close()


def drips(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(4096)
    for byte in b"\x16\x03\x03\x40\x00" + b"\x02" * 1000:
        conn.sendall(bytes([byte]))
        if stop.wait(0.3):
            return


def v2_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate whose version field says v2: OpenSSL serves it, and
    ``cryptography`` refuses it (InvalidVersion)."""
    import web_lab

    cert, _, key_pem = web_lab.self_signed("hostile", ["hostile.invalid"])
    der = cert.public_bytes(serialization.Encoding.DER)
    at = der.index(bytes.fromhex("a003020102"))
    der = der[:at] + bytes.fromhex("a003020101") + der[at + 5:]
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fullchain.pem").write_bytes(pem)
    (directory / "privkey.pem").write_bytes(key_pem)
    (directory / "privkey.pem").chmod(0o600)
    return directory / "fullchain.pem", directory / "privkey.pem"


def _layout(lab: Lab, tmp_path: Path, port: int, address: str = "127.0.0.1") -> Layout:
    target = lab.base / f"p-{uuid.uuid4().hex[:8]}"
    target.mkdir(mode=0o755)
    return lab.layout(tmp_path, str(target), hostile_host="evil",
                      settings={"owner": "root",
                                "probe": {"port": port, "address": address}})


def _fails(layout: Layout, reason: str) -> str:
    started = time.monotonic()
    cause = layout.deploy_and_check(reason)
    took = time.monotonic() - started
    assert took < BOUND, f"took {took:.1f} s"
    assert cause.startswith("TLS check 127.0.0."), cause
    assert "expected serial" in cause, cause
    assert "\x1b" not in cause
    return cause


@pytest.mark.usefixtures("short")
def test_certificate_the_parser_refuses(lab: Lab, tmp_path: Path) -> None:
    cert, key = v2_certificate(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def tls(conn: socket.socket, stop: threading.Event) -> None:
        with context.wrap_socket(conn, server_side=True) as wrapped:
            wrapped.recv(1)

    with serving(tls) as server:
        _fails(_layout(lab, tmp_path, server.port),
               "presents a certificate that does not parse (1 is not a valid X509 version)")
        assert server.accepted >= 1


@pytest.mark.usefixtures("short")
def test_certificate_the_parser_refuses_from_nginx(lab: Lab, tmp_path: Path) -> None:
    """web1b's real nginx serves the v2 certificate from its default server."""
    web1b, sni = lab.web["web1b"], lab.names[0]  # the probe asks for a's name
    saved = {name: (web1b.deploy_dir / name).read_bytes()
             for name in ("fullchain.pem", "privkey.pem")}
    before = web1b.served_der(sni)
    v2, _ = v2_certificate(web1b.deploy_dir)
    subprocess.run(web1b.reload_argv(), check=True, capture_output=True)
    try:
        # the reload is asynchronous: the probe must meet the new certificate
        assert web1b.wait_for_der(sni, ssl.PEM_cert_to_DER_cert(v2.read_text()))
        _fails(_layout(lab, tmp_path, web1b.tls_port, web1b.address),
               "presents a certificate that does not parse")
    finally:
        for name, data in saved.items():
            (web1b.deploy_dir / name).write_bytes(data)
        subprocess.run(web1b.reload_argv(), check=True, capture_output=True)
        assert web1b.wait_for_der(sni, before)


@pytest.mark.usefixtures("short")
def test_server_that_never_answers(lab: Lab, tmp_path: Path) -> None:
    with serving(silent) as server:
        _fails(_layout(lab, tmp_path, server.port),
               f"presents no TLS (no answer within {SHORT_ATTEMPT:g} s)")


def test_server_that_never_answers_real_bounds(lab: Lab, tmp_path: Path) -> None:
    """The loop's bound as shipped: PROBE_WAIT plus one attempt (and a second of slack)."""
    assert probe.PROBE_WAIT + probe.ATTEMPT_TIMEOUT + 1 < BOUND < STALL
    with serving(silent) as server:
        _fails(_layout(lab, tmp_path, server.port),
               f"presents no TLS (no answer within {probe.ATTEMPT_TIMEOUT:g} s)")


@pytest.mark.usefixtures("short")
def test_server_that_answers_garbage(lab: Lab, tmp_path: Path) -> None:
    with serving(garbage) as server:
        _fails(_layout(lab, tmp_path, server.port), "presents no TLS (")


@pytest.mark.usefixtures("short")
def test_server_that_closes_at_once(lab: Lab, tmp_path: Path) -> None:
    with serving(closes) as server:
        _fails(_layout(lab, tmp_path, server.port), "presents no TLS (")


@pytest.mark.usefixtures("short")
def test_server_that_drips(lab: Lab, tmp_path: Path) -> None:
    with serving(drips) as server:
        _fails(_layout(lab, tmp_path, server.port),
               f"presents no TLS (no answer within {SHORT_ATTEMPT:g} s)")
