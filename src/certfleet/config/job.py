"""``certfleet.toml``, the domains file and the command line, checked into one ``JobConfig``.

Reads files and nothing else: no network, no directory is created, nothing is written.
Every fault is collected and raised together as ``ConfigErrors``, each ``file:line: reason``.
The flow runs one way: ``problems`` collects, ``tomlfile`` gives typed tables, ``values``
checks single values, ``sections`` reads each section, ``domains`` parses the domains file,
and this module puts them together. Values given on the command line or in the environment
(``overrides``) win over the file and are named by where they came from in messages.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import fsutil, named_files
from ..errors import ConfigError, safe_text
from ..keytypes import KeyType
from ..layout import placement
from ..ratelimits import CA_LIMITS, PRIVATE_CA_LIMITS, CaLimits
from ..spec import CertDefaults, CertSpec, Challenges, JobConfig
from . import sections, store_section, values
from .defaults import CONCURRENCY, DEFAULT_STATE_DIR, LETSENCRYPT, MAX_CONCURRENCY
from .domains import BOM, MAX_FILE, scan_domains
from .problems import CMDLINE, ConfigErrors, Problems
from .tomlfile import Table, TomlLines, checked, resolve_path

__all__ = ["ConfigErrors", "load_job"]


def _load_toml(path: Path, problems: Problems) -> tuple[dict[str, Any], TomlLines]:
    source = str(path)
    try:
        data = fsutil.read_trusted(path, MAX_FILE + 1)
        if len(data) > MAX_FILE:
            raise ConfigError("file larger than 16 MiB")
        text = data.removeprefix(BOM).decode("utf-8")
        return tomllib.loads(text), TomlLines(text)
    except FileNotFoundError:
        problems.add(source, "cannot read: No such file or directory")
    except ConfigError as exc:
        problems.add(source, f"cannot read: {_reason(exc, path)}")
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


def _reason(exc: ConfigError, path: Path) -> str:
    """``read_trusted``'s message without the path it starts with (the caller names it)."""
    return str(exc).removeprefix(f"{path}: ")


def load_job(config_path: Path | None, *, domains_path: Path | None = None,
             overrides: Mapping[str, Any] | None = None,
             origins: Mapping[str, str] | None = None, with_certs: bool = True) -> JobConfig:
    """The whole job from ``certfleet.toml``, the domains file and command-line values.

    ``overrides`` (keys: directory, ca_bundle, state_dir, allow_http, webroot, http_listen,
    contact, concurrency, account_key_type; ``None`` means not given) win over the file,
    ``domains_path`` over its ``domains``; ``origins`` says where each override came from
    (default: the command line). Relative paths in the file are taken from its directory,
    ``~`` expanded. Raises ``ConfigErrors`` listing every fault found. ``with_certs=False``:
    the domains file is not read (``certs`` is empty; its ``[certs."NAME"]`` sections are
    checked against it only when it is).
    """
    problems = Problems()
    data, index = _load_toml(config_path, problems) if config_path else ({}, TomlLines())
    base = Path(os.path.abspath(config_path)).parent if config_path else Path.cwd()
    top = Table(str(config_path or CMDLINE), index, problems, base, (), data)
    job: dict[str, Any] = {"directory": LETSENCRYPT, "state_dir": Path(DEFAULT_STATE_DIR),
                           "concurrency": CONCURRENCY}
    where: dict[str, str] = {}

    def put(table: Table, key: str, value: Any, name: str | None = None) -> None:
        if value is not None:
            job[name or key], where[name or key] = value, table.where(key)

    put(top, "state_dir", top.path_of("state_dir"))
    put(top, "domains", top.path_of("domains"))
    put(top, "concurrency", top.check("concurrency", int, "an integer",
                                      values.int_range("concurrency", 1, MAX_CONCURRENCY)))
    put(top, "renew_fraction",
        top.check("renew_fraction", (int, float), "a number", values.fraction))
    ca, how, lbs, ssh = (top.table(key) for key in ("ca", "challenge", "lb", "ssh"))
    sections.ca(ca, put, job, problems)
    put(how, "webroot", how.path_of("webroot"))
    put(how, "http_listen", how.check("http_listen", str, "a string", values.listen))
    put(how, "mode", how.check("mode", str, "a string", values.http_mode))
    put(how, "serve_listen", how.check("serve_listen", str, "a string",
                                       partial(values.listen, key="serve_listen")))
    put(how, "tls_alpn_listen", how.check("tls_alpn_listen", str, "a string",
                                          partial(values.listen, key="tls_alpn_listen")))
    lb = sections.lb(lbs)
    default = sections.cert_settings(top.table("defaults"), CertDefaults())
    sections.ssh_paths(ssh, base, put)
    job["hosts"] = sections.hosts(top.table("hosts"))
    certs = sections.certs(top.table("certs"), default)
    dns = sections.dns(top.table("dns"))
    notify = sections.notify(top.table("notify"))
    stored_in = store_section.store(top.table("store"))
    metrics = top.table("metrics")
    put(metrics, "textfile", metrics.path_of("textfile"), "metrics_textfile")
    metrics.finish()
    for table in (ssh, ca, how, lbs, top):
        table.finish()
    _apply_overrides(overrides or {}, origins or {}, job, where, problems)
    _cross_check(job, where, problems)
    _plain_http_cas(default, certs, bool(job.get("allow_http")), top.where("defaults"),
                    problems)
    if domains_path is not None:
        job["domains"], where["domains"] = domains_path, (origins or {}).get("domains",
                                                                            CMDLINE)
    job["domains_file"] = job.pop("domains", None)
    specs = _domains(job["domains_file"], where, default, certs, problems) if with_certs else []
    problems.raise_if_any()
    job.setdefault("ssh_config", _default_ssh_config())
    challenges = Challenges(job.pop("webroot", None), job.pop("http_listen", None),
                            job.pop("mode", None), job.pop("serve_listen", None),
                            job.pop("tls_alpn_listen", None))
    specs = _with_variants(specs, default, certs)
    job["ca_limits"] = _ca_limits(job, specs)
    result = JobConfig(certs=tuple(specs), challenges=challenges, lb=lb, dns=dns, notify=notify,
                       store=stored_in,
                       defaults=default, cert_settings={k: v for k, (v, _) in certs.items()},
                       **job)
    for source, reason in file_clashes(result):
        problems.add(source, reason)
    problems.raise_if_any()
    return result


def _ca_limits(job: dict[str, Any], specs: list[CertSpec]) -> dict[str, CaLimits]:
    """The limits of every CA the job can order from: the preset's (or a private CA's),
    with ``[ca]``'s own values for the job's CA."""
    urls = {job["directory"], *job.get("fallback", ())}
    urls.update(url for spec in specs for url in (spec.ca, *(spec.fallback or ())) if url)
    limits = {url: CA_LIMITS.get(url, PRIVATE_CA_LIMITS) for url in urls}
    own = limits[job["directory"]]
    limits[job["directory"]] = CaLimits(
        job.pop("request_rate", own.request_rate),
        job.pop("new_order_limit", own.new_orders),
        timedelta(seconds=job.pop("new_order_window")) if "new_order_window" in job
        else own.window)
    return limits


def _path(value: Any) -> Path:
    return resolve_path(os.fspath(value), None)


_OVERRIDES: dict[str, tuple[tuple[type, ...], Callable[[Any], Any]]] = {
    "directory": ((str,), values.directory),
    "ca_bundle": ((str, os.PathLike), _path),
    "state_dir": ((str, os.PathLike), _path),
    "webroot": ((str, os.PathLike), _path),
    "allow_http": ((bool,), bool),
    "http_listen": ((str,), values.listen),
    "contact": ((str, list, tuple), values.contact),
    "concurrency": ((int,), values.int_range("concurrency", 1, MAX_CONCURRENCY)),
    "account_key_type": ((str,), KeyType.parse),
}


def _apply_overrides(overrides: Mapping[str, Any], origins: Mapping[str, str],
                     job: dict[str, Any], where: dict[str, str], problems: Problems) -> None:
    """Command-line values over the file's. Choosing webroot or http_listen there drops the
    file's choice of the other."""
    for key, value in overrides.items():
        if key not in _OVERRIDES:
            raise TypeError(f"load_job: unknown override {key!r}")
        kinds, convert = _OVERRIDES[key]
        if value is None:
            continue
        origin = origins.get(key, CMDLINE)
        if not isinstance(value, kinds):
            problems.add(origin, f"{key}: unexpected {type(value).__name__} value")
        elif (converted := checked(problems, origin, convert, value)) is not None:
            job[key], where[key] = converted, origin
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
                     "allow_http = true (--insecure-http; for test servers only)")
    for url in job.get("fallback", ()):
        if urlsplit(url).scheme == "http" and not job.get("allow_http"):
            problems.add(where.get("fallback", CMDLINE), f"fallback {safe_text(url)}: a plain "
                         "http:// directory needs allow_http = true (for test servers only)")
    # Whoever can write the trust anchors decides which TLS server is "the CA".
    if (bundle := job.get("ca_bundle")) is not None and (
            why := named_files.refusals(bundle, named_files.TLS_ROOTS, missing_ok=False)):
        problems.add(where["ca_bundle"], f"ca_bundle {safe_text(why[0])}")


def _plain_http_cas(default: CertDefaults, certs: Mapping[str, tuple[CertDefaults, str]],
                    allowed: bool, defaults_at: str, problems: Problems) -> None:
    """A certificate's own CA or fallbacks over plain http need allow_http too."""
    for settings, at in [(default, defaults_at), *certs.values()]:
        for url in (settings.ca, *(settings.fallback or ())):
            if url and urlsplit(url).scheme == "http" and not allowed:
                problems.add(at, f"{safe_text(url)}: a plain http:// directory needs "
                             "allow_http = true (for test servers only)")


def _domains(path: Path | None, where: dict[str, str], default: CertDefaults,
             certs: Mapping[str, tuple[CertDefaults, str]], problems: Problems,
             ) -> list[CertSpec]:
    """The domains file's certificates; and each ``[certs."NAME"]`` must name one of them."""
    specs: list[CertSpec] = []
    names: Mapping[str, tuple[int, bool]] = {}
    if path is not None:
        try:
            data = fsutil.read_trusted(path, MAX_FILE + 1)
        except FileNotFoundError:
            problems.add(where.get("domains", CMDLINE),
                         f"cannot read domains file {safe_text(str(path))}: no such file")
            return specs
        except ConfigError as exc:
            problems.add(where.get("domains", CMDLINE), f"cannot read domains file "
                         f"{safe_text(str(path))}: {_reason(exc, path)}")
            return specs
        settings = {name: value for name, (value, _) in certs.items()}
        specs, names = scan_domains(data, str(path), default=default, certs=settings,
                                    problems=problems)
        for name, (_, at) in certs.items():
            if name not in names:
                problems.add(at, f"[certs.\"{name}\"]: no such certificate in the domains file")
            elif not names[name][1]:
                problems.add(at, f"[certs.\"{name}\"]: {name} is an alternative name (line "
                             f"{names[name][0]}); sections are keyed by a certificate's first "
                             "name")
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


def file_clashes(job: JobConfig) -> list[tuple[str, str]]:
    """(source, reason) for every file two certificates would write at the same place.

    Only ``files = {...}`` settings can make that happen: by default each certificate has a
    directory of its own at every target (``layout``).
    """
    owner: dict[tuple[str, str], CertSpec] = {}
    clashes = []
    for spec in job.certs:
        for target in spec.targets:
            settings = job.host(target)
            where = placement(target, settings, spec.name)
            for pem, _ in where.files:
                place = (target.host_key, where.path(pem))
                first = owner.setdefault(place, spec)
                if first is not spec:
                    clashes.append((spec.source, (
                        f"{target.key}: {where.path(pem)} is also written for {first.name} "
                        f"({first.source}); put {{name}} in the files = {{...}} of host "
                        f"{target.host_key or 'default'}, or drop files to give each "
                        "certificate its own directory")))
                    break
    return clashes


def _default_ssh_config() -> tuple[Path, ...]:
    """``~/.ssh/config`` if there is one. It is checked (``named_files``) where an SSH
    deploy is about to use it, one failed target each, not here: an ``Include`` in the
    operator's own ssh_config (common) must not stop ``status`` or a fleet of local targets.
    """
    try:
        path = Path("~/.ssh/config").expanduser()
    except RuntimeError:
        return ()
    try:
        return (path,) if path.is_file() else ()
    except OSError:  # a home this user may not look into (a sandbox's ProtectHome=): none
        return ()
