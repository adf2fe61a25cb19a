"""The sections of ``certfleet.toml``, each read from its ``Table`` into values.

Touches the files a section names (a TSIG secret, an EAB key file; the ssh_config files,
known_hosts, identities and TLS trust anchors, checked by ``named_files``) and nothing
else. Each
reader reports every fault at its key's line and returns what ``spec`` wants; ``job.py``
puts the sections together.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from .. import fsutil, named_files
from ..errors import ConfigError
from ..keytypes import KeyType
from ..names import normalize_identifier
from ..spec import (
    NOTIFY_EVENTS,
    QUIET_EVENTS,
    CertDefaults,
    DnsSettings,
    HostSettings,
    LoadBalancers,
    NotifySettings,
)
from . import values
from .problems import Problems
from .tomlfile import Table, checked

SECRET_LIMIT = 64 * 1024
ENV_TSIG_SECRET = "CERTFLEET_TSIG_SECRET"  # noqa: S105 - a variable name


def secret(table: Table, file_key: str, inline_key: str, variable: str | None) -> str | None:
    """A secret from the environment (``variable``) if set there, else from the file that
    ``file_key`` names, else (discouraged) inline; giving both in the file is an error."""
    from_file = read_secret(table, file_key)
    inline = table.get(inline_key, str, "a string")
    if table.data.get(file_key) is not None and inline is not None:
        table.problems.add(table.where(inline_key), f"give {file_key} or {inline_key}, not "
                           "both (the value is not shown)")
    if variable is not None and os.environ.get(variable):
        return os.environ[variable]
    return from_file if from_file is not None else inline


def read_secret(table: Table, key: str) -> str | None:
    """The content of the secret file ``key`` names, stripped; None if not set or unusable
    (the fault is reported; the secret itself never is)."""
    path = table.path_of(key)
    if path is None:
        return None
    try:
        return fsutil.read_trusted(path, SECRET_LIMIT, secret=True).decode().strip()
    except FileNotFoundError:
        table.problems.add(table.where(key), f"{path}: no such file")
    except (ConfigError, UnicodeDecodeError) as exc:
        table.problems.add(table.where(key), str(exc) if isinstance(exc, ConfigError)
                           else f"{path}: not text")
    return None


def dns(table: Table) -> DnsSettings | None:
    """``[dns]``. The TSIG secret comes from ``tsig_secret_file`` (0600), the environment
    (CERTFLEET_TSIG_SECRET) or, discouraged, inline; it is never shown in a message."""
    method = table.check("method", str, "a string", values.dns_method) or "rfc2136"
    tsig = secret(table, "tsig_secret_file", "tsig_secret", ENV_TSIG_SECRET)
    hook = table.check("hook", list, "an argv list", values.argv) or ()
    timeout = partial(values.seconds, low=1, high=86400)
    settings = DnsSettings(
        method=method, server=table.check("server", str, "IP[:PORT]", values.dns_server),
        tsig_key_name=table.get("tsig_key_name", str, "a string"),
        tsig_algorithm=table.check("tsig_algorithm", str, "a string", values.tsig_algorithm)
        or "hmac-sha256",
        tsig_secret=tsig,
        nameservers=tuple(table.check("nameservers", list, "a list of IP[:PORT]",
                                      lambda v: [values.dns_server(x) for x in v]) or ()),
        ns_port=table.check("ns_port", int, "a port", values.int_range("ns_port", 1, 65535)) or 53,
        propagation_timeout=_number(table, "propagation_timeout", 120.0, timeout),
        hook=tuple(hook),
        hook_timeout=_number(table, "hook_timeout", 60.0, timeout),
        hook_delay=_number(table, "hook_delay", 0.0, partial(values.seconds, low=0,
                                                             high=86400)),
    )
    present = bool(table.data)
    table.finish()
    if not present:
        return None
    if method == "rfc2136" and not (settings.server and settings.tsig_key_name and tsig):
        table.problems.add(table.where(), "[dns] rfc2136 needs server, tsig_key_name and a "
                           "TSIG secret (tsig_secret_file or CERTFLEET_TSIG_SECRET)")
    if method == "hook" and not hook:
        table.problems.add(table.where(), "[dns] method = \"hook\" needs hook = [argv]")
    return settings


def _number(table: Table, key: str, default: float,
            check: Callable[..., Callable[[Any], float]]) -> float:
    value = table.check(key, (int, float), "a number of seconds", check(key))
    return default if value is None else value


def host(table: Table) -> dict[str, Any]:
    """The fields a ``[hosts."NAME"]`` table sets (unset ones come from ``[hosts.default]``)."""
    octal = "an octal string like \"0644\""
    fields: dict[str, Any] = {
        "user": table.check("user", str, "a string", values.check_user),
        "port": table.check("port", int, "an integer", values.int_range("port", 1, 65535)),
        "identity": named(table, "identity", named_files.IDENTITY),
        "reload": table.check("reload", (list, str), "a list (argv)", values.check_reload),
        "owner": table.check("owner", (str, int), "a name or a number",
                             lambda v: values.check_account(v, "owner")),
        "group": table.check("group", (str, int), "a name or a number",
                             lambda v: values.check_account(v, "group")),
    }
    for key in ("mode", "key_mode", "dir_mode"):
        raw = table.index.raw.get((*table.path, key), "")
        fields[key] = table.check(key, (str, int), octal,
                                  partial(values.check_mode, key, raw=raw))
    for key in ("trust_target_dir", "allow_group_writable"):
        fields[key] = table.get(key, bool, "true or false")
    fields["files"] = table.check("files", dict, "a table", values.check_files)
    fields["probe"] = table.check("probe", dict, "a table", values.check_probe)
    table.finish()
    return {key: value for key, value in fields.items() if value is not None}


def hosts(table: Table) -> dict[str, HostSettings]:
    own = {key.lower(): host(table.table(key, generic="NAME")) for key in list(table.data)}
    if len(own) < len(table.data):
        table.problems.add(table.where(), "[hosts] names one host twice (host names are the "
                           "same in any case)")
    table.finish()
    default = own.get("default", {})
    return {key: HostSettings(**{**default, **fields}) for key, fields in own.items()}


def _key_types(value: str | list[Any]) -> tuple[KeyType, ...]:
    raw = [value] if isinstance(value, str) else value
    if not raw or not all(isinstance(v, str) for v in raw):
        raise ConfigError("key_type must be a key type or a non-empty list of them")
    types = tuple(KeyType.parse(v) for v in raw)
    if len(set(types)) != len(types):
        raise ConfigError("key_type lists a key type twice")
    return types


def cert_settings(table: Table, base: CertDefaults) -> CertDefaults:
    """``[defaults]`` or one ``[certs."NAME"]``: what differs from ``base``."""
    types = table.check("key_type", (str, list), "a key type or a list of them", _key_types)
    challenge = table.check("challenge", str, "a string", values.challenge)
    reuse_key = table.get("reuse_key", bool, "true or false")
    profile = table.check("profile", str, "a string", values.profile)
    chain = table.check("preferred_chain", str, "a string", values.chain_name)
    ca = table.check("ca", str, "a directory URL or preset name", values.directory)
    fallback = table.check("fallback", list, "a list of directory URLs or presets",
                           values.fallback)
    table.finish()
    return CertDefaults(key_type=base.key_type if types is None else types[0],
                        challenge=base.challenge if challenge is None else challenge,
                        reuse_key=base.reuse_key if reuse_key is None else reuse_key,
                        profile=base.profile if profile is None else profile,
                        preferred_chain=base.preferred_chain if chain is None else chain,
                        more_key_types=base.more_key_types if types is None else types[1:],
                        ca=base.ca if ca is None else ca,
                        fallback=base.fallback if fallback is None else fallback)


def certs(table: Table, default: CertDefaults) -> dict[str, tuple[CertDefaults, str]]:
    """``[certs."NAME"]`` sections by normalized name: their settings and where they are."""
    out: dict[str, tuple[CertDefaults, str]] = {}
    for key in list(table.data):
        sub = table.table(key, generic="NAME")  # reports a value that is not a table
        if not isinstance(table.data.get(key), dict):
            continue
        settings = cert_settings(sub, default)
        name = checked(table.problems, table.where(key), normalize_identifier, key)
        if name in out:
            table.problems.add(table.where(key), f"[certs.\"{name}\"] given twice")
        elif name is not None:
            out[name] = (settings, table.where(key))
    table.finish()
    return out


def ca(table: Table, put: Callable[..., None], job: dict[str, Any],
       problems: Problems) -> None:
    """``[ca]``: the directory, its trust, the account and its external binding."""
    put(table, "directory", table.check("directory", str, "a string", values.directory))
    put(table, "ca_bundle", table.path_of("ca_bundle"))
    put(table, "allow_http", table.get("allow_http", bool, "true or false"))
    put(table, "contact", table.check("contact", (list, str), "a list of addresses",
                                      values.contact))
    put(table, "account_key_type", table.check("account_key_type", str, "a string",
                                               KeyType.parse))
    put(table, "fallback", table.check("fallback", list, "a list of directory URLs or presets",
                                       values.fallback))
    put(table, "max_clock_skew", table.check("max_clock_skew", (int, float), "seconds",
                                             values.seconds("max_clock_skew", 0, 86400)))
    put(table, "request_rate", table.check("request_rate", (int, float),
                                           "requests per second",
                                           values.per_second("request_rate", 0.1, 10_000)))
    put(table, "new_order_limit", table.check("new_order_limit", int, "an integer",
                                              values.int_range("new_order_limit", 1,
                                                               10_000_000)))
    put(table, "new_order_window", table.check("new_order_window", (int, float), "seconds",
                                               values.seconds("new_order_window", 60,
                                                              30 * 86400)))
    put(table, "eab_kid", table.check("eab_kid", str, "a string", values.eab_kid))
    key = secret(table, "eab_hmac_key_file", "eab_hmac_key", None)
    put(table, "eab_hmac_key", checked(problems, table.where("eab_hmac_key"),
                                       values.eab_hmac_key, key) if key else None)
    put(table, "eab_alg", table.check("eab_alg", str, "a string", values.eab_alg))
    if ("eab_kid" in job) != ("eab_hmac_key" in job):
        problems.add(table.where(), "[ca] eab_kid and eab_hmac_key go together")


def notify(table: Table) -> NotifySettings:
    """``[notify]``: the hook and the mail that hear of a run, and the expiry alarm."""
    events = partial(values.events, allowed=NOTIFY_EVENTS)
    mail = table.check("mail", str, "\"sendmail\" or \"smtp\"", values.mail_method)
    settings = NotifySettings(
        hook=tuple(table.check("hook", list, "an argv list", values.argv) or ()),
        hook_events=table.check("hook_events", list, "a list of events", events)
        or QUIET_EVENTS,
        hook_timeout=_number(table, "hook_timeout", 60.0,
                             partial(values.seconds, low=1, high=3600)),
        mail=mail,
        mail_events=table.check("mail_events", list, "a list of events", events)
        or QUIET_EVENTS,
        mail_to=tuple(table.check("mail_to", (list, str), "a list of addresses",
                                  partial(values.contact, key="mail_to")) or ()),
        mail_from=table.check("mail_from", str, "an address",
                              lambda v: values.contact(v, "mail_from")[0]),
        mail_timeout=_number(table, "mail_timeout", 30.0,
                             partial(values.seconds, low=1, high=600)),
        sendmail=tuple(table.check("sendmail", list, "an argv list",
                                   partial(values.argv, key="sendmail"))
                       or ("/usr/sbin/sendmail",)),
        smtp_server=table.check("smtp_server", str, "HOST:PORT",
                                partial(values.listen, key="smtp_server")) or "127.0.0.1:25",
        smtp_starttls=table.get("smtp_starttls", bool, "true or false") is not False,
        smtp_user=table.check("smtp_user", str, "a user name",
                              partial(values.printable, key="smtp_user")),
        smtp_password=secret(table, "smtp_password_file", "smtp_password",
                             "CERTFLEET_SMTP_PASSWORD"),
        smtp_ca_bundle=named(table, "smtp_ca_bundle", named_files.TLS_ROOTS,
                             missing_ok=False),
        expiry_alarm=table.check("expiry_alarm", (int, float), "a share of the lifetime",
                                 partial(values.fraction, key="expiry_alarm")) or 0.1,
    )
    present = bool(table.data)
    table.finish()
    if present and mail is not None and not settings.mail_to:
        table.problems.add(table.where("mail"), "mail needs mail_to = [addresses]")
    if settings.smtp_user and not settings.smtp_password and mail == "smtp":
        table.problems.add(table.where("smtp_user"), "smtp_user needs smtp_password_file "
                           "(or CERTFLEET_SMTP_PASSWORD)")
    return settings


def lb(table: Table) -> LoadBalancers:
    """``[lb]``: the load balancers that proxy http-01 to the Work host."""
    return LoadBalancers(
        addresses=table.check("addresses", list, "a list of addresses",
                              values.lb_addresses) or (),
        port=table.check("port", int, "a port number", values.int_range("port", 1, 65535))
        or 80,
        preflight=table.get("preflight", bool, "true or false") is not False,
    )


def ssh_paths(table: Table, base: Path, put: Callable[..., None]) -> None:
    """``[ssh]``: the ssh_config files and the known_hosts file deploys trust."""
    configs = table.check("config", (list, str), "a list of paths",
                          lambda value: values.paths(value, base))
    for path in configs or ():
        refused(table, "config", path, named_files.SSH_CONFIG)
    put(table, "config", configs, "ssh_config")
    put(table, "known_hosts", named(table, "known_hosts", named_files.KNOWN_HOSTS))


def named(table: Table, key: str, kind: str, *, missing_ok: bool = True) -> Path | None:
    """The path ``key`` names, for another reader to open as ``kind`` (``named_files``)."""
    path = table.path_of(key)
    if path is not None:
        refused(table, key, path, kind, missing_ok=missing_ok)
    return path


def refused(table: Table, key: str, path: Path, kind: str, *, missing_ok: bool = True) -> None:
    """Report, at ``key``'s line, why ``path`` must not be read as ``kind``. ``missing_ok``:
    a file not there (yet) is the SSH deploy's to refuse, which checks again before use."""
    for reason in named_files.refusals(path, kind, missing_ok=missing_ok):
        table.problems.add(table.where(key), reason)
