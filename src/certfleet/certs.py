"""Parse and verify what the CA issued before anything is stored. Touches nothing but the
clock (read unless the time is given).

Checks (RFC 8555 §7.4.2 leaves them to the client): the chain is PEM certificates only,
the leaf's public key is the CSR key, its names are exactly the names requested, each
certificate is signed by the next one the CA sent, the leaf is no CA and every certificate
after it is one (RFC 5280 §4.2.1.9, §4.2.1.3), and each is valid now, the leaf for long
enough to be worth activating (RFC 5280 §4.1.2.5).
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from .errors import CertificateError, safe_text
from .protocol.frozen import frozen

if TYPE_CHECKING:
    from .keytypes import PublicKey

MAX_CHAIN = 10
# A CA may backdate notBefore (Let's Encrypt does, by an hour), and its clock may also run a
# little ahead of this host's (clockcheck allows max_clock_skew, 5 minutes by default): a
# notBefore up to an hour in our future is put down to that. Further out, the certificate
# or a clock is wrong, and activating it would serve a certificate no client accepts yet.
CLOCK_ALLOWANCE = timedelta(hours=1)
# The shortest validity worth replacing a working certificate with. Let's Encrypt's
# short-lived certificates last about 6 days; a leaf valid for less than an hour (from its
# notBefore, or from now) would expire before a renewal could follow it.
MIN_LIFETIME = timedelta(hours=1)
_SHA256 = hashes.SHA256()
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----\r?\n?"
)


@frozen
class Bundle:
    """A verified certificate and its chain, in the PEM files nginx wants."""

    cert_pem: bytes
    chain_pem: bytes
    names: tuple[str, ...]
    serial: int
    not_before: datetime
    not_after: datetime
    issuer: str
    aki: bytes | None

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem


def split_pem_chain(data: bytes, where: str) -> list[x509.Certificate]:
    """Split ``application/pem-certificate-chain`` into certificates, leaf first."""
    text = data.replace(b"\r\n", b"\n").strip() + b"\n"
    blocks = list(_PEM_BLOCK.finditer(text))
    rest = _PEM_BLOCK.sub(b"", text).strip()
    if rest or not blocks:
        raise CertificateError(f"{where}: not a PEM certificate chain")
    if len(blocks) > MAX_CHAIN:
        raise CertificateError(f"{where}: chain of {len(blocks)} certificates is too long")
    certs = []
    for block in blocks:
        if block.group(1) != b"CERTIFICATE":
            raise CertificateError(f"{where}: chain holds a {block.group(1).decode()} block")
        try:
            certs.append(x509.load_pem_x509_certificate(block.group(0)))
        except (ValueError, x509.InvalidVersion) as exc:
            raise CertificateError(f"{where}: unreadable certificate: "
                                   f"{safe_text(str(exc))}") from None
    return certs


def cert_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and IP addresses in the subjectAltName, lowercased."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def _same_key(a: PublicKey, b: object) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    try:
        return bool(a.public_bytes(der, fmt) == b.public_bytes(der, fmt))  # type: ignore[attr-defined]
    except AttributeError:
        return False


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.key_identifier


def verify_issued(
    pem: bytes, public_key: PublicKey, names: Sequence[str], where: str,
    now: datetime | None = None,
) -> Bundle:
    """Check the chain the CA returned against the request and the time (``now``, the
    clock's unless given); return the ``Bundle`` to store."""
    return _checked(pem, public_key, names, where, now or datetime.now(UTC))


def _checked(pem: bytes, public_key: PublicKey, names: Sequence[str], where: str,
             now: datetime | None) -> Bundle:
    try:
        return _verify(pem, public_key, names, where, now)
    except CertificateError:
        raise
    except Exception as exc:
        # cryptography parses fields lazily, on access, and a hostile certificate can make
        # that raise ValueError, DuplicateExtension, UnsupportedGeneralNameType and more:
        # whatever it is, it is this certificate's fault, reported as such.
        raise CertificateError(f"{where}: malformed certificate: "
                               f"{safe_text(str(exc) or type(exc).__name__)}") from None


def _verify(pem: bytes, public_key: PublicKey, names: Sequence[str], where: str,
            now: datetime | None) -> Bundle:
    certs = split_pem_chain(pem, where)
    leaf = certs[0]
    if not _same_key(public_key, leaf.public_key()):
        raise CertificateError(f"{where}: certificate public key does not match the CSR key")
    got = sorted(set(cert_names(leaf)))
    want = sorted({_normal(n) for n in names})
    if got != want:
        raise CertificateError(f"{where}: certificate names {got} differ from requested {want}")
    for child, parent in itertools.pairwise(certs):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateError(
                f"{where}: chain does not verify: {child.subject.rfc4514_string()} is not "
                f"signed by {parent.subject.rfc4514_string()} ({exc or 'bad signature'})"
            ) from None
    if len(certs) == 1:
        raise CertificateError(f"{where}: the CA sent no issuer certificate")
    _check_roles(certs, where)
    if now is not None:
        _check_leaf_dates(leaf, where, now)
        for index, cert in enumerate(certs[1:], 1):
            _check_dates(cert, f"{where}: {_nth(index, cert)}", now)
    pem_of = [c.public_bytes(serialization.Encoding.PEM) for c in certs]
    return Bundle(
        cert_pem=pem_of[0],
        chain_pem=b"".join(pem_of[1:]),
        names=tuple(_normal(n) for n in names),
        serial=leaf.serial_number,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issuer=leaf.issuer.rfc4514_string(),
        aki=_aki(leaf),
    )


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _nth(index: int, cert: x509.Certificate) -> str:
    return f"the chain's certificate {index} ({safe_text(cert.subject.rfc4514_string())})"


def _check_roles(certs: Sequence[x509.Certificate], where: str) -> None:
    """RFC 5280 §4.2.1.9: a certificate signs others only if it says it is a CA, so the
    leaf must not (a server holding a CA's key could issue for any name) and each issuer
    must, with keyCertSign if it limits its key's use (§4.2.1.3), and no more CAs below it
    than its pathLenConstraint allows (self-issued ones do not count)."""
    leaf = _basic_constraints(certs[0])
    if leaf is not None and leaf.ca:
        raise CertificateError(f"{where}: the certificate is itself a CA certificate "
                               "(basicConstraints CA=true)")
    below = 0  # CA certificates between this one and the leaf
    for index, cert in enumerate(certs[1:], 1):
        constraints = _basic_constraints(cert)
        if constraints is None or not constraints.ca:
            raise CertificateError(f"{where}: {_nth(index, cert)} is not a CA "
                                   "(no basicConstraints CA=true)")
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.key_cert_sign:
            raise CertificateError(f"{where}: {_nth(index, cert)} may not sign "
                                   "certificates (keyUsage without keyCertSign)")
        limit = constraints.path_length
        if limit is not None and below > limit:
            raise CertificateError(f"{where}: {_nth(index, cert)} allows {limit} CA "
                                   f"certificates below it (pathLenConstraint), not {below}")
        if cert.subject != cert.issuer:
            below += 1


def _utc(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def _check_dates(cert: x509.Certificate, what: str, now: datetime) -> None:
    """Valid now, with ``CLOCK_ALLOWANCE`` for a notBefore ahead of our clock."""
    if cert.not_valid_before_utc > now + CLOCK_ALLOWANCE:
        raise CertificateError(f"{what} not valid until {_utc(cert.not_valid_before_utc)}: "
                               "the CA's clock or the certificate is wrong")
    if cert.not_valid_after_utc <= now:
        raise CertificateError(f"{what} expired at {_utc(cert.not_valid_after_utc)}")


def _check_leaf_dates(leaf: x509.Certificate, where: str, now: datetime) -> None:
    """Valid now, for at least ``MIN_LIFETIME`` in all and from now on."""
    _check_dates(leaf, f"{where}: certificate", now)
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if end - start < MIN_LIFETIME:
        raise CertificateError(f"{where}: certificate valid for only {end - start} "
                               f"({_utc(start)} to {_utc(end)}), less than {MIN_LIFETIME}")
    if end - now < MIN_LIFETIME:
        raise CertificateError(f"{where}: certificate expires at {_utc(end)}, in less "
                               f"than {MIN_LIFETIME}")


def verify_kept(cert_pem: bytes, chain_pem: bytes, fullchain_pem: bytes,
                public_key: PublicKey, where: str) -> Bundle:
    """Check the four files another client kept for one certificate (its ``cert.pem``,
    ``chain.pem``, ``fullchain.pem`` and the private key's public half) as ``verify_issued``
    checks what a CA sent: the key is the certificate's, each certificate is signed by the
    next and the CA flags are right, and ``fullchain.pem`` is ``cert.pem`` then
    ``chain.pem``. The names are the certificate's own (the caller compares them with what
    it wants); the dates are not checked."""
    try:
        leaf = split_pem_chain(cert_pem, f"{where}/cert.pem")
        chain = split_pem_chain(chain_pem, f"{where}/chain.pem")
        full = split_pem_chain(fullchain_pem, f"{where}/fullchain.pem")
        if len(leaf) != 1:
            raise CertificateError(f"{where}/cert.pem: {len(leaf)} certificates, not one")
        if not _same_key(public_key, leaf[0].public_key()):
            raise CertificateError(f"{where}: privkey.pem does not belong to cert.pem")
        if [c.fingerprint(_SHA256) for c in full] != \
                [c.fingerprint(_SHA256) for c in leaf + chain]:
            raise CertificateError(f"{where}/fullchain.pem: not cert.pem followed by "
                                   "chain.pem")
        names = cert_names(leaf[0])
        if not names:
            raise CertificateError(f"{where}/cert.pem: no DNS names or IP addresses")
    except CertificateError:
        raise
    except Exception as exc:  # lazily parsed fields: as in verify_issued
        raise CertificateError(f"{where}: malformed certificate: "
                               f"{safe_text(str(exc) or type(exc).__name__)}") from None
    # Not the dates: an expired certificate another client kept is imported, then renewed.
    return _checked(fullchain_pem, public_key, names, where, None)


def load_leaf(pem: bytes, where: str) -> x509.Certificate:
    """The first certificate of a stored PEM file."""
    return split_pem_chain(pem, where)[0]
