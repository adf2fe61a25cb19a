"""The TLS check after a reload (``deploy/probe.py``) against TLS servers in the test's own
event loop: the serial it reads, the key type it asks for, the SNI it sends, the reason it
gives for each kind of server that does not present the certificate, and its bounds.

``integration/test_probes.py`` checks the same against nginx and ``adversarial/
test_hostile_probes.py`` through whole deploys; these run in milliseconds, so that ``make
mutate`` can run them for every mutant of the module.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certfleet.deploy import probe
from certfleet.errors import DeployError
from tests.unit.pki import rsa_key

EC_SERIAL, RSA_SERIAL = 0xEC0001, 0x5A0002
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _pem(directory: Path, name: str, serial: int, key: Any) -> tuple[Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe.test")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context holding an ECDSA and an RSA certificate of the same name, as nginx
    does with two ``ssl_certificate`` lines."""
    directory = tmp_path_factory.mktemp("probe")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_pem(directory, "rsa", RSA_SERIAL,
                                  rsa_key()))
    context.load_cert_chain(*_pem(directory, "ec", EC_SERIAL,
                                  ec.generate_private_key(ec.SECP256R1())))
    return context


@asynccontextmanager
async def _server(handle: Handler | None = None, context: ssl.SSLContext | None = None,
                  host: str = "127.0.0.1") -> AsyncIterator[int]:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client goes
        writer.close()

    server = await asyncio.start_server(handle or hold, host, 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_probe_uses_no_deprecated_tls_setting(tls: ssl.SSLContext) -> None:
    """A context made without naming its protocol (PROTOCOL_TLS) is deprecated, and a
    later Python drops it: the probe must keep working with deprecations as errors."""
    async def main() -> int:
        async with _server(context=tls) as port:
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)
                return await probe.served_serial("127.0.0.1", port, "probe.test")

    assert asyncio.run(main()) == EC_SERIAL


def test_key_kinds() -> None:
    assert probe.key_kind("ec256") == "ec"
    assert probe.key_kind("ec384") == "ec"
    assert probe.key_kind("rsa2048") == "rsa"
    assert probe.key_kind("ed25519") is None


def test_the_serial_and_the_name_asked_for(tls: ssl.SSLContext) -> None:
    names: list[str | None] = []
    tls.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment]

    async def main() -> tuple[int, int, int]:
        async with _server(context=tls, host="127.0.0.2") as port:  # not the default host
            return (await probe.served_serial("127.0.0.2", port, "*.probe.test"),
                    await probe.served_serial("127.0.0.2", port, "probe.test", "rsa"),
                    await probe.served_serial("127.0.0.2", port, "probe.test", "ec"))
    try:
        assert asyncio.run(main()) == (EC_SERIAL, RSA_SERIAL, EC_SERIAL)
    finally:
        tls.sni_callback = None
    assert names == ["probe.test"] * 3  # a wildcard's name is asked without its "*."


def test_serving_asks_again_for_the_key_type_expected(tls: ssl.SSLContext) -> None:
    async def main() -> list[str | None]:
        async with _server(context=tls, host="127.0.0.2") as port:
            return [await probe.serving("127.0.0.2", port, "probe.test", EC_SERIAL),
                    await probe.serving("127.0.0.2", port, "probe.test", RSA_SERIAL, "rsa"),
                    await probe.serving("127.0.0.2", port, "probe.test", RSA_SERIAL),
                    await probe.serving("127.0.0.2", port, "probe.test", 0x77, "ec")]
    assert asyncio.run(main()) == [None, None, "serial ec0001", "serial ec0001"]


def _reason(handle: Handler | None, monkeypatch: pytest.MonkeyPatch,
            port: int | None = None) -> str | None:
    monkeypatch.setattr(probe, "ATTEMPT_TIMEOUT", 0.3)

    async def main() -> str | None:
        if port is not None:
            return await probe.serving("127.0.0.1", port, "probe.test", 1)
        async with _server(handle) as listening:
            return await probe.serving("127.0.0.1", listening, "probe.test", 1)
    return asyncio.run(main())


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\x1b[2J\r\n\r\n" + b"\x00" * 512)
    await writer.drain()
    await reader.read()


async def _closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


def test_what_each_server_that_presents_nothing_is_called(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _reason(None, monkeypatch) == "no TLS (no answer within 0.3 s)"
    assert _reason(_closes, monkeypatch) == "no TLS (the connection was closed)"
    assert _reason(_garbage, monkeypatch) == "no TLS (WRONG_VERSION_NUMBER)"
    assert _reason(None, monkeypatch, _free_port()) == "no TLS (Connection refused)"


def test_a_certificate_the_parser_refuses(tls: ssl.SSLContext,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(der: bytes) -> x509.Certificate:
        assert der.startswith(b"\x30\x82")  # what the server sent, as DER
        raise ValueError("invalid version \x1b[2J" + "x" * 200)
    monkeypatch.setattr(probe.x509, "load_der_x509_certificate", refuse)

    async def main() -> str | None:
        async with _server(context=tls) as port:
            return await probe.serving("127.0.0.1", port, "probe.test", 1)
    said = asyncio.run(main())
    assert said == r"a certificate that does not parse (invalid version \x1b[2J" + \
        "x" * 97 + "...)"


def test_how_other_failures_are_named() -> None:
    unreasoned = ssl.SSLError(1, "[SSL] odd")
    unreasoned.reason = None  # as the ssl module leaves it when OpenSSL gave no reason
    assert probe._why(unreasoned) == "no TLS ([SSL] odd)"
    reasoned = ssl.SSLError(1, "text")
    reasoned.reason = "TLSV1_ALERT \x1b"
    assert probe._why(reasoned) == r"no TLS (TLSV1_ALERT \x1b)"
    assert probe._why(EOFError()) == "no TLS (the connection was closed)"
    for closed in (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        assert probe._why(closed(1, "x")) == "no TLS (the connection was closed)"
    assert probe._why(ConnectionRefusedError(111, "Connection refused")) == \
        "no TLS (Connection refused)"
    assert probe._why(OSError(113, "Connect call failed")) == "no TLS (No route to host)"
    assert probe._why(OSError(-2, "Name \x1b unknown")) == r"no TLS (Name \x1b unknown)"
    assert probe._why(OSError("odd \x1b")) == r"no TLS (odd \x1b)"
    assert probe._why(OSError()) == "no TLS (OSError)"
    assert probe._why(PermissionError(1, "x")) == "no TLS (Operation not permitted)"
    long = ssl.SSLError(1, "x")
    long.reason = "R" * 200
    assert probe._why(long) == "no TLS (" + "R" * 120 + "...)"
    assert probe._why(OSError(-3, "S" * 200)) == "no TLS (" + "S" * 120 + "...)"
    assert probe._why(OSError("G" * 200)) == "no TLS (" + "G" * 120 + "...)"
    assert probe._why(probe._Unusable("no certificate presented")) == \
        "no certificate presented"


def test_the_check_waits_for_the_reload(tls: ssl.SSLContext,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The old certificate is served twice, then the new one."""
    seen: list[int] = []
    answers = iter([EC_SERIAL + 1, EC_SERIAL + 1, EC_SERIAL])

    async def served(*args: Any) -> int:
        seen.append(len(args))
        return next(answers)
    monkeypatch.setattr(probe, "served_serial", served)
    asyncio.run(probe.expect_serial("127.0.0.1", 443, "probe.test", EC_SERIAL, wait=5))
    assert seen == [3, 3, 3]


def test_the_check_gives_up_when_its_wait_ends(tls: ssl.SSLContext,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> str:
        async with _server(context=tls, host="127.0.0.2") as port:
            with pytest.raises(DeployError) as caught:
                await probe.expect_serial("127.0.0.2", port, "probe.test", 0xAB, wait=0.5,
                                          kind="rsa")
            return str(caught.value).replace(str(port), "PORT")
    started = asyncio.run(main())
    assert started == "TLS check 127.0.0.2:PORT (SNI probe.test): presents serial 5a0002, " \
        "expected serial ab"


def test_the_default_wait_and_the_pause_between_attempts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "PROBE_WAIT", 0.4)
    pauses: list[float] = []
    sleep = asyncio.sleep

    async def pause(delay: float) -> None:
        pauses.append(delay)
        await sleep(delay)
    monkeypatch.setattr(probe.asyncio, "sleep", pause)

    async def old(*args: Any) -> str:
        return "serial 1"
    monkeypatch.setattr(probe, "serving", old)

    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(DeployError, match=r"presents serial 1, expected serial ab$"):
            await probe.expect_serial("127.0.0.1", 9, "probe.test", 0xAB)
        return time.monotonic() - started
    # The deadline is measured on the monotonic clock: never before the wait has passed.
    assert asyncio.run(main()) >= 0.4
    # probe.asyncio is asyncio itself: its own machinery may also yield with sleep(0).
    assert {p for p in pauses if p} == {0.2}


def test_the_retry_loop_is_bounded_even_when_an_attempt_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's own bound (``wait`` plus one attempt, and a second) holds even when an
    attempt outlives ``ATTEMPT_TIMEOUT``: one ``serving`` call may make two handshakes (the
    second for the expected key type), and here it never returns at all."""
    async def hangs(*_args: object, **_kwargs: object) -> str | None:
        await asyncio.Event().wait()
        return None

    monkeypatch.setattr(probe, "serving", hangs)
    monkeypatch.setattr(probe, "ATTEMPT_TIMEOUT", 0.2)

    async def go() -> None:
        # The guard only keeps a broken bound from hanging the suite; it is never reached.
        await asyncio.wait_for(probe.expect_serial("127.0.0.1", 9, "a.example", 0xAB,
                                                   wait=0.3), 20)

    with pytest.raises(DeployError) as caught:
        asyncio.run(go())
    assert str(caught.value) == ("TLS check 127.0.0.1:9 (SNI a.example): presents nothing, "
                                 "then no end within 1.5 s, expected serial ab")


def test_a_server_that_presents_no_certificate(tls: ssl.SSLContext,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Anonymous suites present none; no default context offers one, so the answer is
    made so here."""
    monkeypatch.setattr(ssl.SSLObject, "getpeercert", lambda self, binary_form=False: None)

    async def main() -> str | None:
        async with _server(context=tls) as port:
            return await probe.serving("127.0.0.1", port, "probe.test", 1)
    assert asyncio.run(main()) == "no certificate presented"


def test_an_attempt_that_ends_in_time_is_not_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "ATTEMPT_TIMEOUT", 0.2)

    async def old(*args: Any) -> str:
        return "serial 1"
    monkeypatch.setattr(probe, "serving", old)
    with pytest.raises(DeployError) as caught:
        asyncio.run(probe.expect_serial("127.0.0.1", 9, "probe.test", 0xAB, wait=0.3))
    assert str(caught.value) == \
        "TLS check 127.0.0.1:9 (SNI probe.test): presents serial 1, expected serial ab"
