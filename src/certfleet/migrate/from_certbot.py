"""Read certbot's configuration directory (``/etc/letsencrypt``). Reads only.

A lineage is what certbot renews: ``renewal/<lineage>.conf`` names it, ``live/<lineage>/``
holds links to its current files in ``archive/<lineage>/``, and its ``[renewalparams]``
give the CA (``server``), the account (``account``, a directory under
``accounts/<server host and path>/``) and how it was validated. The account's key is a JWK
in ``private_key.json``; ``regr.json`` has the account URL certbot knew.

A lineage's certfleet name is its certificate's first name (its common name if it has
one, else its first subjectAltName): ``example.com-0001`` is ``example.com``. When two
lineages share a name, the one with the newer certificate is imported and the other is
left out (said, not an error: certbot makes ``-0001`` lineages when names change).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from ..account_key import AccountKey
from ..config import values
from ..config.defaults import LETSENCRYPT
from ..errors import CertfleetError, ConfigError, safe_text
from . import certbot_map, renewal_conf, source
from .certbot_map import Lineage
from .found import FoundAccount, Migration, Settings, checked, read_four

# Let's Encrypt's ACME v1 directories, still named in old renewal configurations.
ACME_V1 = {"https://acme-v01.api.letsencrypt.org/directory": LETSENCRYPT,
           "https://acme-staging.api.letsencrypt.org/directory":
               "https://acme-staging-v02.api.letsencrypt.org/directory"}
CONF_LIMIT = 64 * 1024
JSON_LIMIT = 64 * 1024
MAX_DEPTH = 8


def gather(config_dir: Path, settings: Settings, allow_http: bool = False) -> Migration:
    """Everything to import from ``config_dir``; ``ConfigError`` if there is no certbot
    configuration there, or if an account cannot be read (then nothing is imported)."""
    migration = Migration("certbot", source.shown(config_dir), settings)
    renewal = config_dir / "renewal"
    found: list[Lineage] = []
    for entry in source.entries(renewal):
        if entry.endswith(".conf"):
            lineage = _lineage(migration, config_dir, entry.removesuffix(".conf"), allow_http)
            if lineage is not None:
                found.append(lineage)
    lineages = _newest_per_name(migration, found)
    if lineages:
        servers = Counter(lineage.cert.directory for lineage in lineages)
        settings.directory = max(servers, key=lambda url: (servers[url], url == LETSENCRYPT))
    for lineage in lineages:
        migration.certs.append(lineage.cert)
        migration.domain_lines.append(" ".join(lineage.cert.names))
    migration.accounts = _accounts(migration, config_dir, lineages)
    certbot_map.apply(migration, lineages, config_dir)
    return migration


def _lineage(migration: Migration, config_dir: Path, name: str,
             allow_http: bool) -> Lineage | None:
    """One lineage, checked; or None, with a line saying why it is not imported."""
    label = f"lineage {safe_text(name, 100)}"
    try:
        if "/" in name or name.startswith("."):
            raise ConfigError(f"{source.shown(name)}: not a lineage name")
        conf_path = config_dir / "renewal" / f"{name}.conf"
        conf = renewal_conf.parse(source.read(conf_path, CONF_LIMIT), source.shown(conf_path))
        server = _server(conf.param("server") or LETSENCRYPT, conf_path, allow_http)
        pems = read_four(config_dir / "live" / name)
    except CertfleetError as exc:
        migration.refuse(label, str(exc))
        return None
    cert = checked(source.shown(config_dir / "live" / name), pems, server)
    if isinstance(cert, str):
        migration.refuse(label, cert)
        return None
    return Lineage(name, conf, cert)


def _server(url: str, conf_path: Path, allow_http: bool) -> str:
    url = ACME_V1.get(url.rstrip("/"), url)  # certbot renews these with ACME v2 as well
    try:
        url = values.directory(url)
    except ConfigError as exc:
        raise ConfigError(f"{source.shown(conf_path)}: server: {exc}") from None
    if urlsplit(url).scheme != "https" and not allow_http:
        raise ConfigError(f"{source.shown(conf_path)}: server {safe_text(url)} is plain "
                          "http (allowed only with --insecure-http, for test servers)")
    return url


def _newest_per_name(migration: Migration, lineages: list[Lineage]) -> list[Lineage]:
    """Lineages whose names no newer lineage has: a name is one certificate's in
    certfleet (the domains file allows it on one line only)."""
    taken: dict[str, Lineage] = {}
    kept = []
    for lineage in sorted(lineages, key=lambda li: li.cert.bundle.not_before, reverse=True):
        holder = next((taken[n] for n in lineage.cert.names if n in taken), None)
        if holder is not None:
            shared = next(n for n in lineage.cert.names if n in taken)
            migration.notes.append(f"lineage {lineage.name}: left out: its name {shared} "
                                   f"is lineage {holder.name}'s too, whose certificate is "
                                   "newer")
            continue
        taken.update(dict.fromkeys(lineage.cert.names, lineage))
        kept.append(lineage)
    return sorted(kept, key=lambda li: li.cert.name)


def _accounts(migration: Migration, config_dir: Path,
              lineages: list[Lineage]) -> list[FoundAccount]:
    """One account per CA: the one most of its lineages use. ``ConfigError`` if it cannot
    be read: an import without its account would be an import certfleet cannot renew."""
    per_server: dict[str, Counter[str]] = {}
    for lineage in lineages:
        account = lineage.conf.param("account")
        if not account or not all(c.isalnum() for c in account) or len(account) > 64:
            raise ConfigError(f"{source.shown(config_dir / 'renewal' / lineage.name)}.conf: "
                              "no usable account id")
        per_server.setdefault(lineage.cert.directory, Counter())[account] += 1
    found = []
    for server, ids in sorted(per_server.items()):
        account = max(ids, key=lambda a: (ids[a], a))
        for other in sorted(set(ids) - {account}):
            migration.notes.append(f"account {other} at {safe_text(server)}: not imported; "
                                   f"certfleet keeps one account per CA ({account})")
        found.append(_account(config_dir, server, account))
    return found


def _account(config_dir: Path, server: str, account: str) -> FoundAccount:
    folder = _account_dir(config_dir, server, account)
    where = folder / "private_key.json"
    jwk = _json(where)
    key = AccountKey.from_jwk(jwk, f"account key {source.shown(where)}")
    url = None
    if (folder / "regr.json").exists():
        uri = _json(folder / "regr.json").get("uri")
        url = uri if isinstance(uri, str) and uri.isprintable() else None
    return FoundAccount(server, key, source.shown(where), url)


def _account_dir(config_dir: Path, server: str, account: str) -> Path:
    """Where certbot keeps the account: ``accounts/<host[:port]><path>/<id>``, else
    wherever under ``accounts/`` a directory of that id holds a key (certbot links
    Let's Encrypt's v02 accounts to v01 directories)."""
    parts = urlsplit(server)
    expected = config_dir / "accounts" / (parts.netloc + parts.path).strip("/") / account
    if (expected / "private_key.json").exists():
        return expected
    accounts = config_dir / "accounts"
    for folder, dirs, _ in os.walk(accounts):
        depth = len(Path(folder).relative_to(accounts).parts)
        if depth >= MAX_DEPTH:
            dirs.clear()
        if Path(folder).name == account and (Path(folder) / "private_key.json").exists():
            return Path(folder)
    raise ConfigError(f"{source.shown(expected)}: missing (account {account} of "
                      f"{safe_text(server)})")


def _json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(source.read(path, JSON_LIMIT))
    except (ValueError, RecursionError):
        raise ConfigError(f"{source.shown(path)}: not JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source.shown(path)}: not a JSON object")
    return data
