"""Checks and conversions of single ``certfleet.toml`` values. Touches nothing.

Each takes the value as TOML gave it and returns what ``spec`` wants, or raises
``ValueError``/``ConfigError`` with a reason (the caller adds ``file:line``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config_toml import resolve_path
from .domains_file import CHALLENGES, is_address_or_host
from .errors import ConfigError, safe_text
from .protocol.b64 import b64url_decode
from .spec import HTTP_MODES

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
# Public ACME CAs by the directory URLs they document. ZeroSSL and Google need EAB.
PRESETS = {
    "letsencrypt": LETSENCRYPT,
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "google": "https://dv.acme-v02.api.pki.goog/directory",
    "google-staging": "https://dv.acme-v02.test-api.pki.goog/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "sslcom-rsa": "https://acme.ssl.com/sslcom-dv-rsa",
    "sslcom-ecc": "https://acme.ssl.com/sslcom-dv-ecc",
    "actalis": "https://acme-api.actalis.com/acme/directory",
}


# --- values --------------------------------------------------------------------------------

def paths(value: str | list[Any], base: Path) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str) else value
    if not all(isinstance(item, str) for item in items):
        raise ConfigError("config must be a list of paths")
    return tuple(resolve_path(item, base) for item in items)


def int_range(key: str, low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{key} must be an integer from {low} to {high}, not "
                              f"{safe_text(str(value))}")
        return value
    return convert


def fraction(value: float) -> float:
    if not 0 < value < 1:
        raise ConfigError(f"renew_fraction must be between 0 and 1 (exclusive), not {value}")
    return float(value)


def challenge(value: str) -> str:
    if value not in CHALLENGES:
        raise ConfigError(f"unknown challenge {safe_text(value)!r}; choose one of "
                          + ", ".join(CHALLENGES))
    return value


def directory(value: str) -> str:
    url = PRESETS.get(value, value)
    parts = urlsplit(url) if url.isprintable() and " " not in url else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"directory {safe_text(value)!r} is not an https:// URL or one of "
                          + ", ".join(PRESETS))
    return url


def dns_method(value: str) -> str:
    if value not in ("rfc2136", "hook"):
        raise ValueError(f"method {safe_text(value)!r}: use rfc2136 or hook")
    return value


def dns_server(value: Any) -> str:
    from .solvers.dns_common import parse_server

    if not isinstance(value, str):
        raise ValueError(f"{safe_text(repr(value))} is not IP[:PORT]")
    parse_server(value)
    return value


def argv(value: list[Any]) -> list[str]:
    if not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError("hook must be a non-empty list of strings (argv, no shell)")
    return [str(v) for v in value]


def eab_hmac_key(value: str) -> str:
    try:
        b64url_decode(value.strip().rstrip("="))
    except ValueError:
        raise ConfigError("eab_hmac_key is not base64url; the value is not shown") from None
    return value


def eab_alg(value: str) -> str:
    if value.upper() not in ("HS256", "HS384", "HS512"):
        raise ConfigError(f"eab_alg {safe_text(value)!r}: use HS256, HS384 or HS512")
    return value.upper()


def fallback(value: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(v, str) for v in value):
        raise ValueError("fallback must list directory URLs or preset names")
    return tuple(directory(v) for v in value)


def listen(value: str) -> str:
    host, _, port = value.rpartition(":")
    port_ok = port.isascii() and port.isdigit() and 0 < int(port) < 65536
    if not port_ok or not is_address_or_host(host):
        raise ConfigError(f"http_listen {safe_text(value)!r}: expected HOST:PORT")
    return value


def profile(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise ValueError(f"profile {safe_text(value)!r}: letters, digits, '.', '_', '-' only")
    return value


def http_mode(value: str) -> str:
    if value not in HTTP_MODES:
        raise ValueError(f"mode {safe_text(value)!r}: use one of {', '.join(HTTP_MODES)}")
    return value


def lb_addresses(value: list[Any]) -> tuple[str, ...]:
    found = []
    for item in value:
        if not isinstance(item, str) or not item or any(c in item for c in " \t/\\'\"@"):
            raise ValueError(f"addresses: {safe_text(repr(item))} is not HOST or HOST:PORT")
        found.append(item)
    return tuple(found)


def contact(value: str | list[Any] | tuple[Any, ...]) -> tuple[str, ...]:
    out = []
    for item in [value] if isinstance(value, str) else value:
        address = item.removeprefix("mailto:") if isinstance(item, str) else ""
        local, _, domain = address.partition("@")
        if (not local or not domain or "@" in domain or not address.isprintable()
                or " " in address or len(address) > 254):
            raise ConfigError(f"contact {safe_text(str(item))!r} is not an e-mail address")
        out.append(address)
    return tuple(out)

