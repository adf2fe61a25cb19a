"""``certfleet.toml`` and the domains file, checked into one ``spec.JobConfig``.

Reads files and nothing else: no network, no directory is created, nothing is written.
Every fault is collected and raised together as ``ConfigErrors``, each ``file:line: reason``
(tomllib gives no line numbers for keys, so ``_TomlLines`` finds them in the text). The
domains-file grammar and the checks of per-host deploy settings are in ``domains_file.py``.
Values given on the command line (``overrides``) win over the file and are named
``command line`` in messages.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .domains_file import (
    BOM,
    CHALLENGES,
    MAX_FILE,
    CertDefaults,
    ConfigErrors,
    Problems,
    check_files,
    check_mode,
    check_probe,
    check_reload,
    check_user,
    is_address_or_host,
    parse_domains,
    scan_domains,
)
from .errors import ConfigError, safe_text
from .keytypes import KeyType
from .names import normalize_identifier
from .protocol.b64 import b64url_decode
from .spec import (
    HTTP_MODES,
    CertSpec,
    Challenges,
    DnsSettings,
    HostSettings,
    JobConfig,
    LoadBalancers,
)

__all__ = ["CertDefaults", "ConfigErrors", "load_job", "parse_domains"]

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
DEFAULT_STATE_DIR = Path("/var/lib/certfleet")
CMDLINE = "command line"
T = TypeVar("T")
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\"|'[^']*'")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(text: str, pos: int) -> tuple[tuple[str, ...], int] | None:
    """The dotted TOML key at ``text[pos:]``: its parts, unquoted, and where it ends."""
    parts: list[str] = []
    while True:
        pos = len(text) - len(text[pos:].lstrip(" \t"))
        if (match := _KEY_PART.match(text, pos)) is None:
            return None
        part = match.group()
        if part.startswith('"'):
            try:
                part = tomllib.loads(f"k = {part}")["k"]
            except tomllib.TOMLDecodeError:
                return None
        parts.append(part[1:-1] if part.startswith("'") else part)
        pos = len(text) - len(text[match.end():].lstrip(" \t"))
        if not text.startswith(".", pos):
            return tuple(parts), pos
        pos += 1


class _TomlLines:
    """The line of each ``[table]`` and ``key =`` of a TOML text, and each value's raw text."""

    def __init__(self, text: str = "") -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        self.raw: dict[tuple[str, ...], str] = {}
        table: tuple[str, ...] = ()
        multiline = ""                         # inside a multi-line string: its delimiter
        for lineno, line in enumerate(text.split("\n"), 1):
            stripped = line.strip()
            if multiline:
                multiline = "" if stripped.count(multiline) % 2 else multiline
                continue
            brackets = len(stripped) - len(stripped.lstrip("[")) if stripped[:1] == "[" else 0
            if (got := _key_path(stripped, min(brackets, 2))) is None:
                continue
            path, end = got
            rest = stripped[end:]
            if brackets and rest.startswith("]" * brackets):
                if rest[brackets:].strip().startswith("#") or not rest[brackets:].strip():
                    table = path
                    self._add(table, lineno)
            elif not brackets and rest.startswith("="):
                value = self.raw.setdefault(table + path, rest[1:].strip())
                self._add(table + path, lineno)
                multiline = next((q for q in ('"""', "'''") if value.count(q) % 2), "")

    def _add(self, path: tuple[str, ...], lineno: int) -> None:
        for n in range(1, len(path) + 1):
            self.lines.setdefault(path[:n], lineno)

    def line(self, path: tuple[str, ...]) -> int:
        """The line of ``path``, else of the nearest enclosing table found, else 1."""
        found = (self.lines.get(path[:n]) for n in range(len(path), 0, -1))
        return next((line for line in found if line is not None), 1)


def _describe(value: object) -> str:
    kinds = ((bool, "true or false"), (str, "a string"), (int, "an integer"),
             (float, "a number"), (list, "an array"), (dict, "a table"))
    return next((text for kind, text in kinds if isinstance(value, kind)), "a date or time")


def _checked(problems: Problems, where: str, convert: Callable[..., T], *args: Any) -> T | None:
    """``convert(*args)``, or None after reporting its ``ConfigError`` at ``where``."""
    try:
        return convert(*args)
    except ConfigError as exc:
        problems.add(where, str(exc))
        return None


class _Table:
    """One TOML table: typed access reporting faults at the key's line, then ``finish()``
    reports every key present that certfleet does not know."""

    def __init__(self, source: str, index: _TomlLines, problems: Problems, base: Path,
                 path: tuple[str, ...] = (), data: dict[str, Any] | None = None) -> None:
        self.source, self.index, self.problems, self.base = source, index, problems, base
        self.path, self.data, self.used = path, data or {}, set[str]()

    def where(self, key: str | None = None) -> str:
        return f"{self.source}:{self.index.line(self.path if key is None else (*self.path, key))}"

    def get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        self.used.add(key)
        value = self.data.get(key)
        if value is not None and (not isinstance(value, kind)
                                  or (isinstance(value, bool) and kind is not bool)):
            self.problems.add(self.where(key), f"{key} must be {what}, not {_describe(value)}")
            return None
        return value

    def check(self, key: str, kind: type | tuple[type, ...], what: str,
              convert: Callable[[Any], T]) -> T | None:
        value = self.get(key, kind, what)
        return None if value is None else _checked(self.problems, self.where(key), convert, value)

    def path_of(self, key: str) -> Path | None:
        return self.check(key, str, "a path", lambda text: _path(text, self.base))

    def table(self, key: str) -> _Table:
        data = self.get(key, dict, "a table")
        return _Table(self.source, self.index, self.problems, self.base, (*self.path, key), data)

    def finish(self) -> None:
        def name(path: tuple[str, ...]) -> str:
            return ".".join(p if _BARE_KEY.fullmatch(p) else f'"{safe_text(p)}"' for p in path)

        for key in [key for key in self.data if key not in self.used]:
            if isinstance(self.data[key], dict):
                reason = f"unknown section [{name((*self.path, key))}]"
            else:
                reason = f"unknown option {safe_text(key)!r}"
                reason += f" in [{name(self.path)}]" if self.path else ""
            self.problems.add(self.where(key), reason)


# --- values --------------------------------------------------------------------------------

def _path(text: str, base: Path | None) -> Path:
    if not text or not text.isprintable():
        raise ConfigError(f"{safe_text(text)!r} is not a usable path")
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        raise ConfigError(f"cannot expand '~' in {safe_text(text)!r}: no home directory") from None
    return path if path.is_absolute() or base is None else base / path


def _paths(value: str | list[Any], base: Path) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str) else value
    if not all(isinstance(item, str) for item in items):
        raise ConfigError("config must be a list of paths")
    return tuple(_path(item, base) for item in items)


def _int_range(key: str, low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{key} must be an integer from {low} to {high}, not "
                              f"{safe_text(str(value))}")
        return value
    return convert


def _fraction(value: float) -> float:
    if not 0 < value < 1:
        raise ConfigError(f"renew_fraction must be between 0 and 1 (exclusive), not {value}")
    return float(value)


def _challenge(value: str) -> str:
    if value not in CHALLENGES:
        raise ConfigError(f"unknown challenge {safe_text(value)!r}; choose one of "
                          + ", ".join(CHALLENGES))
    return value


def _directory(value: str) -> str:
    url = PRESETS.get(value, value)
    parts = urlsplit(url) if url.isprintable() and " " not in url else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"directory {safe_text(value)!r} is not an https:// URL or one of "
                          + ", ".join(PRESETS))
    return url


def _dns(table: _Table, top: _Table) -> DnsSettings | None:
    """``[dns]``. The TSIG secret comes from ``tsig_secret_file`` (0600), the environment
    (CERTFLEET_TSIG_SECRET) or, discouraged, inline; it is never shown in a message."""
    if not table.data:
        table.finish()
        return None
    method = table.check("method", str, "a string", _dns_method) or "rfc2136"
    secret_file = table.path_of("tsig_secret_file")
    secret = table.get("tsig_secret", str, "a string") or os.environ.get("CERTFLEET_TSIG_SECRET")
    if secret_file is not None:
        try:
            secret = secret_file.read_text().strip()
        except OSError as exc:
            table.problems.add(table.where("tsig_secret_file"),
                               f"cannot read {safe_text(str(secret_file))}: {exc.strerror}")
    hook = table.check("hook", list, "an argv list", _argv) or ()
    settings = DnsSettings(
        method=method, server=table.check("server", str, "IP[:PORT]", _dns_server),
        tsig_key_name=table.get("tsig_key_name", str, "a string"),
        tsig_algorithm=table.get("tsig_algorithm", str, "a string") or "hmac-sha256",
        tsig_secret=secret,
        nameservers=tuple(table.check("nameservers", list, "a list of IP[:PORT]",
                                      lambda v: [_dns_server(x) for x in v]) or ()),
        ns_port=table.check("ns_port", int, "a port", _int_range("ns_port", 1, 65535)) or 53,
        propagation_timeout=float(table.get("propagation_timeout", (int, float), "seconds")
                                  or 120),
        hook=tuple(hook),
        hook_timeout=float(table.get("hook_timeout", (int, float), "seconds") or 60),
        hook_delay=float(table.get("hook_delay", (int, float), "seconds") or 0),
    )
    table.finish()
    if method == "rfc2136" and not (settings.server and settings.tsig_key_name and secret):
        table.problems.add(table.where(), "[dns] rfc2136 needs server, tsig_key_name and a "
                           "TSIG secret (tsig_secret_file or CERTFLEET_TSIG_SECRET)")
    if method == "hook" and not hook:
        table.problems.add(table.where(), "[dns] method = \"hook\" needs hook = [argv]")
    return settings


def _dns_method(value: str) -> str:
    if value not in ("rfc2136", "hook"):
        raise ValueError(f"method {safe_text(value)!r}: use rfc2136 or hook")
    return value


def _dns_server(value: Any) -> str:
    from .solvers.dns_common import parse_server

    if not isinstance(value, str):
        raise ValueError(f"{safe_text(repr(value))} is not IP[:PORT]")
    parse_server(value)
    return value


def _argv(value: list[Any]) -> list[str]:
    if not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError("hook must be a non-empty list of strings (argv, no shell)")
    return [str(v) for v in value]


def _eab_hmac_key(value: str) -> str:
    try:
        b64url_decode(value.strip().rstrip("="))
    except ValueError:
        raise ConfigError("eab_hmac_key is not base64url; the value is not shown") from None
    return value


def _eab_alg(value: str) -> str:
    if value.upper() not in ("HS256", "HS384", "HS512"):
        raise ConfigError(f"eab_alg {safe_text(value)!r}: use HS256, HS384 or HS512")
    return value.upper()


def _fallback(value: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(v, str) for v in value):
        raise ValueError("fallback must list directory URLs or preset names")
    return tuple(_directory(v) for v in value)


def _listen(value: str) -> str:
    host, _, port = value.rpartition(":")
    port_ok = port.isascii() and port.isdigit() and 0 < int(port) < 65536
    if not port_ok or not is_address_or_host(host):
        raise ConfigError(f"http_listen {safe_text(value)!r}: expected HOST:PORT")
    return value


def _profile(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise ValueError(f"profile {safe_text(value)!r}: letters, digits, '.', '_', '-' only")
    return value


def _http_mode(value: str) -> str:
    if value not in HTTP_MODES:
        raise ValueError(f"mode {safe_text(value)!r}: use one of {', '.join(HTTP_MODES)}")
    return value


def _lb_addresses(value: list[Any]) -> tuple[str, ...]:
    found = []
    for item in value:
        if not isinstance(item, str) or not item or any(c in item for c in " \t/\\'\"@"):
            raise ValueError(f"addresses: {safe_text(repr(item))} is not HOST or HOST:PORT")
        found.append(item)
    return tuple(found)


def _contact(value: str | list[Any] | tuple[Any, ...]) -> tuple[str, ...]:
    out = []
    for item in [value] if isinstance(value, str) else value:
        address = item.removeprefix("mailto:") if isinstance(item, str) else ""
        local, _, domain = address.partition("@")
        if (not local or not domain or "@" in domain or not address.isprintable()
                or " " in address or len(address) > 254):
            raise ConfigError(f"contact {safe_text(str(item))!r} is not an e-mail address")
        out.append(address)
    return tuple(out)


# --- sections ------------------------------------------------------------------------------

def _host(table: _Table) -> dict[str, Any]:
    """The fields a ``[hosts."NAME"]`` table sets (unset ones come from ``[hosts.default]``)."""
    octal = "an octal string like \"0644\""
    fields: dict[str, Any] = {
        "user": table.check("user", str, "a string", check_user),
        "port": table.check("port", int, "an integer", _int_range("port", 1, 65535)),
        "identity": table.path_of("identity"),
        "reload": table.check("reload", (list, str), "a list (argv)", check_reload),
        "owner": table.check("owner", str, "a string", lambda v: check_user(v, "owner")),
        "group": table.check("group", str, "a string", lambda v: check_user(v, "group")),
    }
    for key in ("mode", "key_mode"):
        raw = table.index.raw.get((*table.path, key), "")
        fields[key] = table.check(key, (str, int), octal, partial(check_mode, key, raw=raw))
    fields["files"] = table.check("files", dict, "a table", check_files)
    fields["probe"] = table.check("probe", dict, "a table", check_probe)
    table.finish()
    return {key: value for key, value in fields.items() if value is not None}


def _hosts(table: _Table) -> dict[str, HostSettings]:
    own = {key: _host(table.table(key)) for key in list(table.data)
           if table.get(key, dict, f'a table [hosts."{safe_text(key)}"]') is not None}
    table.finish()
    default = own.get("default", {})
    return {key: HostSettings(**{**default, **fields}) for key, fields in own.items()}


def _key_types(value: str | list[Any]) -> tuple[KeyType, ...]:
    raw = [value] if isinstance(value, str) else value
    if not raw or not all(isinstance(v, str) for v in raw):
        raise ValueError("key_type must be a key type or a non-empty list of them")
    types = tuple(KeyType.parse(v) for v in raw)
    if len(set(types)) != len(types):
        raise ValueError("key_type lists a key type twice")
    return types


def _cert_settings(table: _Table, base: CertDefaults) -> CertDefaults:
    types = table.check("key_type", (str, list), "a key type or a list of them", _key_types)
    key_type = types[0] if types else None
    challenge = table.check("challenge", str, "a string", _challenge)
    reuse_key = table.get("reuse_key", bool, "true or false")
    profile = table.check("profile", str, "a string", _profile)
    chain = table.check("preferred_chain", str, "a string", lambda v: safe_text(v, 200))
    ca = table.check("ca", str, "a directory URL or preset name", _directory)
    fallback = table.check("fallback", list, "a list of directory URLs or presets", _fallback)
    table.finish()
    return CertDefaults(key_type=base.key_type if key_type is None else key_type,
                        challenge=base.challenge if challenge is None else challenge,
                        reuse_key=base.reuse_key if reuse_key is None else reuse_key,
                        profile=base.profile if profile is None else profile,
                        preferred_chain=base.preferred_chain if chain is None else chain,
                        more_key_types=base.more_key_types if types is None else types[1:],
                        ca=base.ca if ca is None else ca,
                        fallback=base.fallback if fallback is None else fallback)


def _certs(table: _Table, default: CertDefaults) -> dict[str, tuple[CertDefaults, str]]:
    """``[certs."NAME"]`` sections by normalized name: their settings and where they are."""
    out: dict[str, tuple[CertDefaults, str]] = {}
    for key in list(table.data):
        if table.get(key, dict, f'a table [certs."{safe_text(key)}"]') is None:
            continue
        settings = _cert_settings(table.table(key), default)
        name = _checked(table.problems, table.where(key), normalize_identifier, key)
        if name in out:
            table.problems.add(table.where(key), f"[certs.\"{name}\"] given twice")
        elif name is not None:
            out[name] = (settings, table.where(key))
    table.finish()
    return out


# --- files ---------------------------------------------------------------------------------

def _read(path: Path) -> bytes:
    """At most ``MAX_FILE + 1`` bytes of a regular file (the caller reports a larger one)."""
    with path.open("rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("not a regular file")
        if info.st_mode & 0o022:
            # Whoever can write it chooses reload commands and where private keys go.
            raise ConfigError(f"writable by group or others (mode "
                              f"{stat.S_IMODE(info.st_mode):o}); chmod go-w it")
        return file.read(MAX_FILE + 1)


def _why(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _load_toml(path: Path, problems: Problems) -> tuple[dict[str, Any], _TomlLines]:
    source = str(path)
    try:
        data = _read(path)
        if len(data) > MAX_FILE:
            raise ConfigError("file larger than 16 MiB")
        text = data.removeprefix(BOM).decode("utf-8")
        return tomllib.loads(text), _TomlLines(text)
    except (OSError, ConfigError) as exc:
        problems.add(source, f"cannot read: {_why(exc)}")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.add(f"{source}:{line}", f"not valid UTF-8 (byte 0x{data[exc.start]:02x})")
    except tomllib.TOMLDecodeError as exc:
        at = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc), re.S)
        if at:
            problems.add(f"{source}:{at[2]}", f"{safe_text(at[1])} (column {at[3]})")
        else:
            reason = str(exc).replace("(at end of document)", "at the end of the file")
            problems.add(f"{source}:{text.count(chr(10)) + 1}", safe_text(reason))
    return {}, _TomlLines()


def _ca_section(ca: _Table, put: Callable[..., None], job: dict[str, Any],
                problems: Problems) -> None:
    """``[ca]``: the directory, its trust, the account and its external binding."""
    put(ca, "directory", ca.check("directory", str, "a string", _directory))
    put(ca, "ca_bundle", ca.path_of("ca_bundle"))
    put(ca, "allow_http", ca.get("allow_http", bool, "true or false"))
    put(ca, "contact", ca.check("contact", (list, str), "a list of addresses", _contact))
    put(ca, "account_key_type", ca.check("account_key_type", str, "a string", KeyType.parse))
    put(ca, "fallback", ca.check("fallback", list, "a list of directory URLs or presets",
                                 _fallback))
    put(ca, "max_clock_skew", ca.check("max_clock_skew", (int, float), "seconds",
                                       lambda v: float(_int_range("max_clock_skew", 0,
                                                                   86400)(int(v)))))
    put(ca, "eab_kid", ca.get("eab_kid", str, "a string"))
    put(ca, "eab_hmac_key", ca.check("eab_hmac_key", str, "a string", _eab_hmac_key))
    put(ca, "eab_alg", ca.check("eab_alg", str, "a string", _eab_alg))
    if ("eab_kid" in job) != ("eab_hmac_key" in job):
        problems.add(ca.where(), "[ca] eab_kid and eab_hmac_key go together")


def load_job(config_path: Path | None, *, domains_path: Path | None = None,
             overrides: Mapping[str, Any] | None = None) -> JobConfig:
    """The whole job from ``certfleet.toml``, the domains file and command-line values.

    ``overrides`` (keys: directory, ca_bundle, state_dir, allow_http, webroot, http_listen,
    contact, concurrency; ``None`` means not given) win over the file, ``domains_path`` over
    its ``domains``. Relative paths in the file are taken from its directory, ``~`` expanded.
    Raises ``ConfigErrors`` listing every fault found.
    """
    problems = Problems()
    data, index = _load_toml(config_path, problems) if config_path else ({}, _TomlLines())
    base = Path(os.path.abspath(config_path)).parent if config_path else Path.cwd()
    top = _Table(str(config_path or CMDLINE), index, problems, base, (), data)
    job: dict[str, Any] = {"directory": LETSENCRYPT, "state_dir": DEFAULT_STATE_DIR}
    where: dict[str, str] = {}

    def put(table: _Table, key: str, value: Any, name: str | None = None) -> None:
        if value is not None:
            job[name or key], where[name or key] = value, table.where(key)

    put(top, "state_dir", top.path_of("state_dir"))
    put(top, "domains", top.path_of("domains"))
    put(top, "concurrency", top.check("concurrency", int, "an integer",
                                      _int_range("concurrency", 1, 64)))
    put(top, "renew_fraction", top.check("renew_fraction", (int, float), "a number", _fraction))
    ca = top.table("ca")
    _ca_section(ca, put, job, problems)
    how = top.table("challenge")
    put(how, "webroot", how.path_of("webroot"))
    put(how, "http_listen", how.check("http_listen", str, "a string", _listen))
    put(how, "mode", how.check("mode", str, "a string", _http_mode))
    put(how, "serve_listen", how.check("serve_listen", str, "a string", _listen))
    put(how, "tls_alpn_listen", how.check("tls_alpn_listen", str, "a string", _listen))
    lbs = top.table("lb")
    lb = LoadBalancers(
        addresses=lbs.check("addresses", list, "a list of addresses", _lb_addresses) or (),
        port=lbs.check("port", int, "a port number", _int_range("port", 1, 65535)) or 80,
        preflight=lbs.get("preflight", bool, "true or false") is not False,
    )
    default = _cert_settings(top.table("defaults"), CertDefaults())
    ssh = top.table("ssh")
    put(ssh, "config", ssh.check("config", (list, str), "a list of paths",
                                 lambda value: _paths(value, base)), "ssh_config")
    put(ssh, "known_hosts", ssh.path_of("known_hosts"))
    job["hosts"] = _hosts(top.table("hosts"))
    certs = _certs(top.table("certs"), default)
    dns = _dns(top.table("dns"), top)
    for table in (ssh, ca, how, lbs, top):
        table.finish()
    _apply_overrides(overrides or {}, job, where, problems)
    _cross_check(job, where, problems)
    if domains_path is not None:
        job["domains"], where["domains"] = domains_path, CMDLINE
    specs = _domains(job.pop("domains", None), where, default, certs, problems)
    problems.raise_if_any()
    job.setdefault("ssh_config", _default_ssh_config())
    challenges = Challenges(job.pop("webroot", None), job.pop("http_listen", None),
                            job.pop("mode", None), job.pop("serve_listen", None),
                            job.pop("tls_alpn_listen", None))
    specs = _with_variants(specs, default, certs)
    result = JobConfig(certs=tuple(specs), challenges=challenges, lb=lb, dns=dns, **job)
    for source, reason in result.file_clashes():
        problems.add(source, reason)
    problems.raise_if_any()
    return result


_OVERRIDES: dict[str, tuple[tuple[type, ...], Callable[[Any], Any]]] = {
    "directory": ((str,), _directory),
    "ca_bundle": ((str, os.PathLike), lambda value: _path(os.fspath(value), None)),
    "state_dir": ((str, os.PathLike), lambda value: _path(os.fspath(value), None)),
    "webroot": ((str, os.PathLike), lambda value: _path(os.fspath(value), None)),
    "allow_http": ((bool,), bool),
    "http_listen": ((str,), _listen),
    "contact": ((str, list, tuple), _contact),
    "concurrency": ((int,), _int_range("concurrency", 1, 64)),
}


def _apply_overrides(overrides: Mapping[str, Any], job: dict[str, Any], where: dict[str, str],
                     problems: Problems) -> None:
    """Command-line values over the file's. Choosing webroot or http_listen there drops the
    file's choice of the other."""
    for key, value in overrides.items():
        if key not in _OVERRIDES:
            raise TypeError(f"load_job: unknown override {key!r}")
        kinds, convert = _OVERRIDES[key]
        if value is None:
            continue
        if not isinstance(value, kinds):
            problems.add(CMDLINE, f"{key}: unexpected {type(value).__name__} value")
        elif (converted := _checked(problems, CMDLINE, convert, value)) is not None:
            job[key], where[key] = converted, CMDLINE
            other = {"webroot": "http_listen", "http_listen": "webroot"}.get(key)
            if other and overrides.get(other) is None:
                job.pop(other, None)
                job.pop("mode", None)  # the command line's choice replaces the file's


def _cross_check(job: dict[str, Any], where: dict[str, str], problems: Problems) -> None:
    mode = job.get("mode")
    if mode is None and "webroot" in job and "http_listen" in job:
        problems.add(where["http_listen"], "give webroot or http_listen, not both")
    for needed, key in (("webroot", "webroot"), ("listen", "http_listen")):
        if mode == needed and key not in job:
            problems.add(where["mode"], f"mode = \"{needed}\" needs {key}")
    if urlsplit(job["directory"]).scheme == "http" and not job.get("allow_http"):
        problems.add(where.get("directory", CMDLINE), "a plain http:// directory needs "
                     "allow_http = true (for test servers only)")
    if (bundle := job.get("ca_bundle")) is not None and not bundle.is_file():
        problems.add(where["ca_bundle"], f"ca_bundle {safe_text(str(bundle))}: no such file")


def _domains(path: Path | None, where: dict[str, str], default: CertDefaults,
             certs: Mapping[str, tuple[CertDefaults, str]], problems: Problems,
             ) -> list[CertSpec]:
    """The domains file's certificates; and each ``[certs."NAME"]`` must name one of them."""
    specs: list[CertSpec] = []
    names: Mapping[str, tuple[int, bool]] = {}
    if path is not None:
        try:
            data = _read(path)
        except (OSError, ConfigError) as exc:
            problems.add(where.get("domains", CMDLINE),
                         f"cannot read domains file {safe_text(str(path))}: {_why(exc)}")
            return specs
        settings = {name: value for name, (value, _) in certs.items()}
        specs, names = scan_domains(data, str(path), default=default, certs=settings,
                                    problems=problems)
    for name, (_, at) in certs.items():
        if name not in names:
            problems.add(at, f"[certs.\"{name}\"]: no such certificate in the domains file")
        elif not names[name][1]:
            problems.add(at, f"[certs.\"{name}\"]: {name} is an alternative name (line "
                         f"{names[name][0]}); sections are keyed by a certificate's first name")
    return specs


def _with_variants(specs: list[CertSpec], default: CertDefaults,
                   certs: Mapping[str, tuple[CertDefaults, str]]) -> list[CertSpec]:
    """A certificate with several key types becomes one spec per type, issued and deployed
    together (``fleet`` renews them as a group)."""
    out: list[CertSpec] = []
    for spec in specs:
        out.append(spec)
        settings = certs[spec.name][0] if spec.name in certs else default
        out += [replace(spec, key_type=kt, variant=kt.value) for kt in settings.more_key_types]
    return out


def _default_ssh_config() -> tuple[Path, ...]:
    try:
        path = Path("~/.ssh/config").expanduser()
    except RuntimeError:
        return ()
    return (path,) if path.is_file() else ()
