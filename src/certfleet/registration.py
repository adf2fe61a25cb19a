"""The account at the CA (RFC 8555 §7.3): find it, register it (with external account
binding, §7.3.4), notice deactivation, and finish a key rollover a crash interrupted.

Wires ``acme_client``, ``account`` (the key holder) and ``store`` (account.json); touches
nothing itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import ca_origin
from .account_key import AccountKey, Rollover
from .acme_client import AcmeClient, Response
from .errors import (
    AccountDoesNotExist,
    AcmeProblem,
    BadPublicKey,
    ConfigError,
    ExternalAccountRequired,
    ProtocolError,
    Unauthorized,
    safe_text,
)
from .keytypes import KeyType
from .protocol import jws
from .protocol.b64 import b64url_decode
from .protocol.messages import AccountResource, AccountStatus, Directory
from .session import Session, Sleep, parse_response
from .store import CertStore

log = logging.getLogger(__name__)


Eab = tuple[str, bytes, str]  # external account binding: (key identifier, MAC key, HS256/384/512)
REGISTER_NEW_KEY = "certfleet account register --new-key"
EAB_ENV = ("CERTFLEET_EAB_KID", "CERTFLEET_EAB_HMAC_KEY", "CERTFLEET_EAB_ALG")
MAX_URL = 2048      # an account URL longer than this is no URL a CA means
MAX_CONTACT = 260   # "mailto:" and an address of at most 254 characters (RFC 5321)
MAX_CONTACTS = 8


# -- §7.3.4: external account binding settings -------------------------------------------------

def parse_eab(kid: str | None, hmac_key: str | None, alg: str | None = None) -> Eab | None:
    """The binding from its settings: the key identifier and the base64url MAC key the CA
    gave out, and the MAC algorithm (HS256 unless told). None if neither is set.

    Errors never show the key, not even a part of it.
    """
    if not kid and not hmac_key:
        return None
    if not kid or not hmac_key:
        missing = "eab_kid" if not kid else "eab_hmac_key"
        raise ConfigError(f"external account binding: {missing} is not set (eab_kid and "
                          "eab_hmac_key go together)")
    if not kid.isprintable() or len(kid) > 256:
        raise ConfigError(f"eab_kid {safe_text(kid, 60)!r} is not a key identifier")
    algorithm = (alg or "HS256").upper()
    if algorithm not in jws.HMAC_ALGORITHMS:
        raise ConfigError(f"eab_alg {safe_text(alg or '', 20)!r}: use HS256, HS384 or HS512")
    try:  # CAs hand the key out base64url-encoded; some add the padding
        key = b64url_decode(hmac_key.strip().rstrip("="))
    except ValueError:
        raise ConfigError("eab_hmac_key is not base64url (letters, digits, '-' and '_', as "
                          "the CA gave it); the value is not shown") from None
    if not key:
        raise ConfigError("eab_hmac_key is empty")
    return kid, key, algorithm


def eab_settings(job: object | None = None,
                 environ: Mapping[str, str] | None = None) -> Eab | None:
    """The binding from CERTFLEET_EAB_KID / _HMAC_KEY / _ALG, else from the job's
    ``eab_kid``, ``eab_hmac_key``, ``eab_alg`` ([ca] in certfleet.toml), if it has them."""
    env = os.environ if environ is None else environ
    kid_env, key_env, alg_env = EAB_ENV
    from_env = bool(env.get(kid_env) or env.get(key_env))
    if from_env:  # one source for the pair: never a kid from here and a key from there
        return parse_eab(env.get(kid_env), env.get(key_env), env.get(alg_env))
    return parse_eab(getattr(job, "eab_kid", None), getattr(job, "eab_hmac_key", None),
                     env.get(alg_env) or getattr(job, "eab_alg", None))


async def open_account(
    client: AcmeClient, store: CertStore, key_type: KeyType, contact: Sequence[str],
    sleep: Sleep = asyncio.sleep, *, eab: Eab | None = None,
) -> Session:
    """Load or create the account key and find or register its account at the CA.

    ``eab`` binds a new account to an account the CA's operator gave out (§7.3.4); it is
    needed only to register, and only if the CA asks for it.
    """
    session, _ = await find_or_register(client, store, key_type, contact, sleep, eab=eab)
    return session


async def find_or_register(
    client: AcmeClient, store: CertStore, key_type: KeyType, contact: Sequence[str],
    sleep: Sleep = asyncio.sleep, *, eab: Eab | None = None, register: bool = True,
) -> tuple[Session, bool]:
    """``open_account``, also saying whether the account was registered just now.

    With ``register=False`` an account that does not exist yet is a ``ConfigError`` (for
    commands that manage an existing account).
    """
    directory_url = client.directory_url
    path = store.account_key_path(directory_url)
    # The account is looked up at the CA once per process even when its URL is on disk: a
    # CA that lost or deactivated it must be noticed before an order, not in the middle.
    directory = await client.directory()
    await _resume_rollover(client, directory.new_account, path)
    key = AccountKey.load(path)
    record = store.load_account(directory_url) or {}
    if key is not None and record.get("thumbprint") == key.thumbprint \
            and record.get("status") == AccountStatus.DEACTIVATED.value:
        raise _deactivated(directory_url, record.get("url"), key)  # no request: fail fast
    found: Response | None = None
    if key is not None:  # §7.3.1: find an existing account for this key before creating one
        try:
            found = await _lookup(client, directory.new_account, key)
        except _Deactivated:
            _note_deactivated(store, directory_url, record, key)
            raise _deactivated(directory_url, record.get("url"), key) from None
    if found is None:
        if not register:
            where = f"the key {path}" if key is not None else f"a key (none at {path})"
            raise ConfigError(f"{safe_text(directory_url)}: no account for {where}; register "
                              "one with `certfleet account register`")
        if directory.external_account_required and eab is None:
            # Before a key is made or a request is sent that could only be refused.
            raise ConfigError(
                f"{safe_text(directory_url)}: this CA registers accounts only with an "
                "external account binding (RFC 8555 §7.3.4): set [ca] eab_kid and "
                "eab_hmac_key (or CERTFLEET_EAB_KID and CERTFLEET_EAB_HMAC_KEY) to the "
                "values the CA gave you")
        if key is None:
            key, _ = AccountKey.load_or_create(path, key_type)
            log.info("created %s account key %s", key_type.value, path)
        found = await _new_account(client, directory, key, contact, eab)
        registered = True
    else:
        registered = False
    assert key is not None  # the account was found by its key, or the key was made above
    account_url = _account_url(client, directory.new_account, found)
    account = parse_response(AccountResource.from_json, found)
    if account.status is AccountStatus.DEACTIVATED:
        _note_deactivated(store, directory_url, record, key)
        raise _deactivated(directory_url, account_url, key)
    if account.status is not AccountStatus.VALID:
        raise ProtocolError(f"{safe_text(account_url)}: account is {account.status.value}")
    if account.contact:  # the CA's view (bounded: it is kept); some CAs show none at all
        known_contact = [c.removeprefix("mailto:") for c in account.contact
                         if len(c) <= MAX_CONTACT and c.isprintable()][:MAX_CONTACTS]
    else:
        known_contact = list(contact) if registered else record.get("contact", [])
    fresh: dict[str, Any] = {
        "url": account_url, "thumbprint": key.thumbprint, "contact": known_contact,
        "status": AccountStatus.VALID.value,
    }
    if registered and eab is not None:
        fresh["eab_kid"] = eab[0]
    if registered or any(record.get(k) != v for k, v in fresh.items()):
        kept = {} if registered else record  # a new account starts a new record
        store.save_account(directory_url, {**kept, **fresh})
    return Session(client, key, account_url, sleep), registered


async def existing_account(client: AcmeClient,
                           key: AccountKey) -> tuple[str, AccountResource] | None:
    """§7.3.1: the URL and resource of the account of ``key`` at the client's CA
    (``onlyReturnExisting``), or None if the CA knows none. Nothing is stored: this is for
    a key brought from another client, before it is kept. An account that is not valid
    (deactivated, revoked) is a ``ConfigError``."""
    directory = await client.directory()
    try:
        found = await _lookup(client, directory.new_account, key)
    except _Deactivated:
        raise ConfigError(f"{safe_text(client.directory_url)}: the account of key "
                          f"{key.thumbprint} is deactivated; it cannot be used") from None
    if found is None:
        return None
    account = parse_response(AccountResource.from_json, found)
    if account.status is not AccountStatus.VALID:
        raise ConfigError(f"{safe_text(client.directory_url)}: the account of key "
                          f"{key.thumbprint} is {account.status.value}; it cannot be used")
    return _account_url(client, directory.new_account, found), account


def _account_url(client: AcmeClient, new_account: str, found: Response) -> str:
    """The account URL the CA gave (``Location``), refused unless usable and at the CA's
    origin: it is kept, signed into every request as ``kid`` and POSTed to (``account
    update``, ``deactivate``), so it is checked before any of that."""
    if not found.location or len(found.location) > MAX_URL:
        raise ProtocolError(f"{safe_text(new_account)}: no usable account URL in answer")
    ca_origin.require(found.location, client.directory_url)
    return found.location


def external_account_binding(eab: Eab, jwk: Mapping[str, Any], url: str) -> dict[str, Any]:
    """§7.3.4: a JWS over the new account's JWK, MAC'd with the CA-issued key.

    Its protected header has ``alg``, ``kid`` (the CA's key identifier) and ``url`` (the
    newAccount URL, as in the outer JWS), and no ``nonce``.
    """
    kid, mac_key, alg = eab
    header = {"alg": alg, "kid": kid, "url": url}
    try:
        return jws.mac_jws(alg, mac_key, header, jws.encode_payload(jwk))
    except ValueError:
        raise ConfigError(f"eab_alg {safe_text(alg)!r}: use HS256, HS384 or HS512") from None


async def _new_account(
    client: AcmeClient, directory: Directory, key: AccountKey, contact: Sequence[str],
    eab: Eab | None,
) -> Response:
    """§7.3: register an account for ``key``, bound to ``eab`` if given (§7.3.4)."""
    payload: dict[str, Any] = {"termsOfServiceAgreed": True}
    if contact:
        payload["contact"] = [c if c.startswith("mailto:") else f"mailto:{c}" for c in contact]
    if directory.terms_of_service:
        # The CA's text, as any: escaped and cut (a 900 KB URL made one 900 KB log line).
        log.info("agreeing to the terms of service at %s",
                 safe_text(directory.terms_of_service))
    if eab is not None:
        log.info("binding the new account to external account %s", safe_text(eab[0]))
        payload["externalAccountBinding"] = external_account_binding(
            eab, key.jwk, directory.new_account)
    try:
        return await client.post(directory.new_account, payload, key.sign)
    except AcmeProblem as exc:
        if isinstance(exc, ExternalAccountRequired) or (
                eab is not None and isinstance(exc, Unauthorized | BadPublicKey)):
            # The CA's words, but as what they are: a fault in our configuration.
            raise ConfigError(f"{exc} (check [ca] eab_kid, eab_hmac_key and eab_alg, or "
                              "CERTFLEET_EAB_KID, CERTFLEET_EAB_HMAC_KEY)") from None
        raise


class _Deactivated(Exception):
    """The CA says the key's account is deactivated (§7.3.6)."""


async def _lookup(client: AcmeClient, new_account: str, key: AccountKey) -> Response | None:
    """§7.3.1: the account of ``key`` via ``onlyReturnExisting``; None if there is none."""
    try:
        return await client.post(new_account, {"onlyReturnExisting": True}, key.sign)
    except AccountDoesNotExist:
        return None
    except Unauthorized as exc:
        if "deactivated" in exc.detail.lower():
            raise _Deactivated from None
        raise


def _deactivated(directory_url: str, url: Any, key: AccountKey) -> ConfigError:
    which = safe_text(str(url)) if url else f"of key {key.thumbprint}"
    return ConfigError(f"account {which} at {safe_text(directory_url)} is deactivated "
                       f"(RFC 8555 §7.3.6); register a new one with `{REGISTER_NEW_KEY}`")


def _note_deactivated(store: CertStore, directory_url: str, record: Mapping[str, Any],
                      key: AccountKey) -> None:
    """Remember that the CA deactivated the account, so later runs fail without asking."""
    if record.get("thumbprint") == key.thumbprint and record.get("status") != "deactivated":
        store.save_account(directory_url, {**record, "status": "deactivated"})


async def _resume_rollover(client: AcmeClient, new_account: str, path: Path) -> None:
    """Finish or undo a key rollover (§7.3.5) a crashed run left half done.

    Its new key is on disk beside the old one; if the CA knows an account by it, the CA
    took it and it becomes the account key; if not, the CA never did and it is dropped.
    """
    pending = Rollover.resume(path)
    if pending is None:
        return
    with pending:
        try:
            taken = await _lookup(client, new_account, pending.key) is not None
        except _Deactivated:
            taken = True  # it was taken, and the account deactivated since
        if not taken:
            pending.abandon()
            log.warning("%s: dropped the new key of an interrupted rollover: the CA never "
                        "took it", path)
        else:
            kept = pending.commit()
            log.warning("%s: finished an interrupted key rollover: the CA had taken the new "
                        "key (the old one is kept as %s)", path, kept.name)


