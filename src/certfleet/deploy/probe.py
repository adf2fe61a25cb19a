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
import ssl
import time

from cryptography import x509

from ..errors import DeployError, safe_text

ATTEMPT_TIMEOUT = 5.0
PROBE_WAIT = 15.0


class _Unusable(Exception):
    """The server answered, with something that is not a usable certificate."""


async def served_serial(address: str, port: int, server_name: str) -> int:
    """The serial of the certificate presented on ``address:port`` for SNI ``server_name``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sni = server_name.removeprefix("*.")
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address, port, ssl=context, server_hostname=sni,
                                ssl_handshake_timeout=ATTEMPT_TIMEOUT),
        ATTEMPT_TIMEOUT,
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
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
    if isinstance(exc, ConnectionError | EOFError):
        return "no TLS (the connection was closed)"
    if isinstance(exc, ssl.SSLError):
        return f"no TLS ({safe_text(exc.reason or str(exc), 120)})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"no TLS ({exc.strerror})"
    return f"no TLS ({safe_text(str(exc) or type(exc).__name__, 120)})"


async def expect_serial(
    address: str, port: int, server_name: str, serial: int, wait: float | None = None
) -> None:
    """Retry until the expected serial is served (a reload is not instant) or ``wait`` ends."""
    wait = PROBE_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    seen = "nothing"
    where = f"TLS check {address}:{port} (SNI {server_name})"
    try:
        async with asyncio.timeout(wait + ATTEMPT_TIMEOUT + 1):
            while True:
                try:
                    got = await served_serial(address, port, server_name)
                    if got == serial:
                        return
                    seen = f"serial {got:x}"
                except (OSError, EOFError, TimeoutError, _Unusable) as exc:
                    seen = _why(exc)
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
    except TimeoutError:
        seen = f"{seen}, then no end within {wait + ATTEMPT_TIMEOUT + 1:g} s"
    raise DeployError(f"{where}: presents {seen}, expected serial {serial:x}")
