"""Read OpenBSD acme-client's files as the seed's crt-update.sh leaves them. Reads only.

The seed runs, for each first name of its domains file::

    acme-client -bnN -k ${SSL}/$i/privkey.pem -f ${SSL}/privkey.pem -C ${CHALLENGE}/$i \\
                -c ${SSL}/$i $i

so the account key is one PEM file (``-f``, RSA), and each certificate has a directory
``${SSL}/<domain>/`` with ``cert.pem``, ``chain.pem``, ``fullchain.pem`` and its key
``privkey.pem``. The domains file (``domain|server:dir server:dir``) is certfleet's own
format: it is checked with certfleet's parser and its lines are kept as they are.
"""

from __future__ import annotations

from pathlib import Path

from ..account_key import AccountKey
from ..config.domains import MAX_FILE, scan_domains
from ..config.problems import Problems
from ..errors import CertfleetError, ConfigError
from ..spec import CertDefaults
from . import source
from .found import FoundAccount, FoundCert, Migration, Settings, checked, read_four


def gather(domains_file: Path, ssl_dir: Path, account_key: Path,
           settings: Settings) -> Migration:
    """Everything to import from the seed's layout; ``ConfigError`` if the domains file or
    the account key cannot be used (then nothing is imported)."""
    text = source.read(domains_file, MAX_FILE)
    problems = Problems()
    specs, _ = scan_domains(text, str(domains_file), default=CertDefaults(), certs={},
                            problems=problems)
    problems.raise_if_any()  # the file is kept as it is: certfleet must be able to read it
    migration = Migration("acme-client", source.shown(ssl_dir), settings)
    migration.domain_lines = text.decode("utf-8-sig").splitlines()
    migration.accounts.append(_account(account_key, settings.directory))
    names = source.entries(ssl_dir)
    used: set[str] = set()
    for spec in specs:
        folder = _folder(ssl_dir, spec.name, names)
        if folder is None:
            migration.refuse(spec.name, f"{source.shown(ssl_dir / spec.name)}: missing")
            continue
        used.add(folder.name)
        found = _cert(folder, spec.names, settings.directory)
        if isinstance(found, str):
            migration.refuse(spec.name, found)
            continue
        migration.certs.append(found)
        settings.certs.setdefault(found.name, {})["key_type"] = found.key_type.value
    if migration.refused:
        migration.notes.append("a certificate not imported keeps its line in the domains "
                               "file: the next `certfleet run` orders it anew")
    for name in names:
        if name not in used and source.is_dir(ssl_dir / name):
            migration.notes.append(f"{source.shown(ssl_dir / name)}: not in "
                                   f"{source.shown(domains_file)}; left out")
    if any(spec.targets for spec in specs):
        settings.comments.append("The first `certfleet run` copies each certificate to every "
                                 "target of its line (no deployment was recorded), into "
                                 "DIR/<name>/; give the target hosts [hosts.\"HOST\"] user "
                                 "and reload (certfleet.toml(5), HOSTS).")
    if not specs:
        migration.notes.append(f"{source.shown(domains_file)}: no certificates listed")
    return migration


def _account(path: Path, directory: str) -> FoundAccount:
    try:
        key = AccountKey.from_pem(source.read(path), source.shown(path))
    except ConfigError as exc:
        raise ConfigError(f"account key {exc}") from None
    return FoundAccount(directory, key, source.shown(path))


def _folder(ssl_dir: Path, name: str, names: list[str]) -> Path | None:
    """``${SSL}/<name>``: the name as certfleet writes it, else as crt-update.sh was given
    it (another case, a trailing dot)."""
    if name in names:
        return ssl_dir / name
    for entry in names:
        if entry.lower().rstrip(".") == name:
            return ssl_dir / entry
    return None


def _cert(folder: Path, names: tuple[str, ...], directory: str) -> FoundCert | str:
    try:
        pems = read_four(folder)
    except CertfleetError as exc:
        return str(exc)
    return checked(source.shown(folder), pems, directory, names)
