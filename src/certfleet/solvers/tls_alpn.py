"""tls-alpn-01 (RFC 8737) answered by certfleet itself: a TLS listener running during the job.

Touches one listening socket. Each presented name gets a throwaway self-signed certificate
(fresh P-256 key, never written to disk: the stdlib ``ssl`` loads keys only from files, so it
goes through an anonymous memory file, or a private temporary file where there is none).
The certificate names exactly that identifier (a dNSName, or an iPAddress for an IP
identifier, RFC 8738) and carries the critical acmeIdentifier extension holding
SHA-256(key authorization). It is chosen by SNI; an unknown or missing SNI gets an
``unrecognized_name`` alert. Each connection is logged; handshakes are bounded in time and size.

Clients that do not offer ``acme-tls/1`` (RFC 8737 §4: the validation certificate MUST NOT be
presented to them): Python's ``ssl`` cannot fail a handshake from ALPN selection (when nothing
matches, CPython answers OpenSSL's callback with NOACK and the handshake goes on without
ALPN), and ``sni_callback`` does not see the client's ALPN offer. So TLS runs over memory BIOs
and this module decides what reaches the wire: once OpenSSL has read the ClientHello, its
reply (ServerHello, ..., Certificate) leaves the process only if ``selected_alpn_protocol()``
is ``acme-tls/1``; otherwise it is discarded, a ``no_application_protocol`` alert is sent and
the connection closed. Before that point only a lone alert record may be sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..errors import ChallengeError, safe_text
from ..protocol.challenges import TLS_ALPN_01, tls_alpn01_digest
from . import Solver

log = logging.getLogger(__name__)

ACME_TLS_1 = "acme-tls/1"
ID_PE_ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 §6.1
HANDSHAKE_TIMEOUT = 10.0
MAX_HANDSHAKE_BYTES = 64 * 1024
# A plaintext TLS alert record: level fatal (2), no_application_protocol (120), RFC 7301 §3.2.
NO_APPLICATION_PROTOCOL = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x78])


def sni_name(name: str) -> str:
    """The SNI a CA sends to validate ``name``: the name, or for an IP address its
    reverse-DNS name (RFC 8738 §6, e.g. ``1.2.0.192.in-addr.arpa``)."""
    try:
        return ipaddress.ip_address(name).reverse_pointer
    except ValueError:
        return name.lower().rstrip(".")


def validation_certificate(
    name: str, key_auth: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """RFC 8737 §3: a self-signed certificate for ``name`` alone, proving ``key_auth``."""
    san: x509.GeneralName
    try:
        san = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        san = x509.DNSName(name.lower().rstrip("."))
    # The extension value is the DER of ``Authorization ::= OCTET STRING (SIZE (32))``.
    acme_identifier = bytes([0x04, 0x20]) + tls_alpn01_digest(key_auth)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certfleet tls-alpn-01")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ID_PE_ACME_IDENTIFIER, acme_identifier),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4
    context.set_alpn_protocols([ACME_TLS_1])
    context.num_tickets = 0
    return context


def _load_chain(context: ssl.SSLContext, pem: bytes) -> None:
    """``load_cert_chain`` reads only files: prefer one that lives in memory only."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("certfleet-tls-alpn-01", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
            return
        except FileNotFoundError:
            pass  # no /proc: fall back to a private temporary file
        finally:
            os.close(fd)
    with tempfile.TemporaryDirectory(prefix="certfleet-") as tmp:  # mode 0700
        path = os.path.join(tmp, "validation.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
            fh.write(pem)
        context.load_cert_chain(path)


class TlsAlpnSolver(Solver):
    """The built-in tls-alpn-01 responder (``tls_alpn_listen = "HOST:PORT"``)."""

    challenge_type = TLS_ALPN_01

    def __init__(self, host: str, port: int, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 ) -> None:
        self.host, self.port = host, port
        self.handshake_timeout = handshake_timeout
        self._names: dict[str, tuple[str, ssl.SSLContext]] = {}  # SNI -> key auth, context
        self._sni_seen: dict[int, tuple[str, bool]] = {}  # id(conn) -> SNI, known
        self._context = _server_context()
        self._context.sni_callback = self._select
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, reuse_address=True)
        except OSError as exc:
            raise ChallengeError(f"cannot listen on {self.host}:{self.port}: "
                                 f"{exc.strerror or exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]  # the real one if 0 was asked
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()
            self._server = None

    async def present(self, name: str, token: str, key_auth: str) -> None:
        if name.startswith("*."):
            raise ChallengeError(f"{safe_text(name)}: tls-alpn-01 cannot validate a wildcard")
        cert, key = validation_certificate(name, key_auth)
        context = _server_context()
        _load_chain(context, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
        self._names[sni_name(name)] = (key_auth, context)

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        entry = self._names.get(sni_name(name))
        if entry is not None and entry[0] == key_auth:
            del self._names[sni_name(name)]

    def _select(self, conn: ssl.SSLObject, server_name: str | None,
                context: ssl.SSLContext) -> int | None:
        """SNI callback: switch to the name's certificate, or refuse the handshake."""
        entry = self._names.get(server_name.lower()) if server_name else None
        self._sni_seen[id(conn)] = (server_name or "none", entry is not None)
        if entry is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        conn.context = entry[1]
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn = self._context.wrap_bio(incoming, outgoing, server_side=True)
        result = "interrupted"
        try:
            async with asyncio.timeout(self.handshake_timeout):
                result = await self._handshake(conn, incoming, outgoing, reader, writer)
        except TimeoutError:
            result = "refused: handshake timed out"
        except OSError as exc:
            result = f"connection failed: {exc}"
        finally:
            peer = writer.get_extra_info("peername") or ("?", 0)
            sni, known = self._sni_seen.pop(id(conn), ("none", True))
            if not known:  # _select refused it (OpenSSL says CALLBACK_FAILED)
                result = "refused: no validation certificate for this SNI"
            log.info("tls-alpn-01 connection from %s:%s: SNI %s, agreed ALPN %s -> %s",
                     peer[0], peer[1], safe_text(sni, 80),
                     conn.selected_alpn_protocol() or "none", result)
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _handshake(self, conn: ssl.SSLObject, incoming: ssl.MemoryBIO,
                         outgoing: ssl.MemoryBIO, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> str:
        """Drive the handshake; nothing but an alert leaves before acme-tls/1 is agreed."""
        received = 0
        while True:
            done, failure = False, None
            try:
                conn.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                failure = exc
            reply = outgoing.read()
            lone_alert = len(reply) == 7 and reply[0] == 0x15
            if reply and not lone_alert and conn.selected_alpn_protocol() != ACME_TLS_1:
                # RFC 8737 §4: this reply carries the validation certificate; drop it.
                writer.write(NO_APPLICATION_PROTOCOL)
                return "refused: client did not offer acme-tls/1"
            writer.write(reply)
            if failure is not None:
                return f"refused: {failure.reason or failure}"
            if done:
                return "validation certificate sent"
            await writer.drain()
            data = await reader.read(16384)
            received += len(data)
            if not data or received > MAX_HANDSHAKE_BYTES:
                return "refused: handshake incomplete" if not data else "refused: too large"
            incoming.write(data)
