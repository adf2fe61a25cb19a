"""RFC 8555 resources as frozen dataclasses, parsed strictly from the CA's JSON.

Touches nothing. Every ``from_json`` raises ``MalformedMessage`` naming the field at fault;
unknown statuses are errors, never guesses (RFC 8555 §7.1.6 lists them all).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import field
from typing import Any, TypeVar

from .b64 import is_b64url
from .frozen import frozen

ERROR_PREFIX = "urn:ietf:params:acme:error:"
MAX_LIST = 1000  # identifiers, authorizations, challenges, subproblems per resource

E = TypeVar("E", bound=enum.Enum)


class MalformedMessage(ValueError):
    """A CA response does not have the shape RFC 8555 gives it."""


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedMessage(f"{what} is not a JSON object")
    return value


def _str(obj: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise MalformedMessage(f"{what}: field {key!r} is missing or not a string")
    return value


def _list(obj: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> list[Any]:
    value = obj.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise MalformedMessage(f"{what}: field {key!r} is missing or not a list")
    if len(value) > MAX_LIST:
        raise MalformedMessage(f"{what}: field {key!r} has {len(value)} entries")
    return value


def _status(enum_type: type[E], obj: Mapping[str, Any], what: str) -> E:
    raw = _str(obj, "status", what)
    try:
        return enum_type(raw)
    except ValueError:
        raise MalformedMessage(f"{what}: unknown status {raw[:40]!r}") from None


class OrderStatus(enum.Enum):
    """RFC 8555 §7.1.6, order objects."""

    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AuthorizationStatus(enum.Enum):
    """RFC 8555 §7.1.6, authorization objects."""

    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ChallengeStatus(enum.Enum):
    """RFC 8555 §7.1.6, challenge objects."""

    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AccountStatus(enum.Enum):
    """RFC 8555 §7.1.6, account objects."""

    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


@frozen
class Identifier:
    """RFC 8555 §9.7.7: ``dns`` names, and ``ip`` addresses (RFC 8738)."""

    type: str
    value: str

    @classmethod
    def from_json(cls, obj: Any) -> Identifier:
        data = _obj(obj, "identifier")
        return cls(_str(data, "type", "identifier"), _str(data, "value", "identifier"))

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


@frozen
class Problem:
    """RFC 8555 §6.7 / RFC 7807 problem document, with per-identifier subproblems."""

    type: str
    detail: str
    status: int | None = None
    identifier: Identifier | None = None
    subproblems: tuple[Problem, ...] = ()

    @property
    def short_type(self) -> str:
        """``badNonce`` for ``urn:ietf:params:acme:error:badNonce``; other URIs unchanged."""
        if self.type.startswith(ERROR_PREFIX):
            return self.type[len(ERROR_PREFIX):]
        return self.type

    @classmethod
    def from_json(cls, obj: Any) -> Problem:
        data = _obj(obj, "problem document")
        status = data.get("status")
        ident = data.get("identifier")
        subs = _list(data, "subproblems", "problem document", required=False)
        return cls(
            type=_str(data, "type", "problem document", required=False) or "about:blank",
            detail=_str(data, "detail", "problem document", required=False),
            status=status if isinstance(status, int) else None,
            identifier=Identifier.from_json(ident) if ident is not None else None,
            subproblems=tuple(cls.from_json(sub) for sub in subs),
        )


@frozen
class Directory:
    """RFC 8555 §7.1.1, plus ``renewalInfo`` (RFC 9773) and ``meta.profiles``."""

    new_nonce: str
    new_account: str
    new_order: str
    revoke_cert: str
    key_change: str
    renewal_info: str | None = None
    terms_of_service: str | None = None
    external_account_required: bool = False
    profiles: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any) -> Directory:
        data = _obj(obj, "directory")
        meta = _obj(data.get("meta") or {}, "directory meta")
        raw_profiles = _obj(meta.get("profiles") or {}, "directory meta.profiles")
        renewal_info = data.get("renewalInfo")
        terms = meta.get("termsOfService")
        return cls(
            new_nonce=_str(data, "newNonce", "directory"),
            new_account=_str(data, "newAccount", "directory"),
            new_order=_str(data, "newOrder", "directory"),
            revoke_cert=_str(data, "revokeCert", "directory"),
            key_change=_str(data, "keyChange", "directory"),
            renewal_info=renewal_info if isinstance(renewal_info, str) else None,
            terms_of_service=terms if isinstance(terms, str) else None,
            external_account_required=meta.get("externalAccountRequired") is True,
            profiles={str(k): str(v) for k, v in raw_profiles.items()},
        )

    def urls(self) -> tuple[str, ...]:
        """Every URL the directory names, for scheme checks."""
        found = (self.new_nonce, self.new_account, self.new_order, self.revoke_cert,
                 self.key_change, self.renewal_info)
        return tuple(url for url in found if url)


@frozen
class Challenge:
    """RFC 8555 §8: one way to prove control of an identifier."""

    type: str
    url: str
    status: ChallengeStatus
    token: str
    error: Problem | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Challenge:
        data = _obj(obj, "challenge")
        error = data.get("error")
        return cls(
            type=_str(data, "type", "challenge"),
            url=_str(data, "url", "challenge"),
            status=_status(ChallengeStatus, data, "challenge"),
            token=_str(data, "token", "challenge", required=False),
            error=Problem.from_json(error) if error is not None else None,
        )


@frozen
class Authorization:
    """RFC 8555 §7.1.4."""

    identifier: Identifier
    status: AuthorizationStatus
    challenges: tuple[Challenge, ...]
    wildcard: bool = False
    expires: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Authorization:
        data = _obj(obj, "authorization")
        expires = data.get("expires")
        return cls(
            identifier=Identifier.from_json(data.get("identifier")),
            status=_status(AuthorizationStatus, data, "authorization"),
            challenges=tuple(
                Challenge.from_json(c) for c in _list(data, "challenges", "authorization")
            ),
            wildcard=data.get("wildcard") is True,
            expires=expires if isinstance(expires, str) else None,
        )

    @property
    def name(self) -> str:
        """The name as the certificate will carry it (wildcards get their ``*.`` back)."""
        return f"*.{self.identifier.value}" if self.wildcard else self.identifier.value

    def challenge(self, type_: str) -> Challenge | None:
        """The first challenge of the given type, if the CA offered one."""
        return next((c for c in self.challenges if c.type == type_), None)

    def failure(self) -> Problem | None:
        """The error of the challenge that made this authorization invalid."""
        return next((c.error for c in self.challenges if c.error is not None), None)


@frozen
class Order:
    """RFC 8555 §7.1.3."""

    status: OrderStatus
    identifiers: tuple[Identifier, ...]
    authorizations: tuple[str, ...]
    finalize: str
    certificate: str | None = None
    error: Problem | None = None
    expires: str | None = None
    profile: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Order:
        data = _obj(obj, "order")
        authzs = _list(data, "authorizations", "order")
        if not all(isinstance(url, str) for url in authzs):
            raise MalformedMessage("order: authorizations must be URLs")
        error = data.get("error")
        cert = data.get("certificate")
        expires = data.get("expires")
        profile = data.get("profile")
        return cls(
            status=_status(OrderStatus, data, "order"),
            identifiers=tuple(
                Identifier.from_json(i) for i in _list(data, "identifiers", "order")
            ),
            authorizations=tuple(authzs),
            finalize=_str(data, "finalize", "order"),
            certificate=cert if isinstance(cert, str) else None,
            error=Problem.from_json(error) if error is not None else None,
            expires=expires if isinstance(expires, str) else None,
            profile=profile if isinstance(profile, str) else None,
        )


@frozen
class AccountResource:
    """RFC 8555 §7.1.2 (the parts certfleet uses)."""

    status: AccountStatus
    contact: tuple[str, ...] = ()
    orders: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> AccountResource:
        data = _obj(obj, "account")
        contact = _list(data, "contact", "account", required=False)
        orders = data.get("orders")
        return cls(
            status=_status(AccountStatus, data, "account"),
            contact=tuple(str(c) for c in contact),
            orders=orders if isinstance(orders, str) else None,
        )


def token_is_safe(token: str) -> bool:
    """RFC 8555 §8.3: a token is base64url with at least 128 bits of entropy.

    Tokens become file names and URL paths; anything else is refused before use.
    """
    return 22 <= len(token) <= 256 and is_b64url(token)
