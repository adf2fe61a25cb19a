"""After reload: a TLS handshake to the target must present the certificate just deployed.

Touches one outgoing TCP connection per attempt. The chain is not verified here (it may
come from a test CA); what matters is the serial, which says nginx reloaded.

Nothing the server sends is trusted: a server that accepts the connection and says
nothing, answers garbage, or presents a certificate the parser rejects fails the probe
with a one-line reason (escaped), never an exception of another kind. Each attempt is
bounded (``ATTEMPT_TIMEOUT``), the connection is aborted rather than closed politely, and
the whole retry loop is bounded by ``wait`` plus one attempt.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time

from cryptography import x509

from ..errors import DeployError, safe_text

ATTEMPT_TIMEOUT = 5.0
PROBE_WAIT = 15.0
# A server holding one name's ECDSA and RSA certificates picks one by what the client
# offers. To see a given key type's certificate, offer only that key type's TLS 1.2 suites
# (Python cannot narrow TLS 1.3's signature algorithms).
_ONLY = {"ec": "ECDHE+AESGCM:ECDHE+CHACHA20:!aRSA", "rsa": "ECDHE+AESGCM:ECDHE+CHACHA20:!aECDSA"}


class _Unusable(Exception):
    """The server answered, with something that is not a usable certificate."""


def key_kind(key_type: str) -> str | None:
    """``ec`` or ``rsa`` for a stored key type (``ec256``, ``rsa2048``...); None if unknown."""
    return next((kind for kind in _ONLY if key_type.startswith(kind)), None)


async def served_serial(address: str, port: int, server_name: str,
                        kind: str | None = None) -> int:
    """The serial of the certificate presented on ``address:port`` for SNI ``server_name``
    (of that key ``kind``'s certificate, when the server has several)."""
    # Not create_default_context(): it loads the system's trust store (tens of
    # milliseconds a probe) for a chain that is not verified here.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if kind is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(_ONLY[kind])
    sni = server_name.removeprefix("*.")
    _reader, writer = await asyncio.wait_for(  # the connection and the handshake
        asyncio.open_connection(address, port, ssl=context, server_hostname=sni),
        ATTEMPT_TIMEOUT)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.transport.abort()  # no polite TLS shutdown with a server that may stall it
    if not der:
        raise _Unusable("no certificate presented")
    try:
        return x509.load_der_x509_certificate(der).serial_number
    except Exception as exc:  # whatever the parser refuses with (InvalidVersion is no ValueError)
        raise _Unusable(f"a certificate that does not parse ({safe_text(str(exc), 120)})") \
            from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, _Unusable):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no TLS (no answer within {ATTEMPT_TIMEOUT:g} s)"
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError
                  | EOFError):  # a refused connection was never open: its own words below
        return "no TLS (the connection was closed)"
    if isinstance(exc, ssl.SSLError):
        return f"no TLS ({safe_text(exc.reason or str(exc), 120)})"
    if isinstance(exc, OSError) and (number := exc.errno or 0) > 0:
        # asyncio words a refused connection "Connect call failed ('192.0.2.1', 443)"
        return f"no TLS ({os.strerror(number)})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"no TLS ({safe_text(exc.strerror, 120)})"
    return f"no TLS ({safe_text(str(exc) or type(exc).__name__, 120)})"


async def serving(address: str, port: int, server_name: str, serial: int,
                  kind: str | None = None) -> str | None:
    """None if ``serial`` is served now, else what is (one escaped line). A server that
    shows another key type's certificate first is asked again for ``kind``'s."""
    try:
        got = await served_serial(address, port, server_name)
        if got != serial and kind is not None:
            got = await served_serial(address, port, server_name, kind)
    except (OSError, EOFError, TimeoutError, _Unusable) as exc:
        return _why(exc)
    return None if got == serial else f"serial {got:x}"


async def expect_serial(
    address: str, port: int, server_name: str, serial: int, wait: float | None = None,
    kind: str | None = None,
) -> None:
    """Retry until the expected serial is served (a reload is not instant) or ``wait`` ends."""
    wait = PROBE_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    seen = "nothing"
    where = f"TLS check {address}:{port} (SNI {server_name})"
    bound = wait + ATTEMPT_TIMEOUT + 1  # one attempt may outlive the wait
    try:
        async with asyncio.timeout(bound):
            while True:
                seen = await serving(address, port, server_name, serial, kind) or ""
                if not seen:
                    return
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
    except TimeoutError:
        seen = f"{seen}, then no end within {bound:g} s"
    raise DeployError(f"{where}: presents {seen}, expected serial {serial:x}")
