"""Checks and conversions of single configuration values. Touches nothing.

Each takes the value as TOML (or the domains file) gave it and returns what ``spec`` wants,
or raises ``ConfigError`` (or ``ValueError``) with a reason; the caller adds ``file:line``.
Host, user and path checks live here because both files name hosts: a target becomes an
``ssh`` argument and a remote path, so nothing may start with ``-``, hold a shell
metacharacter or climb with ``..``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ..errors import ConfigError, safe_text
from ..protocol.b64 import b64url_decode
from ..protocol.challenges import CHALLENGE_TYPES
from ..spec import HTTP_MODES, PEM_NAMES, TlsProbe
from .defaults import PRESETS
from .tomlfile import local_name, resolve_path

MAX_PATH = 1024
MAX_USER = 32
MAX_HOST = 253
SHELL_META = ";|&$`'\"<>(){}*?!\\[]"      # the brief's set plus the glob brackets

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_DOTTED_DIGITS = re.compile(r"[0-9.]+")
_BAD_PATH_CHAR = re.compile(r"[~\s\x00-\x1f\x7f" + re.escape(SHELL_META) + "]")


# --- hosts, users, paths ---------------------------------------------------------------------

def _first_meta(text: str) -> str | None:
    return next((ch for ch in text if ch in SHELL_META), None)


def check_user(user: str, what: str = "user") -> str:
    """A login name as ssh and scp take it (also used for ``owner`` and ``group``)."""
    if not user:
        raise ConfigError(f"empty {what}")
    if user.startswith("-"):
        raise ConfigError(f"{what} must not start with '-'")
    if (meta := _first_meta(user)) is not None:
        raise ConfigError(f"shell metacharacter {meta!r} in {what}")
    if len(user) > MAX_USER:
        raise ConfigError(f"{what} longer than {MAX_USER} characters")
    if not _USER.fullmatch(user):
        raise ConfigError(f"{what} must be letters, digits, '_', '.' and '-', "
                          "starting with a letter or '_'")
    return user


def check_account(value: str | int, what: str) -> str:
    """``owner`` or ``group``: a name as ``check_user`` takes it, or a numeric ID."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 2**32:
            raise ConfigError(f"{what} {value} is not a user or group ID")
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        return value
    return check_user(str(value), what)


def check_host(host: str) -> str:
    """A DNS name, ssh_config alias or IPv4 address (IPv6 is checked by the caller)."""
    if not host:
        raise ConfigError("empty host")
    if host.startswith("-"):
        raise ConfigError("host must not start with '-'")
    if (meta := _first_meta(host)) is not None:
        raise ConfigError(f"shell metacharacter {meta!r} in host")
    if len(host) > MAX_HOST:
        raise ConfigError(f"host longer than {MAX_HOST} characters")
    if _DOTTED_DIGITS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ConfigError("not a valid IPv4 address") from None
    elif not _HOST.fullmatch(host):
        raise ConfigError("host must be a name (letters, digits, '-', '.', '_'), "
                          "an IPv4 address or [an IPv6 address]")
    return host


def check_ipv6(inner: str) -> str:
    try:
        ipaddress.IPv6Address(inner)
    except ValueError:
        raise ConfigError(f"[{inner}] is not an IPv6 address") from None
    if "%" in inner:
        raise ConfigError("IPv6 zone identifiers are not supported")
    return inner


def check_path(path: str) -> str:
    """An absolute directory, normalized: no ``..``, ``~``, spaces, controls or metacharacters."""
    if not path:
        raise ConfigError("empty path")
    if not path.startswith("/"):
        raise ConfigError("path must be absolute (start with '/')")
    if len(path) > MAX_PATH:
        raise ConfigError(f"path longer than {MAX_PATH} characters")
    if (bad := _BAD_PATH_CHAR.search(path)) is not None:
        ch = bad.group()
        if ch == "~":
            raise ConfigError("'~' is not expanded here; write the full path")
        if ch in SHELL_META:
            raise ConfigError(f"shell metacharacter {ch!r} in path")
        raise ConfigError("space or control character in path")
    if not path.isascii() and not path.isprintable():
        raise ConfigError("invisible character in path")
    parts = [part for part in path.split("/") if part]
    for part in parts:
        if part in (".", ".."):
            raise ConfigError(f"{part!r} component in path")
        if part.startswith("-"):
            raise ConfigError("a path component must not start with '-'")
    return "/" + "/".join(parts)


# --- values --------------------------------------------------------------------------------

def paths(value: str | list[Any], base: Path) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str) else value
    if not all(isinstance(item, str) for item in items):
        raise ConfigError("config must be a list of paths")
    return tuple(resolve_path(local_name(item), base) for item in items)


def int_range(key: str, low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{key} must be an integer from {low} to {high}, not "
                              f"{safe_text(str(value))}")
        return value
    return convert


def seconds(key: str, low: float, high: float) -> Callable[[Any], float]:
    """A duration in seconds: a finite number from ``low`` to ``high`` (never NaN)."""
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(f"{key} must be a number of seconds from {_number(low)} to "
                              f"{_number(high)}, not {safe_text(str(value))}")
        return float(value)
    return convert


def per_second(key: str, low: float, high: float) -> Callable[[Any], float]:
    """A rate: a finite number of requests per second from ``low`` to ``high``."""
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(f"{key} must be a number of requests per second from "
                              f"{_number(low)} to {_number(high)}, not {safe_text(str(value))}")
        return float(value)
    return convert


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def fraction(value: float, key: str = "renew_fraction") -> float:
    if not math.isfinite(value) or not 0 < value < 1:
        raise ConfigError(f"{key} must be between 0 and 1 (exclusive), not {value}")
    return float(value)


def challenge(value: str) -> str:
    if value not in CHALLENGE_TYPES:
        raise ConfigError(f"unknown challenge {safe_text(value)!r}; choose one of "
                          + ", ".join(CHALLENGE_TYPES))
    return value


def directory(value: str) -> str:
    url = PRESETS.get(value, value)
    try:
        parts = urlsplit(url) if url.isprintable() and " " not in url else None
    except ValueError:  # a bracket left open
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname \
            or not _port_ok(parts):
        raise ConfigError(f"directory {safe_text(value)!r} is not an https:// URL or one of "
                          + ", ".join(PRESETS))
    return url


def _port_ok(parts: SplitResult) -> bool:
    """No port, or one from 1 to 65535 (``urlsplit`` raises on others only when asked)."""
    try:
        return parts.port != 0
    except ValueError:
        return False


def dns_method(value: str) -> str:
    if value not in ("rfc2136", "hook"):
        raise ValueError(f"method {safe_text(value)!r}: use rfc2136 or hook")
    return value


def dns_server(value: Any) -> str:
    from ..solvers.dns_server import parse_server  # stdlib only: no dnspython to check it

    if not isinstance(value, str):
        raise ValueError(f"{safe_text(repr(value))} is not IP[:PORT]")
    parse_server(value)
    return value


def argv(value: list[Any], key: str = "hook") -> list[str]:
    if not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key} must be a non-empty list of strings (argv, no shell)")
    return [str(v) for v in value]


TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


def tsig_algorithm(value: str) -> str:
    if value.lower() not in TSIG_ALGORITHMS:
        raise ConfigError(f"tsig_algorithm {safe_text(value)!r}: use one of "
                          + ", ".join(TSIG_ALGORITHMS))
    return value.lower()


def chain_name(value: str) -> str:
    """A root's common name, as ``preferred_chain`` names it."""
    if not value or not value.isprintable() or len(value) > 200:
        raise ConfigError(f"preferred_chain {safe_text(value, 60)!r} is not a common name")
    return value


def eab_kid(value: str) -> str:
    if not value or not value.isprintable() or len(value) > 256:
        raise ConfigError(f"eab_kid {safe_text(value, 60)!r} is not a key identifier")
    return value


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


def listen(value: str, key: str = "http_listen") -> str:
    host, _, port = value.rpartition(":")
    port_ok = port.isascii() and port.isdigit() and 0 < int(port) < 65536
    if not port_ok or not is_address_or_host(host):
        raise ConfigError(f"{key} {safe_text(value)!r}: expected HOST:PORT")
    return value


def profile(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise ValueError(f"profile {safe_text(value)!r}: letters, digits, '.', '_', '-' only")
    return value


def events(value: list[Any], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A list of notification events, each one of ``allowed``."""
    for item in value:
        if item not in allowed:
            raise ConfigError(f"unknown event {safe_text(str(item))!r}; the events are "
                              + ", ".join(allowed))
    return tuple(value)


def mail_method(value: str) -> str:
    if value not in ("sendmail", "smtp"):
        raise ConfigError(f"mail {safe_text(value)!r}: use \"sendmail\" or \"smtp\"")
    return value


def printable(value: str, key: str) -> str:
    if not value or not value.isprintable() or len(value) > 256:
        raise ConfigError(f"{key} {safe_text(value, 60)!r} is not a usable value")
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


def contact(value: str | list[Any] | tuple[Any, ...], key: str = "contact") -> tuple[str, ...]:
    out = []
    for item in [value] if isinstance(value, str) else value:
        address = item.removeprefix("mailto:") if isinstance(item, str) else ""
        local, _, domain = address.partition("@")
        if (not local or not domain or "@" in domain or not address.isprintable()
                or " " in address or len(address) > 254):
            raise ConfigError(f"{key} {safe_text(str(item))!r} is not an e-mail address")
        out.append(address)
    return tuple(out)


# --- what a target host is sent: checks for its [hosts."NAME"] settings in certfleet.toml ---

def is_address_or_host(text: str) -> bool:
    """An IP address (IPv6 with or without brackets) or a host name as in a target."""
    try:
        ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
        return True
    except ValueError:
        pass
    try:
        check_host(text)
    except ConfigError:
        return False
    return True


def check_reload(value: object) -> tuple[str, ...]:
    """The reload command: an argv list, never a string a shell would split."""
    if isinstance(value, str):
        raise ConfigError("reload must be a list (argv), not a shell string")
    if not isinstance(value, list | tuple) or not all(
            isinstance(arg, str) and arg.isprintable() for arg in value):
        raise ConfigError("reload must be a list of printable strings")
    if value and not value[0]:
        raise ConfigError("reload: the program name is empty")
    return tuple(value)


def check_mode(key: str, value: object, *, raw: str) -> int:
    """A file mode: an octal string, or an integer written as ``0o644`` (``raw``)."""
    if isinstance(value, str):
        digits = value.removeprefix("0o")
        if not digits or len(digits) > 4 or any(ch not in "01234567" for ch in digits):
            raise ConfigError(f"{key} {safe_text(value)!r} is not an octal mode like \"0644\"")
        mode = int(digits, 8)
    elif isinstance(value, int) and raw.lower().startswith("0o"):
        mode = value
    else:
        raise ConfigError(f"{key} {safe_text(str(value))} is not octal: write \"0644\" or 0o644")
    if mode > 0o777:
        raise ConfigError(f"{key} 0o{mode:o}: only permission bits (up to 0o777)")
    if mode & 0o002 or (key == "key_mode" and mode & 0o007):
        raise ConfigError(f"{key} 0o{mode:o} gives others too much access")
    return mode


def _file_name(pem: str, name: object) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"files: {pem} must map to a file name")
    plain = name.replace("{name}", "")
    why = ("contains '/'" if "/" in name else "is not a file name" if name in ("", ".", "..")
           else "starts with '-'" if name.startswith("-")
           else "has an unknown placeholder (only {name})" if "{" in plain or "}" in plain
           else "has a shell metacharacter" if _first_meta(plain) is not None
           else "has a space or control character" if not name.isprintable() or " " in name
           else "is too long" if len(name) > 200 else "")
    if why:
        raise ConfigError(f"files: {pem} = {safe_text(name)!r} {why}")
    return name


def check_files(value: Mapping[str, object]) -> dict[str, str]:
    """``files``: which of ``PEM_NAMES`` is written under which plain file name."""
    files = {}
    for pem, name in value.items():
        if pem not in PEM_NAMES:
            raise ConfigError(f"files: unknown file {safe_text(pem)!r}; the keys are "
                              + ", ".join(PEM_NAMES))
        files[pem] = _file_name(pem, name)
    written: dict[str, str] = {}
    for pem in PEM_NAMES:
        name = files.get(pem, pem)
        if name in written:
            raise ConfigError(f"files: {written[name]} and {pem} would both be written "
                              f"to {safe_text(name)!r}")
        written[name] = pem
    return files


def check_probe(value: Mapping[str, object]) -> TlsProbe:
    """``probe = { port = 443, address = "127.0.0.1" }``."""
    if unknown := sorted(set(value) - {"port", "address"}):
        raise ConfigError(f"probe: unknown option {safe_text(unknown[0])!r}; use port, address")
    port, address = value.get("port", 443), value.get("address")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError("probe: port must be an integer between 1 and 65535")
    if address is None:
        return TlsProbe(port=port)
    if not isinstance(address, str) or not is_address_or_host(address):
        raise ConfigError("probe: address must be an IP address or a host name")
    return TlsProbe(port=port, address=address.removeprefix("[").removesuffix("]"))
