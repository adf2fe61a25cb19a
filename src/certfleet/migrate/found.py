"""What an import found, as values: verified certificates, account keys, refusals and
notes, and the settings the new certfleet.toml will hold. Touches nothing.

A certificate is taken only after the checks certfleet makes of what a CA sends (the key
is the certificate's, each certificate is signed by the next one, the names are the ones
wanted) and ``fullchain.pem`` is ``cert.pem`` followed by ``chain.pem``; its files are then
written again as certfleet writes them (PEM as ``cryptography`` writes it, the key as
PKCS#8), so the state directory holds nothing certfleet would not have written itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.x509.oid import NameOID

from .. import certs, keytypes
from ..account_key import AccountKey
from ..certs import Bundle
from ..errors import CertfleetError, ConfigError
from ..issuance import MAX_ISSUER
from ..keytypes import KeyType
from ..names import normalize_identifier
from ..protocol.frozen import frozen
from ..store import PEM_FILES, VersionMeta
from . import source

Reader = Callable[[Path], bytes]


@frozen
class FoundCert:
    """One certificate to import, checked, with its files as certfleet writes them."""

    name: str                       # certfleet's name for it: its first name
    names: tuple[str, ...]          # the first name, then the others
    origin: str                     # where it was found, for the lines printed
    key_type: KeyType
    bundle: Bundle
    files: dict[str, bytes] = field(repr=False)
    directory: str                  # the CA that issued it (its directory URL)

    def meta(self) -> VersionMeta:
        """``meta.json`` of version 1, from the certificate itself; ``issued_at`` is its
        notBefore, and there is no order (it was not certfleet's)."""
        bundle = self.bundle
        return VersionMeta(
            version=1, names=self.names, key_type=self.key_type.value, serial=bundle.serial,
            not_before=bundle.not_before.isoformat(), not_after=bundle.not_after.isoformat(),
            issuer=bundle.issuer[:MAX_ISSUER], aki=bundle.aki.hex() if bundle.aki else "",
            issued_at=bundle.not_before.isoformat(), directory=self.directory, order_url="",
        )

    def describe(self) -> str:
        return (f"{self.key_type.value}, serial {self.bundle.serial:x}, expires "
                f"{self.bundle.not_after:%Y-%m-%d}")


@frozen
class FoundAccount:
    """An account key brought from the other client, for one CA."""

    directory: str
    key: AccountKey
    origin: str                     # the file it came from
    url: str | None = None          # the account URL the other client recorded, if any


@dataclass
class Settings:
    """What the new certfleet.toml says besides the domains file."""

    directory: str
    state_dir: Path
    ca_bundle: Path | None = None
    allow_http: bool = False
    contact: list[str] = field(default_factory=list)
    challenge: dict[str, str] = field(default_factory=dict)   # [challenge] keys
    certs: dict[str, dict[str, Any]] = field(default_factory=dict)  # [certs."NAME"] keys
    comments: list[str] = field(default_factory=list)         # at the top of the file
    cert_comments: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Migration:
    """Everything one import would do; ``carry`` does it."""

    kind: str                                   # "acme-client" or "certbot"
    origin: str                                 # the tree it reads
    settings: Settings
    accounts: list[FoundAccount] = field(default_factory=list)
    certs: list[FoundCert] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)   # "NAME: refused: why", one each
    notes: list[str] = field(default_factory=list)     # mapping notes and suggestions
    domain_lines: list[str] = field(default_factory=list)  # the domains file, as text lines

    def refuse(self, name: str, reason: str) -> None:
        self.refused.append(f"{name}: not imported: {reason}")


def read_four(directory: Path, read: Reader = source.read) -> dict[str, bytes]:
    """``cert.pem``, ``chain.pem``, ``fullchain.pem`` and ``privkey.pem`` of a directory;
    ``ConfigError`` naming the first that cannot be read."""
    return {pem: read(directory / pem) for pem in PEM_FILES}


def verify(where: str, pems: dict[str, bytes], directory: str,
           want: Sequence[str] | None = None) -> FoundCert:
    """Check one certificate's four files; ``CertfleetError`` (one line) if they do not
    belong together. ``want``: the names it must have, first name first (the domains file's
    line); without it the certificate's own names, its subject's common name first if it
    is one of them (certbot's order)."""
    key = keytypes.load_pem(pems["privkey.pem"], f"{where}/privkey.pem")
    key_type = keytypes.key_type_of(key)
    bundle = certs.verify_kept(pems["cert.pem"], pems["chain.pem"], pems["fullchain.pem"],
                               key.public_key(), where)
    try:
        have = [normalize_identifier(n) for n in bundle.names]
    except ConfigError as exc:
        raise ConfigError(f"{where}/cert.pem: a name certfleet cannot keep: {exc}") from None
    if want is not None:
        if sorted(set(want)) != sorted(set(have)):
            raise ConfigError(f"{where}/cert.pem: names {' '.join(sorted(have))} are not the "
                              f"domains file's {' '.join(want)}")
        names = tuple(want)
    else:
        first = _common_name(pems["cert.pem"], where)
        first = first if first in have else have[0]
        names = (first, *(n for n in have if n != first))
    files = {"cert.pem": bundle.cert_pem, "chain.pem": bundle.chain_pem,
             "fullchain.pem": bundle.fullchain_pem, "privkey.pem": keytypes.to_pem(key)}
    return FoundCert(names[0], names, where, key_type, bundle, files, directory)


def _common_name(cert_pem: bytes, where: str) -> str | None:
    leaf = certs.load_leaf(cert_pem, where)
    found = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not found:
        return None
    try:
        return normalize_identifier(str(found[0].value))
    except ConfigError:
        return None


def checked(where: str, pems: dict[str, bytes], directory: str,
            want: Sequence[str] | None = None) -> FoundCert | str:
    """``verify``, or the one-line reason it failed."""
    try:
        return verify(where, pems, directory, want)
    except CertfleetError as exc:
        return str(exc)
