"""The only holder of the account key: load or create it, sign JWS with it, give out its JWK.

Touches the account key file and its siblings (``account.key.new`` while a key rollover is
in flight, ``account.key.old-<timestamp>`` after one) and nothing else. Other modules get
finished JWS objects and the public JWK/thumbprint, never the key, so signing could move to
another process. A certificate's own key, when it signs its revocation (RFC 8555 §7.6), is
held here the same way, for the one request.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from . import fsutil, keytypes
from .errors import ConfigError, StoreError
from .keytypes import KeyType
from .protocol import jws
from .protocol.b64 import b64url_decode, int_to_b64url

if TYPE_CHECKING:
    from .keytypes import PrivateKey, PublicKey

_EC = {KeyType.EC256: ("ES256", "P-256", hashes.SHA256(), 32),
       KeyType.EC384: ("ES384", "P-384", hashes.SHA384(), 48)}


class AccountKey:
    """An ACME account key pair; signs RFC 8555 §6.2 requests."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.key_type = keytypes.key_type_of(key)
        self.jwk = _public_jwk(key, self.key_type)
        self.thumbprint = jws.thumbprint(self.jwk)
        self.alg = _EC[self.key_type][0] if self.key_type in _EC else "RS256"

    @classmethod
    def load_or_create(cls, path: Path, key_type: KeyType) -> tuple[AccountKey, bool]:
        """Load the key at ``path``, or create one of ``key_type`` there (0600 from creation).

        Returns the key and whether it was created (the seed's ``acme-client -n``).
        """
        if path.exists() or path.is_symlink():
            return cls(_load(path)), False
        key = keytypes.generate(key_type)
        fsutil.write_atomic(path, keytypes.to_pem(key), mode=0o600)
        return cls(key), True

    @classmethod
    def load(cls, path: Path) -> AccountKey | None:
        """The key at ``path``, or None if there is no file there (a dangling link is one)."""
        if path.exists() or path.is_symlink():
            return cls(_load(path))
        return None

    @classmethod
    def from_pem(cls, data: bytes, where: str) -> AccountKey:
        """A key another ACME client kept as PEM (acme-client's ``-f`` file), held in memory;
        ``ConfigError`` naming ``where`` if it is not a usable account key."""
        return cls(keytypes.load_pem(data, where))

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any], where: str) -> AccountKey:
        """A private JWK (RFC 7517/7518: certbot's ``private_key.json``), held in memory;
        ``ConfigError`` naming ``where`` if it is not an RSA or P-256/P-384 private key."""
        try:
            key = _private_from_jwk(jwk)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: not a private RSA or EC JWK ({exc or 'bad value'})"
                              ) from None
        try:
            return cls(key)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def generate(cls, key_type: KeyType) -> AccountKey:
        """A new key held only in memory (a rollover target before it is saved)."""
        return cls(keytypes.generate(key_type))

    @classmethod
    def for_certificate(cls, key_pem: bytes, cert_public_key: object,
                        where: str) -> AccountKey:
        """A signer from a certificate's private key, for revocation by that key (§7.6).

        ``ConfigError`` naming ``where`` if the key is not the certificate's.
        """
        key = keytypes.load_pem(key_pem, where)
        if not _same_public_key(key.public_key(), cert_public_key):
            raise ConfigError(f"{where}: this private key does not belong to the certificate")
        return cls(key)

    def save_new(self, path: Path) -> None:
        """Write this key to ``path`` atomically, 0600 from creation."""
        fsutil.write_atomic(path, keytypes.to_pem(self._key), mode=0o600)

    def install(self, path: Path) -> None:
        """Make this key (one brought from another client) the account key at ``path``,
        0600 from creation; ``StoreError`` if a key is there already (never replaced)."""
        try:
            fsutil.write_exclusive(path, keytypes.to_pem(self._key), mode=0o600)
        except FileExistsError:
            raise StoreError(f"{path}: an account key is there already; not replaced"
                             ) from None

    def sign(
        self, url: str, nonce: str | None, payload: Mapping[str, Any] | None,
        kid: str | None = None,
    ) -> jws.JsonObject:
        """A flattened JWS over ``payload`` (None: POST-as-GET) for ``url``.

        With ``kid`` the header names the account URL; without it carries the JWK, as
        newAccount and revocation by this key require (RFC 8555 §6.2).
        """
        header = jws.protected_header(
            self.alg, url, nonce, kid=kid, jwk=None if kid else self.jwk
        )
        payload_b64 = jws.encode_payload(payload)
        protected_b64, to_sign = jws.signing_input(header, payload_b64)
        return jws.flattened(protected_b64, payload_b64, self._raw_signature(to_sign))

    def sign_inner(self, url: str, payload: Mapping[str, Any]) -> jws.JsonObject:
        """A JWS with this key's ``jwk`` and no nonce: the inner JWS of a key change (§7.3.5).

        It is never sent on its own, only as the payload of a JWS the old key signs, which
        carries the nonce.
        """
        return self.sign(url, None, payload)

    def _raw_signature(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        _, _, digest, size = _EC[self.key_type]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        # RFC 7518 §3.4: JWS wants fixed-size r || s, not DER.
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


class Rollover:
    """A new account key staged beside the old one while the CA is asked to take it (§7.3.5).

    The new key is written to ``account.key.new`` (0600 from creation) and held under an
    exclusive ``flock`` before the CA hears of it, so that at every moment the key the CA
    accepts is on disk. ``commit()`` (after the CA accepted) keeps the old key as
    ``account.key.old-<UTC timestamp>`` (0600) and renames the new one over ``account.key``;
    ``abandon()`` (after the CA refused) deletes it. Left behind by a crash, it is resolved
    by ``Rollover.resume`` the next time the account is opened.
    """

    def __init__(self, path: Path, key: AccountKey, fd: int) -> None:
        self.path = path                 # account.key
        self.staged = staged_path(path)  # account.key.new
        self.key = key
        self._fd: int | None = fd

    @classmethod
    def start(cls, path: Path, key_type: KeyType) -> Rollover:
        """Generate a key of ``key_type`` and stage it; ``StoreError`` if one is staged."""
        new = AccountKey.generate(key_type)
        staged = staged_path(path)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(staged, flags, 0o600)
        except FileExistsError:
            raise StoreError(f"{staged}: a key rollover is already in progress or was "
                             "interrupted; `certfleet account register` resolves an "
                             "interrupted one") from None
        except OSError as exc:
            raise StoreError(f"{staged}: cannot create: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(fd, 0o600)
            data = memoryview(keytypes.to_pem(new._key))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
            fsutil.fsync_dir(path.parent)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(staged)
            raise StoreError(f"{staged}: cannot write: {exc.strerror or exc}") from exc
        return cls(path, new, fd)

    @classmethod
    def resume(cls, path: Path) -> Rollover | None:
        """The rollover a crashed run left staged, locked for us; None if there is none.

        ``StoreError`` if another process is in the middle of one right now.
        """
        staged = staged_path(path)
        try:
            fd = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{staged}: cannot open: {exc.strerror or exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"{staged}: another process is rolling the account key "
                                 "over right now; try again when it is done") from None
            # The other process may have committed (renamed it away) while we waited.
            if os.fstat(fd).st_ino != os.lstat(staged).st_ino:
                raise FileNotFoundError(staged)
            key = cls._check_and_load(staged, fd)
        except FileNotFoundError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return cls(path, key, fd)

    @staticmethod
    def _check_and_load(staged: Path, fd: int) -> AccountKey:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise StoreError(f"{staged}: not a private regular file; remove it by hand")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(1 << 20)
        return AccountKey(keytypes.load_pem(data, str(staged)))

    def commit(self, now: datetime | None = None) -> Path:
        """The CA took the new key: make it ``account.key``, keep the old one. Returns the
        path the old key was kept at."""
        when = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        kept = self.path.with_name(f"{self.path.name}.old-{when}")
        try:  # a byte-for-byte copy: nothing about the old file may stop the commit
            old = fsutil.read_small(self.path)
        except FileNotFoundError:
            old = None
        for n in range(1, 100) if old is not None else ():
            try:
                fsutil.write_new(kept, old or b"", 0o600)
                break
            except FileExistsError:
                kept = self.path.with_name(f"{self.path.name}.old-{when}-{n}")
            except OSError as exc:
                raise StoreError(f"{kept}: cannot keep the old account key: "
                                 f"{exc.strerror or exc}") from exc
        try:
            os.replace(self.staged, self.path)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot install the new account key (it is in "
                             f"{self.staged}): {exc.strerror or exc}") from exc
        fsutil.fsync_dir(self.path.parent)
        self.close()
        return kept

    def abandon(self) -> None:
        """The CA refused the new key: forget it (the old key stays as it was)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.staged)
        fsutil.fsync_dir(self.path.parent)
        self.close()

    def close(self) -> None:
        """Release the lock; the staged file stays for ``resume`` unless committed or
        abandoned (an answer that never came might have been a yes)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Rollover:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def staged_path(path: Path) -> Path:
    """Where a rollover's new key waits beside ``path`` until the CA has taken it."""
    return path.with_name(path.name + ".new")


def retire(path: Path, now: datetime | None = None) -> Path | None:
    """Move the key at ``path`` aside as ``<name>.old-<timestamp>`` (for ``register
    --new-key``); returns where it went, or None if there was none."""
    if not (path.exists() or path.is_symlink()):
        return None
    _load(path)  # refuse to move anything that is not a private key file
    when = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        kept = path.with_name(f"{path.name}.old-{when}" + (f"-{n}" if n else ""))
        if kept.exists() or kept.is_symlink():
            continue
        try:
            os.link(path, kept)  # never two names missing, never one overwritten
            os.unlink(path)
        except OSError as exc:
            raise StoreError(f"{path}: cannot move the old key aside: "
                             f"{exc.strerror or exc}") from exc
        fsutil.fsync_dir(path.parent)
        return kept
    raise StoreError(f"{path}: too many old keys named {path.name}.old-{when}*")


def _same_public_key(a: PublicKey, b: object) -> bool:
    if isinstance(a, rsa.RSAPublicKey) and isinstance(b, rsa.RSAPublicKey):
        return a.public_numbers() == b.public_numbers()
    if isinstance(a, ec.EllipticCurvePublicKey) and isinstance(b, ec.EllipticCurvePublicKey):
        return a.curve.name == b.curve.name and a.public_numbers() == b.public_numbers()
    return False


def _public_jwk(key: PrivateKey, key_type: KeyType) -> dict[str, str]:
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {"e": int_to_b64url(numbers.e), "kty": "RSA", "n": int_to_b64url(numbers.n)}
    point = key.public_key().public_numbers()
    _, crv, _, size = _EC[key_type]
    return {"crv": crv, "kty": "EC", "x": int_to_b64url(point.x, size),
            "y": int_to_b64url(point.y, size)}


def _private_from_jwk(jwk: Mapping[str, Any]) -> PrivateKey:
    def number(name: str) -> int:
        value = jwk[name]
        if not isinstance(value, str) or len(value) > 2048:
            raise ValueError(f"member {name!r} is not a base64url number")
        return int.from_bytes(b64url_decode(value.rstrip("=")), "big")

    if jwk.get("kty") == "RSA":
        public = rsa.RSAPublicNumbers(number("e"), number("n"))
        return rsa.RSAPrivateNumbers(number("p"), number("q"), number("d"), number("dp"),
                                     number("dq"), number("qi"), public).private_key()
    if jwk.get("kty") == "EC":
        curves: dict[Any, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
        if jwk.get("crv") not in curves:
            raise ValueError(f"curve {str(jwk.get('crv'))[:20]!r} is not P-256 or P-384")
        point = ec.EllipticCurvePublicNumbers(number("x"), number("y"), curves[jwk["crv"]])
        return ec.EllipticCurvePrivateNumbers(number("d"), point).private_key()
    raise ValueError(f"kty {str(jwk.get('kty'))[:20]!r} is not RSA or EC")


def _load(path: Path) -> PrivateKey:
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read account key: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{path}: account key is not a regular file (symlinks are refused)")
    if info.st_mode & 0o077:
        raise ConfigError(f"{path}: account key is readable by others (mode "
                          f"{stat.S_IMODE(info.st_mode):o}); chmod 600 it first")
    return keytypes.load_pem(fsutil.read_small(path), str(path))
