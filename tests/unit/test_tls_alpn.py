"""certfleet.solvers.tls_alpn: the RFC 8737 validation certificate, and the responder on
loopback refusing everyone who is not an acme-tls/1 client asking for a presented name."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certfleet.errors import ChallengeError
from certfleet.solvers.tls_alpn import (
    ID_PE_ACME_IDENTIFIER,
    NO_APPLICATION_PROTOCOL,
    TlsAlpnSolver,
    sni_name,
    validation_certificate,
)

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTH = TOKEN + ".NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
UNRECOGNIZED_NAME = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112])  # fatal alert 112
OID_DER = bytes.fromhex("06082b0601050507011f")  # 1.3.6.1.5.5.7.1.31, DER


def acme_extension(cert: x509.Certificate) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_oid(ID_PE_ACME_IDENTIFIER)


def check_validation_cert(der: bytes, name: str, key_auth: str) -> None:
    """What a CA checks (RFC 8737 §3), done with cryptography and on the raw DER."""
    cert = x509.load_der_x509_certificate(der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName(name)]
    ext = acme_extension(cert)
    assert ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    digest = hashlib.sha256(key_auth.encode()).digest()
    assert ext.value.value == b"\x04\x20" + digest  # Authorization ::= OCTET STRING (SIZE (32))
    # extnID, critical TRUE, extnValue OCTET STRING wrapping the 34-byte OCTET STRING
    assert OID_DER + b"\x01\x01\xff\x04\x22\x04\x20" + digest in der


def test_certificate_for_dns_name() -> None:
    cert, key = validation_certificate("Www.Example.com", KEY_AUTH)
    check_validation_cert(cert.public_bytes(serialization.Encoding.DER), "www.example.com",
                          KEY_AUTH)
    assert isinstance(key.curve, ec.SECP256R1)
    assert cert.public_key() == key.public_key()
    cert.verify_directly_issued_by(cert)  # self-signed


def test_certificate_for_ip_identifiers() -> None:
    for ip in ("192.0.2.7", "2001:db8::1"):
        cert, _ = validation_certificate(ip, KEY_AUTH)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert list(san) == [x509.IPAddress(ipaddress.ip_address(ip))]
        assert acme_extension(cert).critical


def test_fresh_key_per_certificate() -> None:
    (a, _), (b, _) = (validation_certificate("a.example", KEY_AUTH) for _ in range(2))
    assert a.public_key() != b.public_key()
    assert a.serial_number != b.serial_number


def test_sni_name() -> None:
    assert sni_name("WWW.Example.com.") == "www.example.com"
    assert sni_name("192.0.2.7") == "7.2.0.192.in-addr.arpa"  # RFC 8738 §6
    assert sni_name("2001:db8::1").endswith(".8.b.d.0.1.0.0.2.ip6.arpa")


# -- the responder on loopback -------------------------------------------------------------------

def client_context(alpn: list[str] | None, tls12: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


async def probe(port: int, sni: str | None, alpn: list[str] | None,
                tls12: bool = False) -> bytes | str:
    """A TLS handshake from Python's ssl: the peer's certificate (DER), or why it failed."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(alpn, tls12), server_hostname=sni or ""), 5)
    except (OSError, asyncio.IncompleteReadError) as exc:
        return f"failed: {exc!r}"
    conn = writer.get_extra_info("ssl_object")
    der = conn.getpeercert(binary_form=True)
    assert conn.selected_alpn_protocol() == "acme-tls/1"
    writer.close()
    return bytes(der)


async def raw_reply(port: int, sni: str | None, alpn: list[str] | None) -> bytes:
    """Send a ClientHello; every byte the server sends back until it closes (or 2s pass)."""
    hello = client_context(alpn).wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(),
                                          server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        hello.do_handshake()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(out.read())
    reply = b""
    with contextlib.suppress(TimeoutError):
        while chunk := await asyncio.wait_for(reader.read(65536), 2):
            reply += chunk
    writer.close()
    return reply


Probe = Callable[[TlsAlpnSolver], Awaitable[None]]


def run_with(test: Probe, names: tuple[str, ...] = ("a.example.com", "b.example.com")) -> None:
    async def go() -> None:
        async with TlsAlpnSolver("127.0.0.1", 0) as solver:
            for name in names:
                await solver.present(name, TOKEN, KEY_AUTH + name)
            await test(solver)
    asyncio.run(go())


@pytest.mark.parametrize("tls12", [False, True])
@pytest.mark.parametrize("alpn", [["acme-tls/1"], ["http/1.1", "acme-tls/1"]])
def test_acme_client_gets_the_certificate_for_its_sni(tls12: bool, alpn: list[str]) -> None:
    async def test(solver: TlsAlpnSolver) -> None:
        for name in ("a.example.com", "B.EXAMPLE.COM"):
            der = await probe(solver.port, name, alpn, tls12)
            assert isinstance(der, bytes), der
            check_validation_cert(der, name.lower(), KEY_AUTH + name.lower())
    run_with(test)


@pytest.mark.parametrize("tls12", [False, True])
@pytest.mark.parametrize("alpn", [["http/1.1"], ["h2", "http/1.1"], None])
def test_ordinary_tls_client_gets_no_certificate(tls12: bool, alpn: list[str] | None) -> None:
    async def test(solver: TlsAlpnSolver) -> None:
        result = await probe(solver.port, "a.example.com", alpn, tls12)
        assert isinstance(result, str)
        assert "no application protocol" in result
        # On the wire: one alert, nothing of the server's handshake (nor its certificate).
        assert await raw_reply(solver.port, "a.example.com", alpn) == NO_APPLICATION_PROTOCOL
    run_with(test)


@pytest.mark.parametrize("sni", ["unknown.example.com", "example.com", None])
def test_unknown_or_missing_sni_refused(sni: str | None) -> None:
    async def test(solver: TlsAlpnSolver) -> None:
        result = await probe(solver.port, sni, ["acme-tls/1"])
        assert isinstance(result, str)
        assert "UNRECOGNIZED_NAME" in result
        assert await raw_reply(solver.port, sni, ["acme-tls/1"]) == UNRECOGNIZED_NAME
    run_with(test)


def test_cleanup_removes_the_name_only() -> None:
    async def test(solver: TlsAlpnSolver) -> None:
        await solver.cleanup("a.example.com", TOKEN, "another key authorization")  # not ours
        assert isinstance(await probe(solver.port, "a.example.com", ["acme-tls/1"]), bytes)
        await solver.cleanup("a.example.com", TOKEN, KEY_AUTH + "a.example.com")
        await solver.cleanup("a.example.com", TOKEN, KEY_AUTH + "a.example.com")  # twice: fine
        assert "UNRECOGNIZED_NAME" in str(await probe(solver.port, "a.example.com",
                                                      ["acme-tls/1"]))
        assert isinstance(await probe(solver.port, "b.example.com", ["acme-tls/1"]), bytes)
    run_with(test)


def test_ip_identifier_answered_on_reverse_name() -> None:
    async def test(solver: TlsAlpnSolver) -> None:
        der = await probe(solver.port, "7.2.0.192.in-addr.arpa", ["acme-tls/1"])
        assert isinstance(der, bytes)
        san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        assert list(san) == [x509.IPAddress(ipaddress.ip_address("192.0.2.7"))]
    run_with(test, names=("192.0.2.7",))


def test_wildcard_refused() -> None:
    async def test(solver: TlsAlpnSolver) -> None:
        with pytest.raises(ChallengeError, match="wildcard"):
            await solver.present("*.example.com", TOKEN, KEY_AUTH)
    run_with(test, names=())


def test_silent_or_garbage_client_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        async with TlsAlpnSolver("127.0.0.1", 0, handshake_timeout=0.3) as solver:
            reader, writer = await asyncio.open_connection("127.0.0.1", solver.port)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the timeout
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", solver.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            reply = await asyncio.wait_for(reader.read(), 5)
            assert reply[:1] in (b"", b"\x15")  # at most an alert
            writer.close()
    with caplog.at_level(logging.INFO, logger="certfleet.solvers.tls_alpn"):
        asyncio.run(go())
    assert "handshake timed out" in caplog.text


def test_logs_each_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def test(solver: TlsAlpnSolver) -> None:
        await probe(solver.port, "a.example.com", ["acme-tls/1"])
        await probe(solver.port, "a.example.com", ["http/1.1"])
        await probe(solver.port, "other.example.com", ["acme-tls/1"])
        await asyncio.sleep(0.05)
    with caplog.at_level(logging.INFO, logger="certfleet.solvers.tls_alpn"):
        run_with(test)
    lines = [r.getMessage() for r in caplog.records]
    assert any("SNI a.example.com, agreed ALPN acme-tls/1 -> validation certificate sent" in line
               for line in lines), lines
    assert any("SNI a.example.com, agreed ALPN none -> refused: client did not offer "
               "acme-tls/1" in line for line in lines), lines
    assert any("SNI other.example.com, agreed ALPN none -> refused: no validation "
               "certificate for this SNI" in line for line in lines), lines


def test_port_in_use_is_a_challenge_error() -> None:
    async def go() -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            with pytest.raises(ChallengeError, match=r"cannot listen on 127\.0\.0\.1:"):
                async with TlsAlpnSolver("127.0.0.1", busy.getsockname()[1]):
                    pass
    asyncio.run(go())
