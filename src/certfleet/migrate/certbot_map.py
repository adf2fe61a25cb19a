"""What each certbot lineage's ``[renewalparams]`` means in certfleet.toml. Touches nothing.

Mapped: the key type (the key's own; the renewal configuration's wish is a note), the
authenticator (``webroot`` with ``webroot_path`` and ``[[webroot_map]]``, ``standalone``
with ``http01_address``/``http01_port``; a DNS plugin as ``challenge = "dns-01"``),
``reuse_key``, ``preferred_chain``, ``preferred_profile``/``required_profile``. Hooks are
shown as suggestions, never run and never copied as commands. Everything else that changes
what certbot does is named as not carried over.
"""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path

from ..keytypes import KeyType
from ..names import is_ip
from ..protocol.frozen import frozen
from . import source
from .found import FoundCert, Migration
from .render import toml_value
from .renewal_conf import RenewalConf

ACME_CHALLENGE = ".well-known/acme-challenge"
HOOKS = (("pre_hook", "pre hook (before every renewal)"),
         ("post_hook", "post hook (after every renewal)"),
         ("renew_hook", "deploy hook (after this lineage was renewed)"),
         ("deploy_hook", "deploy hook (after this lineage was renewed)"))
_CURVES = {"secp256r1": KeyType.EC256, "prime256v1": KeyType.EC256,
           "secp384r1": KeyType.EC384}
_SHELL = set(";|&$`<>(){}*?!~\\\"'\n")
_FALSE = ("false", "no", "off", "0")
MAX_ARGV = 32
ALL_ADDRESSES = "0.0.0.0"  # noqa: S104 - certbot standalone listens on all


@frozen
class Lineage:
    """One certbot lineage whose certificate was found good."""

    name: str                   # the lineage's name: renewal/<name>.conf
    conf: RenewalConf
    cert: FoundCert


def wanted_key_type(conf: RenewalConf) -> KeyType | str:
    """The key type certbot would make at the next renewal, or why it has none here."""
    kind = (conf.param("key_type") or "ecdsa").lower()  # certbot's default since 2.0
    if kind == "rsa":
        bits = conf.param("rsa_key_size") or "2048"
        return {"2048": KeyType.RSA2048, "3072": KeyType.RSA3072,
                "4096": KeyType.RSA4096}.get(bits, f"RSA {bits} bits")
    if kind == "ecdsa":
        curve = (conf.param("elliptic_curve") or "secp256r1").lower()
        return _CURVES.get(curve, f"ECDSA {curve}")
    return f"key type {kind}"


def apply(migration: Migration, lineages: list[Lineage], config_dir: Path) -> None:
    """Fill the settings and notes of ``migration`` from the lineages being imported."""
    http: Counter[tuple[str, str]] = Counter()
    wants: dict[str, tuple[str, str]] = {}
    for lineage in lineages:
        how = _per_cert(migration, lineage)
        if how is not None:
            http[how] += 1
            wants[lineage.cert.name] = how
    if http:
        (key, value), _ = max(http.items(), key=lambda item: (item[1], item[0]))
        migration.settings.challenge[key] = value
        for name, how in sorted(wants.items()):
            if how != (key, value):
                _cannot(migration, name, f"certbot answered http-01 with {how[0]} {how[1]}; "
                        f"certfleet answers every certificate one way: {key} = {value}")
    _hook_dirs(migration, config_dir)


def _per_cert(migration: Migration, lineage: Lineage) -> tuple[str, str] | None:
    """The certificate's settings and notes; its http-01 way, if it has one."""
    conf, cert = lineage.conf, lineage.cert
    name = cert.name
    settings = migration.settings.certs.setdefault(name, {})
    settings["key_type"] = cert.key_type.value
    wanted = wanted_key_type(conf)
    if wanted != cert.key_type:
        shown = wanted.value if isinstance(wanted, KeyType) else wanted
        _note(migration, name, f"the renewal configuration asks for {shown}; certfleet keeps "
              f"the key's own type, {cert.key_type.value} (changing key_type renews at once)")
    if (conf.param("reuse_key") or "").lower() in ("true", "yes", "on", "1"):
        settings["reuse_key"] = True
    if chain := conf.param("preferred_chain"):
        settings["preferred_chain"] = chain
    if profile := conf.param("required_profile") or conf.param("preferred_profile"):
        settings["profile"] = profile
    if cert.directory != migration.settings.directory:
        settings["ca"] = cert.directory
    for key, what in (("must_staple", "must-staple"), ("allow_subset_of_names",
                                                       "allow_subset_of_names")):
        if (conf.param(key) or "").lower() in ("true", "yes", "on", "1"):
            _cannot(migration, name, f"{what} is not carried over")
    if (conf.param("autorenew") or "").lower() in _FALSE:
        _note(migration, name, "certbot did not renew it (autorenew = False); certfleet "
              "renews every certificate in the domains file")
    if (installer := conf.param("installer")) and installer != "None":
        _cannot(migration, name, f"installer {installer}: certfleet edits no web server "
                "configuration; it copies the files to the line's targets and runs the "
                "host's reload")
    _hooks(migration, lineage)
    return _challenge(migration, lineage, settings)


def _challenge(migration: Migration, lineage: Lineage,
               settings: dict[str, object]) -> tuple[str, str] | None:
    conf, name = lineage.conf, lineage.cert.name
    authenticator = conf.param("authenticator") or "standalone"
    preferred = [c.strip().lower() for c in conf.param_list("pref_challs")]
    wildcard = any(n.startswith("*.") for n in lineage.cert.names)
    if authenticator.startswith("dns") or wildcard or preferred[:1] == ["dns-01"]:
        settings["challenge"] = "dns-01"
        _cannot(migration, name, f"authenticator {authenticator}: dns-01 needs a [dns] "
                "section (rfc2136 or hook); certbot's DNS plugin and its credentials are "
                "not carried over")
        return None
    if authenticator == "webroot":
        return _webroot(migration, lineage)
    if authenticator == "standalone":
        address = conf.param("http01_address") or ALL_ADDRESSES  # certbot's default
        address = f"[{address}]" if ":" in address and is_ip(address) else address
        return "http_listen", f"{address}:{conf.param('http01_port') or 80}"
    _cannot(migration, name, f"authenticator {authenticator} is not carried over: give "
            "certfleet a webroot or http_listen (certfleet.toml(5), [challenge])")
    return None


def _webroot(migration: Migration, lineage: Lineage) -> tuple[str, str] | None:
    """certbot's webroot is the document root (it writes into .well-known/acme-challenge/
    below it); certfleet's is the directory the tokens go in."""
    conf = lineage.conf
    paths = conf.param_list("webroot_path")
    roots = {conf.webroot_map.get(n) or (paths[-1] if paths else None)
             for n in lineage.cert.names}
    roots.discard(None)
    if not roots:
        _cannot(migration, lineage.cert.name, "webroot without a webroot_path")
        return None
    chosen = sorted(str(r) for r in roots)[0]
    if len(roots) > 1:
        _cannot(migration, lineage.cert.name, "its names had different webroots ("
                + ", ".join(sorted(str(r) for r in roots)) + f"); certfleet has one: {chosen}")
    return "webroot", str(Path(chosen) / ACME_CHALLENGE)


def _hooks(migration: Migration, lineage: Lineage) -> None:
    for key, what in HOOKS:
        command = lineage.conf.param(key)
        if command:
            _note(migration, lineage.cert.name, f"certbot's {what}: {command}")
            _note(migration, lineage.cert.name, "  never run by certfleet; " + suggestion(
                command))


def suggestion(command: str) -> str:
    """How a certbot hook might be said in certfleet: a host's ``reload`` argv."""
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = []
    if not argv or len(argv) > MAX_ARGV or any(ch in _SHELL for word in argv for ch in word):
        return ("certfleet runs no shell: put the command in a script and name it in "
                "[hosts.\"HOST\"] reload = [\"/path/to/script\"]")
    return (f"as certfleet: give the line targets in the domains file, and their host "
            f"reload = {toml_value(argv)}")


def _hook_dirs(migration: Migration, config_dir: Path) -> None:
    """certbot's ``renewal-hooks/{pre,deploy,post}/`` scripts run for every lineage."""
    folder = config_dir / "renewal-hooks"
    for kind in ("pre", "deploy", "post"):
        where = folder / kind
        if not source.is_dir(where):
            continue
        for entry in source.entries(where):
            line = (f"certbot ran {source.shown(where / entry)} ({kind} hook, every lineage);"
                    " never run by certfleet: name it in a host's reload if it reloads a "
                    "server")
            migration.notes.append(line)
            migration.settings.comments.append(line)


def _note(migration: Migration, name: str, text: str) -> None:
    migration.notes.append(f"{name}: {text}")
    migration.settings.cert_comments.setdefault(name, []).append(text)


def _cannot(migration: Migration, name: str, text: str) -> None:
    _note(migration, name, f"not mapped: {text}")
