"""``certfleet.toml`` and the domains file, checked into one ``spec.JobConfig``.

Reads files and nothing else: no network, no directory is created, nothing is written.
Every fault is collected and raised together as ``ConfigErrors``, each ``file:line: reason``
(tomllib gives no line numbers for keys, so ``TomlLines`` finds them in the text). The
domains-file grammar and the checks of per-host deploy settings are in ``domains_file.py``,
the TOML plumbing in ``config_toml.py``, single-value checks in ``config_values.py``.
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
from typing import Any
from urllib.parse import urlsplit

from . import config_values as values
from .config_toml import Table, TomlLines, checked, resolve_path
from .config_values import LETSENCRYPT
from .domains_file import (
    BOM,
    MAX_FILE,
    CertDefaults,
    ConfigErrors,
    Problems,
    check_files,
    check_mode,
    check_probe,
    check_reload,
    check_user,
    parse_domains,
    scan_domains,
)
from .errors import ConfigError, safe_text
from .keytypes import KeyType
from .names import normalize_identifier
from .spec import (
    CertSpec,
    Challenges,
    DnsSettings,
    HostSettings,
    JobConfig,
    LoadBalancers,
)

__all__ = ["CertDefaults", "ConfigErrors", "load_job", "parse_domains"]

DEFAULT_STATE_DIR = Path("/var/lib/certfleet")
CMDLINE = "command line"
def _dns(table: Table, top: Table) -> DnsSettings | None:
    """``[dns]``. The TSIG secret comes from ``tsig_secret_file`` (0600), the environment
    (CERTFLEET_TSIG_SECRET) or, discouraged, inline; it is never shown in a message."""
    if not table.data:
        table.finish()
        return None
    method = table.check("method", str, "a string", values.dns_method) or "rfc2136"
    secret_file = table.path_of("tsig_secret_file")
    secret = table.get("tsig_secret", str, "a string") or os.environ.get("CERTFLEET_TSIG_SECRET")
    if secret_file is not None:
        try:
            secret = secret_file.read_text().strip()
        except OSError as exc:
            table.problems.add(table.where("tsig_secret_file"),
                               f"cannot read {safe_text(str(secret_file))}: {exc.strerror}")
    hook = table.check("hook", list, "an argv list", values.argv) or ()
    settings = DnsSettings(
        method=method, server=table.check("server", str, "IP[:PORT]", values.dns_server),
        tsig_key_name=table.get("tsig_key_name", str, "a string"),
        tsig_algorithm=table.get("tsig_algorithm", str, "a string") or "hmac-sha256",
        tsig_secret=secret,
        nameservers=tuple(table.check("nameservers", list, "a list of IP[:PORT]",
                                      lambda v: [values.dns_server(x) for x in v]) or ()),
        ns_port=table.check("ns_port", int, "a port", values.int_range("ns_port", 1, 65535)) or 53,
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



# --- sections ------------------------------------------------------------------------------

def _host(table: Table) -> dict[str, Any]:
    """The fields a ``[hosts."NAME"]`` table sets (unset ones come from ``[hosts.default]``)."""
    octal = "an octal string like \"0644\""
    fields: dict[str, Any] = {
        "user": table.check("user", str, "a string", check_user),
        "port": table.check("port", int, "an integer", values.int_range("port", 1, 65535)),
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


def _hosts(table: Table) -> dict[str, HostSettings]:
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


def _cert_settings(table: Table, base: CertDefaults) -> CertDefaults:
    types = table.check("key_type", (str, list), "a key type or a list of them", _key_types)
    key_type = types[0] if types else None
    challenge = table.check("challenge", str, "a string", values.challenge)
    reuse_key = table.get("reuse_key", bool, "true or false")
    profile = table.check("profile", str, "a string", values.profile)
    chain = table.check("preferred_chain", str, "a string", lambda v: safe_text(v, 200))
    ca = table.check("ca", str, "a directory URL or preset name", values.directory)
    fallback = table.check("fallback", list, "a list of directory URLs or presets", values.fallback)
    table.finish()
    return CertDefaults(key_type=base.key_type if key_type is None else key_type,
                        challenge=base.challenge if challenge is None else challenge,
                        reuse_key=base.reuse_key if reuse_key is None else reuse_key,
                        profile=base.profile if profile is None else profile,
                        preferred_chain=base.preferred_chain if chain is None else chain,
                        more_key_types=base.more_key_types if types is None else types[1:],
                        ca=base.ca if ca is None else ca,
                        fallback=base.fallback if fallback is None else fallback)


def _certs(table: Table, default: CertDefaults) -> dict[str, tuple[CertDefaults, str]]:
    """``[certs."NAME"]`` sections by normalized name: their settings and where they are."""
    out: dict[str, tuple[CertDefaults, str]] = {}
    for key in list(table.data):
        if table.get(key, dict, f'a table [certs."{safe_text(key)}"]') is None:
            continue
        settings = _cert_settings(table.table(key), default)
        name = checked(table.problems, table.where(key), normalize_identifier, key)
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


def _load_toml(path: Path, problems: Problems) -> tuple[dict[str, Any], TomlLines]:
    source = str(path)
    try:
        data = _read(path)
        if len(data) > MAX_FILE:
            raise ConfigError("file larger than 16 MiB")
        text = data.removeprefix(BOM).decode("utf-8")
        return tomllib.loads(text), TomlLines(text)
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
    return {}, TomlLines()


def _ca_section(ca: Table, put: Callable[..., None], job: dict[str, Any],
                problems: Problems) -> None:
    """``[ca]``: the directory, its trust, the account and its external binding."""
    put(ca, "directory", ca.check("directory", str, "a string", values.directory))
    put(ca, "ca_bundle", ca.path_of("ca_bundle"))
    put(ca, "allow_http", ca.get("allow_http", bool, "true or false"))
    put(ca, "contact", ca.check("contact", (list, str), "a list of addresses", values.contact))
    put(ca, "account_key_type", ca.check("account_key_type", str, "a string", KeyType.parse))
    put(ca, "fallback", ca.check("fallback", list, "a list of directory URLs or presets",
                                 values.fallback))
    put(ca, "max_clock_skew", ca.check("max_clock_skew", (int, float), "seconds",
                                       lambda v: float(values.int_range("max_clock_skew", 0,
                                                                   86400)(int(v)))))
    put(ca, "eab_kid", ca.get("eab_kid", str, "a string"))
    put(ca, "eab_hmac_key", ca.check("eab_hmac_key", str, "a string", values.eab_hmac_key))
    put(ca, "eab_alg", ca.check("eab_alg", str, "a string", values.eab_alg))
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
    data, index = _load_toml(config_path, problems) if config_path else ({}, TomlLines())
    base = Path(os.path.abspath(config_path)).parent if config_path else Path.cwd()
    top = Table(str(config_path or CMDLINE), index, problems, base, (), data)
    job: dict[str, Any] = {"directory": LETSENCRYPT, "state_dir": DEFAULT_STATE_DIR}
    where: dict[str, str] = {}

    def put(table: Table, key: str, value: Any, name: str | None = None) -> None:
        if value is not None:
            job[name or key], where[name or key] = value, table.where(key)

    put(top, "state_dir", top.path_of("state_dir"))
    put(top, "domains", top.path_of("domains"))
    put(top, "concurrency", top.check("concurrency", int, "an integer",
                                      values.int_range("concurrency", 1, 64)))
    put(top, "renew_fraction",
        top.check("renew_fraction", (int, float), "a number", values.fraction))
    ca = top.table("ca")
    _ca_section(ca, put, job, problems)
    how = top.table("challenge")
    put(how, "webroot", how.path_of("webroot"))
    put(how, "http_listen", how.check("http_listen", str, "a string", values.listen))
    put(how, "mode", how.check("mode", str, "a string", values.http_mode))
    put(how, "serve_listen", how.check("serve_listen", str, "a string", values.listen))
    put(how, "tls_alpn_listen", how.check("tls_alpn_listen", str, "a string", values.listen))
    lbs = top.table("lb")
    lb = LoadBalancers(
        addresses=lbs.check("addresses", list, "a list of addresses", values.lb_addresses) or (),
        port=lbs.check("port", int, "a port number", values.int_range("port", 1, 65535)) or 80,
        preflight=lbs.get("preflight", bool, "true or false") is not False,
    )
    default = _cert_settings(top.table("defaults"), CertDefaults())
    ssh = top.table("ssh")
    put(ssh, "config", ssh.check("config", (list, str), "a list of paths",
                                 lambda value: values.paths(value, base)), "ssh_config")
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
    "directory": ((str,), values.directory),
    "ca_bundle": ((str, os.PathLike), lambda value: resolve_path(os.fspath(value), None)),
    "state_dir": ((str, os.PathLike), lambda value: resolve_path(os.fspath(value), None)),
    "webroot": ((str, os.PathLike), lambda value: resolve_path(os.fspath(value), None)),
    "allow_http": ((bool,), bool),
    "http_listen": ((str,), values.listen),
    "contact": ((str, list, tuple), values.contact),
    "concurrency": ((int,), values.int_range("concurrency", 1, 64)),
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
        elif (converted := checked(problems, CMDLINE, convert, value)) is not None:
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
