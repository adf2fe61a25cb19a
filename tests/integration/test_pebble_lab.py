"""Tests of the Pebble test-CA harness itself (tools/pebble_lab.py), against the real
binaries. They use only the stdlib and ``cryptography``: certfleet is not involved."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import json
import os
import re
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pebble_lab import CertificateNotFound, LabError, PebbleLab

from tests import waits

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _urlopen(url: str, ctx: ssl.SSLContext, data: bytes | None = None, **headers: str) -> Any:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    return opener.open(urllib.request.Request(url, data=data, headers=headers), timeout=10)


def _lab_ctx(lab: PebbleLab) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(lab.ca_bundle))


def _directory(lab: PebbleLab) -> dict[str, Any]:
    with _urlopen(lab.directory_url, _lab_ctx(lab)) as resp:
        assert resp.status == 200
        result: dict[str, Any] = json.loads(resp.read())
        return result


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------- minimal DNS


def _skip_name(msg: bytes, off: int) -> int:
    while True:
        length = msg[off]
        if length & 0xC0 == 0xC0:  # compression pointer
            return off + 2
        off += 1 + length
        if length == 0:
            return off


def dns_query(server: tuple[str, int], name: str, qtype: int) -> tuple[int, list[bytes]]:
    """One UDP query; returns (rcode, rdata of the answers of type ``qtype``)."""
    qid = secrets.randbelow(0x10000)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(packet, server)
        msg, _ = sock.recvfrom(65535)
    rid, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", msg[:12])
    assert rid == qid
    assert flags & 0x8000, "not a response"
    off = 12
    for _ in range(qdcount):
        off = _skip_name(msg, off) + 4
    answers = []
    for _ in range(ancount):
        off = _skip_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[off : off + 10])
        off += 10
        if rtype == qtype:
            answers.append(msg[off : off + rdlen])
        off += rdlen
    return flags & 0xF, answers


A, TXT, AAAA = 1, 16, 28


# --------------------------------------------------------------------------- minimal ACME


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _MiniAcme:
    """Just enough ACME (ES256 JWS) to get a certificate issued by a lab."""

    def __init__(self, lab: PebbleLab) -> None:
        self.ctx = _lab_ctx(lab)
        self.key = ec.generate_private_key(ec.SECP256R1())
        nums = self.key.public_key().public_numbers()
        self.jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(nums.x.to_bytes(32, "big")),
            "y": _b64(nums.y.to_bytes(32, "big")),
        }
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode()
        self.thumbprint = _b64(hashlib.sha256(canonical).digest())
        self.dir = _directory(lab)
        self.kid: str | None = None
        self.nonce: str | None = None

    def post(self, url: str, payload: dict[str, Any] | None) -> tuple[int, Any, bytes]:
        if self.nonce is None:
            req = urllib.request.Request(self.dir["newNonce"], method="HEAD")
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as resp:
                self.nonce = resp.headers["Replay-Nonce"]
        protected: dict[str, Any] = {"alg": "ES256", "nonce": self.nonce, "url": url}
        if self.kid:
            protected["kid"] = self.kid
        else:
            protected["jwk"] = self.jwk
        prot = _b64(json.dumps(protected).encode())
        body = "" if payload is None else _b64(json.dumps(payload).encode())
        r, s = decode_dss_signature(
            self.key.sign(f"{prot}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        )
        jws = {
            "protected": prot,
            "payload": body,
            "signature": _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        }
        try:
            with _urlopen(
                url, self.ctx, json.dumps(jws).encode(), **{"Content-Type": "application/jose+json"}
            ) as resp:
                self.nonce = resp.headers.get("Replay-Nonce")
                return int(resp.status), resp.headers, bytes(resp.read())
        except urllib.error.HTTPError as exc:
            self.nonce = exc.headers.get("Replay-Nonce")
            return int(exc.code), exc.headers, bytes(exc.read())

    def ok(self, url: str, payload: dict[str, Any] | None) -> tuple[Any, bytes]:
        status, headers, body = self.post(url, payload)
        assert 200 <= status < 300, f"POST {url} -> {status}: {body[:500]!r}"
        return headers, body

    def poll(self, url: str, *, until_not: str) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while True:
            obj: dict[str, Any] = json.loads(self.ok(url, None)[1])
            if obj["status"] != until_not or time.monotonic() > deadline:
                return obj
            time.sleep(0.1)

    def issue(self, name: str, tokens: dict[str, str]) -> bytes:
        """Register, order ``name``, answer http-01 via ``tokens``, return the PEM chain."""
        if self.kid is None:
            headers, _ = self.ok(self.dir["newAccount"], {"termsOfServiceAgreed": True})
            self.kid = headers["Location"]
        headers, body = self.ok(
            self.dir["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
        )
        order_url, order = headers["Location"], json.loads(body)
        for authz_url in order["authorizations"]:
            authz = json.loads(self.ok(authz_url, None)[1])
            challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
            tokens[challenge["token"]] = f"{challenge['token']}.{self.thumbprint}"
            self.ok(challenge["url"], {})
            authz = self.poll(authz_url, until_not="pending")
            assert authz["status"] == "valid", authz
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.ok(order["finalize"], {"csr": _b64(csr.public_bytes(serialization.Encoding.DER))})
        order = self.poll(order_url, until_not="processing")
        assert order["status"] == "valid", order
        return self.ok(order["certificate"], None)[1]


@contextmanager
def _http01_responder(port: int) -> Iterator[tuple[dict[str, str], list[str]]]:
    """Serve http-01 key authorizations on 127.0.0.1:port; yields (tokens, hosts seen)."""
    tokens: dict[str, str] = {}
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Host", ""))
            answer = tokens.get(self.path.rsplit("/", 1)[-1])
            self.send_response(200 if answer else 404)
            self.end_headers()
            if answer:
                self.wfile.write(answer.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tokens, seen
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- tests


def test_directory_is_served(pebble: PebbleLab) -> None:
    assert pebble.directory_url.startswith("https://127.0.0.1:")
    directory = _directory(pebble)
    for key in ("newOrder", "newNonce", "newAccount", "revokeCert", "renewalInfo"):
        assert directory[key].startswith("https://127.0.0.1:")
    profiles = directory["meta"]["profiles"]
    assert {"default", "shortlived"} <= set(profiles)
    assert directory["meta"]["externalAccountRequired"] is False


def test_default_trust_is_rejected(pebble: PebbleLab) -> None:
    with pytest.raises(urllib.error.URLError) as excinfo:
        _urlopen(pebble.directory_url, ssl.create_default_context())
    assert isinstance(excinfo.value.reason, ssl.SSLCertVerificationError)


def test_tls_material(pebble: PebbleLab) -> None:
    ca = x509.load_pem_x509_certificate(pebble.ca_bundle.read_bytes())
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf = x509.load_pem_x509_certificate((pebble.workdir / "tls-cert.pem").read_bytes())
    leaf.verify_directly_issued_by(ca)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # localhost is in the leaf too
    url = pebble.directory_url.replace("127.0.0.1", "localhost")
    with _urlopen(url, _lab_ctx(pebble)) as resp:
        assert resp.status == 200


def test_dns_mocks(pebble: PebbleLab) -> None:
    host = f"a-{secrets.token_hex(4)}.lab.example"
    # unknown names: A -> 127.0.0.1 (default), AAAA -> nothing (so validation uses IPv4)
    assert dns_query(pebble.dns_address, host, A) == (0, [socket.inet_aton("127.0.0.1")])
    assert dns_query(pebble.dns_address, host, AAAA)[1] == []

    pebble.add_a(host, "127.0.0.42")
    assert dns_query(pebble.dns_address, host, A)[1] == [socket.inet_aton("127.0.0.42")]
    pebble.clear_a(host)
    assert dns_query(pebble.dns_address, host, A)[1] == [socket.inet_aton("127.0.0.1")]

    txt_host = f"_acme-challenge.{host}"
    pebble.add_txt(txt_host, "digest-value")
    assert dns_query(pebble.dns_address, txt_host, TXT)[1] == [b"\x0cdigest-value"]
    pebble.clear_txt(txt_host)
    assert dns_query(pebble.dns_address, txt_host, TXT)[1] == []


def test_set_default_ipv4(pebble_lab_factory: Any) -> None:
    lab = pebble_lab_factory()
    lab.set_default_ipv4("127.0.0.9")
    assert dns_query(lab.dns_address, "x.example", A)[1] == [socket.inet_aton("127.0.0.9")]


def test_cert_status_unknown_serial(pebble: PebbleLab) -> None:
    with pytest.raises(CertificateNotFound, match="no certificate with serial 0x1234abcd"):
        pebble.cert_status(0x1234ABCD)


def test_roots_and_intermediates(pebble: PebbleLab) -> None:
    root = x509.load_pem_x509_certificate(pebble.roots_pem())
    intermediate = x509.load_pem_x509_certificate(pebble.intermediates_pem(0))
    intermediate.verify_directly_issued_by(root)
    with pytest.raises(LabError, match="HTTP 404"):
        pebble.roots_pem(7)


def test_set_renewal_info_rejects_unknown_certificate(pebble: PebbleLab) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "stranger")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(LabError, match="HTTP 404"):
        pebble.set_renewal_info(cert, now, now + dt.timedelta(hours=1))
    with pytest.raises(ValueError):
        pebble.set_renewal_info(cert)


def test_issue_revoke_and_renewal_info(pebble_lab_factory: Any) -> None:
    """End to end through the harness: real http-01 validation against 127.0.0.1:http_port
    (over IPv4), cert_status before/after revocation, set_renewal_info."""
    lab = pebble_lab_factory(env={"PEBBLE_WFE_NONCEREJECT": "0"})
    client = _MiniAcme(lab)
    with _http01_responder(lab.http_port) as (tokens, seen):
        chain = client.issue("www.lab.example", tokens)
    assert seen  # Pebble 2.10 validates each challenge 3 times ("perspectives")
    assert all(host == f"www.lab.example:{lab.http_port}" for host in seen)
    leaf = x509.load_pem_x509_certificate(chain)
    serial = leaf.serial_number
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(lab.intermediates_pem()))

    status = lab.cert_status(serial)
    assert status["Status"] == "Valid"
    assert int(status["Serial"], 16) == serial
    # the log zero-pads the serial to 16 hex digits, cert-status's "Serial" does not
    logged = re.findall(r"Issued certificate serial ([0-9a-f]+)", lab.log_text())
    assert [int(s, 16) for s in logged] == [serial]
    assert x509.load_pem_x509_certificate(status["Certificate"].encode()) == leaf

    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    cert_id = (
        f"{_b64(aki.key_identifier)}.{_b64(serial.to_bytes(serial.bit_length() // 8 + 1, 'big'))}"
    )
    ari_url = f"{client.dir['renewalInfo']}/{cert_id}"
    start = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    lab.set_renewal_info(
        chain, start, start + dt.timedelta(hours=1), explanation_url="https://x.example/why"
    )
    with _urlopen(ari_url, client.ctx) as resp:
        assert json.loads(resp.read()) == {
            "suggestedWindow": {"start": "2020-01-02T03:04:05Z", "end": "2020-01-02T04:04:05Z"},
            "explanationURL": "https://x.example/why",
        }
        assert resp.headers["Retry-After"] == "21600"

    der = leaf.public_bytes(serialization.Encoding.DER)
    client.ok(client.dir["revokeCert"], {"certificate": _b64(der), "reason": 4})
    status = lab.cert_status(serial)
    assert status["Status"] == "Revoked"
    assert status["Reason"] == 4
    assert status["RevokedAt"]


def test_config_and_env_knobs(pebble_lab_factory: Any) -> None:
    lab = pebble_lab_factory(
        env={"PEBBLE_WFE_NONCEREJECT": "0"},
        config={
            "externalAccountBindingRequired": True,
            "externalAccountMACKeys": {"kid-1": _b64(b"k" * 32)},
            "certificateValidityPeriod": 3600,
        },
    )
    assert _directory(lab)["meta"]["externalAccountRequired"] is True
    assert lab.pebble_config["profiles"]["default"]["validityPeriod"] == 3600
    assert lab.pebble_config["profiles"]["shortlived"]["validityPeriod"] == 518400
    log = lab.log_text()
    assert "reject 0% of good nonces" in log
    assert 'Loaded profile "default" with certificate validity period of 3600 seconds' in log
    assert "Running in strict mode" in log


def test_stop_leaves_no_process(pebble_lab_factory: Any) -> None:
    lab = pebble_lab_factory()
    pids = lab.pids
    assert len(pids) == 2
    assert all(_alive(pid) for pid in pids)
    lab.stop()
    assert not any(_alive(pid) for pid in pids)
    assert lab.pids == []
    lab.stop()  # idempotent
    with pytest.raises(LabError, match="not running"):
        lab.add_a("x.example", "127.0.0.1")


def test_cli_serve(tmp_path: Path, pebble_lab_factory: Any) -> None:
    del pebble_lab_factory  # only for its skip-or-fail check
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "pebble_lab.py"),
            "serve",
            "--workdir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, str] = {}
        while "workdir" not in info:
            line = proc.stdout.readline()
            assert line, (
                f"serve exited early: {proc.wait(5)} {proc.stderr.read() if proc.stderr else ''}"
            )
            key, _, value = line.strip().partition("=")
            info[key] = value
        assert int(info["http_port"]) > 0
        ctx = ssl.create_default_context(cafile=info["ca_bundle"])
        with _urlopen(info["directory_url"], ctx) as resp:
            assert "newOrder" in json.loads(resp.read())
        children = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        assert len(children) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=waits.PROCESS) == 0
        assert not any(_alive(pid) for pid in children)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
