"""After reload: a TLS handshake to the target must present the certificate just deployed.

Touches one outgoing TCP connection per attempt. The chain is not verified here (it may
come from a test CA); what matters is the serial, which says nginx reloaded.
"""

from __future__ import annotations

import asyncio
import ssl
import time

from cryptography import x509

from ..errors import DeployError

ATTEMPT_TIMEOUT = 5.0


async def served_serial(address: str, port: int, server_name: str) -> int:
    """The serial of the certificate presented on ``address:port`` for SNI ``server_name``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sni = server_name.removeprefix("*.")
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address, port, ssl=context, server_hostname=sni),
        ATTEMPT_TIMEOUT,
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        writer.close()
    if not der:
        raise DeployError(f"{address}:{port}: no certificate presented")
    return x509.load_der_x509_certificate(der).serial_number


async def expect_serial(
    address: str, port: int, server_name: str, serial: int, wait: float = 15.0
) -> None:
    """Retry until the expected serial is served (a reload is not instant) or ``wait`` ends."""
    deadline = time.monotonic() + wait
    seen: str = "nothing"
    while True:
        try:
            got = await served_serial(address, port, server_name)
            if got == serial:
                return
            seen = f"serial {got:x}"
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            seen = f"no TLS ({exc.strerror if isinstance(exc, OSError) and exc.strerror else exc})"
        if time.monotonic() > deadline:
            raise DeployError(f"TLS check {address}:{port} (SNI {server_name}): presents {seen}, "
                              f"expected serial {serial:x}")
        await asyncio.sleep(0.2)
