"""DNS server addresses as the configuration gives them (``IP``, ``IP:PORT``, ``[V6]:PORT``).

Touches nothing and imports only the standard library: the configuration checks ``[dns]
server`` with ``parse_server`` without loading dnspython (``certfleet status`` reads the
same configuration, and sends no DNS query). ``dns_common`` re-exports all of it.
"""

from __future__ import annotations

import ipaddress

from ..errors import ConfigError, safe_text

Server = tuple[str, int]
"""An IP address and port of a DNS server."""


def server_text(server: Server) -> str:
    """``127.0.0.1:53``, ``[::1]:53``."""
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_server(text: str, default_port: int = 53) -> Server:
    """``IP``, ``IP:PORT``, ``[V6]:PORT`` or a bare IPv6 address to a ``Server``."""
    host, port = text.strip(), str(default_port)
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"DNS server {safe_text(text)!r}: expected IP[:PORT]")
            port = rest[1:]
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"DNS server {safe_text(text)!r}: not an IP address "
                          "(give the address, not a host name)") from None
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"DNS server {safe_text(text)!r}: bad port")
    return host, int(port)
