"""Drive one certificate from names to a verified, stored version (RFC 8555 §7.3 to §7.4.2, §7.6).

Wires the roles and touches nothing itself: ``acme_client`` talks to the CA, ``account``
signs, ``keys`` makes the key and CSR, a solver answers challenges, ``certs`` verifies,
``store`` writes. Reads top to bottom in protocol order.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from . import keys, keytypes
from .account import AccountKey, Rollover
from .acme_client import PEM_CHAIN, AcmeClient, Response, Signer
from .certs import Bundle, split_pem_chain, verify_issued
from .errors import (
    AcmeProblem,
    CertfleetError,
    ChallengeError,
    ConfigError,
    ProtocolError,
    safe_text,
)
from .keytypes import KeyType
from .protocol import jws
from .protocol.b64 import b64url
from .protocol.challenges import key_authorization
from .protocol.messages import (
    AccountResource,
    AccountStatus,
    Authorization,
    AuthorizationStatus,
    Directory,
    Identifier,
    MalformedMessage,
    Order,
    OrderStatus,
    token_is_safe,
)
from .protocol.timing import clamp, poll_intervals
from .solvers import Solver
from .store import Store, StoredCert, VersionMeta

log = logging.getLogger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

MAX_ALTERNATES = 10  # a hostile CA may link thousands; each costs a request

REVOCATION_REASONS = {  # RFC 5280 §5.3.1 CRLReason values ACME CAs accept
    "unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
    "cessationOfOperation": 5,
}


@dataclass
class Session:
    """An account at one CA: the client, the key holder and the account URL (``kid``)."""

    client: AcmeClient
    key: AccountKey
    kid: str
    sleep: Sleep = field(default=asyncio.sleep)
    validation_timeout: float = 300.0

    def signer(self) -> Signer:
        key, kid = self.key, self.kid
        return lambda url, nonce, payload: key.sign(url, nonce, payload, kid=kid)


def _parse(parse: Callable[[Any], T], response: Response) -> T:
    try:
        return parse(response.json())
    except MalformedMessage as exc:
        raise ProtocolError(f"{safe_text(response.url)}: {exc}") from None


# -- RFC 8555 §7.3: the account ---------------------------------------------------------------

Eab = tuple[str, bytes, str]  # external account binding: (key identifier, MAC key, HS256/384/512)
REGISTER_NEW_KEY = "certfleet account register --new-key"


async def open_account(
    client: AcmeClient, store: Store, key_type: KeyType, contact: Sequence[str],
    sleep: Sleep = asyncio.sleep, *, eab: Eab | None = None,
) -> Session:
    """Load or create the account key and find or register its account at the CA.

    ``eab`` binds a new account to an account the CA's operator gave out (§7.3.4); it is
    needed only to register, and only if the CA asks for it.
    """
    session, _ = await find_or_register(client, store, key_type, contact, sleep, eab=eab)
    return session


async def find_or_register(
    client: AcmeClient, store: Store, key_type: KeyType, contact: Sequence[str],
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
    if not found.location:
        raise ProtocolError(f"{safe_text(directory.new_account)}: no account URL in answer")
    account = _parse(AccountResource.from_json, found)
    if account.status is AccountStatus.DEACTIVATED:
        _note_deactivated(store, directory_url, record, key)
        raise _deactivated(directory_url, found.location, key)
    if account.status is not AccountStatus.VALID:
        raise ProtocolError(f"{safe_text(found.location)}: account is {account.status.value}")
    if account.contact:  # the CA's view; some CAs no longer show contacts at all
        known_contact = [c.removeprefix("mailto:") for c in account.contact]
    else:
        known_contact = list(contact) if registered else record.get("contact", [])
    fresh: dict[str, Any] = {
        "url": found.location, "thumbprint": key.thumbprint, "directory": directory_url,
        "contact": known_contact, "key_type": key.key_type.value,
        "status": AccountStatus.VALID.value,
    }
    if registered and eab is not None:
        fresh["eab_kid"] = eab[0]
    if registered or any(record.get(k) != v for k, v in fresh.items()):
        kept = {} if registered else record  # a new account starts a new record
        store.save_account(directory_url, {**kept, **fresh})
    return Session(client, key, found.location, sleep), registered


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
        log.info("agreeing to the terms of service at %s", directory.terms_of_service)
    if eab is not None:
        log.info("binding the new account to external account %s", safe_text(eab[0]))
        payload["externalAccountBinding"] = external_account_binding(
            eab, key.jwk, directory.new_account)
    try:
        return await client.post(directory.new_account, payload, _jwk_signer(key))
    except AcmeProblem as exc:
        if exc.short_type == "externalAccountRequired" or (
                eab is not None and exc.short_type in ("unauthorized", "badPublicKey")):
            # The CA's words, but as what they are: a fault in our configuration.
            raise ConfigError(f"{exc} (check [ca] eab_kid, eab_hmac_key and eab_alg, or "
                              "CERTFLEET_EAB_KID, CERTFLEET_EAB_HMAC_KEY)") from None
        raise


class _Deactivated(Exception):
    """The CA says the key's account is deactivated (§7.3.6)."""


async def _lookup(client: AcmeClient, new_account: str, key: AccountKey) -> Response | None:
    """§7.3.1: the account of ``key`` via ``onlyReturnExisting``; None if there is none."""
    try:
        return await client.post(new_account, {"onlyReturnExisting": True}, _jwk_signer(key))
    except AcmeProblem as exc:
        if exc.short_type == "accountDoesNotExist":
            return None
        if exc.short_type == "unauthorized" and "deactivated" in exc.detail.lower():
            raise _Deactivated from None
        raise


def _jwk_signer(key: AccountKey) -> Signer:
    """Sign with the key's ``jwk`` in the header (newAccount, revocation by key)."""
    return key.sign


def _deactivated(directory_url: str, url: Any, key: AccountKey) -> ConfigError:
    which = safe_text(str(url)) if url else f"of key {key.thumbprint}"
    return ConfigError(f"account {which} at {safe_text(directory_url)} is deactivated "
                       f"(RFC 8555 §7.3.6); register a new one with `{REGISTER_NEW_KEY}`")


def _note_deactivated(store: Store, directory_url: str, record: Mapping[str, Any],
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


# -- polling (RFC 8555 §7.5.1, §7.4) -------------------------------------------------------

async def _poll(
    session: Session, url: str, parse: Callable[[Any], T], done: Callable[[T], bool],
    what: str, deadline: float, after: Response | None = None,
) -> T:
    """POST-as-GET ``url`` until ``done``; wait as the CA asks (Retry-After), else briefly.

    ``after`` is the answer that started the wait (a challenge or finalize response): its
    Retry-After, or the first short interval, is waited before the first poll, because
    asking at once only ever finds the object unchanged.
    """
    intervals = poll_intervals()
    response = after
    while True:
        if response is not None:
            asked = response.retry_after(session.client.now())
            delay = clamp(asked) if asked is not None else next(intervals)
            if time.monotonic() + delay > deadline:
                raise ChallengeError(f"{what}: still not done after the deadline "
                                     f"(CA asks to wait {delay:.0f}s more)")
            await session.sleep(delay)
        response = await session.client.post_as_get(url, session.signer())
        obj = _parse(parse, response)
        if done(obj):
            return obj


# -- RFC 8555 §7.5: authorizations and challenges ----------------------------------------------

async def _authorize(
    session: Session, authz_urls: Sequence[str], solver: Solver, deadline: float
) -> None:
    signer = session.signer()
    responses = await asyncio.gather(
        *(session.client.post_as_get(url, signer) for url in authz_urls)
    )
    pending: list[tuple[str, Authorization]] = []
    for url, response in zip(authz_urls, responses, strict=True):
        authz = _parse(Authorization.from_json, response)
        if authz.status is AuthorizationStatus.VALID:
            log.info("%s: authorization already valid", authz.name)
        elif authz.status is AuthorizationStatus.PENDING:
            pending.append((url, authz))
        else:
            raise ChallengeError(f"{authz.name}: authorization is {authz.status.value}")
    if not pending:
        return
    presented: list[tuple[str, str, str]] = []
    try:
        answers = []
        for url, authz in pending:
            challenge = authz.challenge(solver.challenge_type)
            if challenge is None:
                offered = ", ".join(sorted(c.type for c in authz.challenges)) or "none"
                raise ChallengeError(f"{authz.name}: CA offers no {solver.challenge_type} "
                                     f"challenge (offers: {safe_text(offered)})")
            if not token_is_safe(challenge.token):
                raise ChallengeError(f"{authz.name}: CA sent an unsafe challenge token "
                                     f"{safe_text(challenge.token, 60)!r}; refusing it")
            key_auth = key_authorization(challenge.token, session.key.thumbprint)
            await solver.present(authz.name, challenge.token, key_auth)
            presented.append((authz.name, challenge.token, key_auth))
            answers.append((url, authz, challenge.url))
        await solver.ready()
        # §7.5.1: tell the CA every response is ready, then wait for all of them at once.
        started = await asyncio.gather(
            *(session.client.post(c_url, {}, signer) for _, _, c_url in answers)
        )
        await asyncio.gather(*(_await_authz(session, url, authz, deadline, response)
                               for (url, authz, _), response in zip(answers, started,
                                                                   strict=True)))
    finally:
        for name, token, key_auth in presented:
            try:
                await solver.cleanup(name, token, key_auth)
            except Exception as exc:  # cleanup of one must not stop the rest
                log.warning("%s: challenge cleanup failed: %s", name, exc)


async def _await_authz(
    session: Session, url: str, authz: Authorization, deadline: float, started: Response
) -> None:
    final = await _poll(
        session, url, Authorization.from_json,
        lambda a: a.status is not AuthorizationStatus.PENDING, f"{authz.name}: validation",
        deadline, after=started,
    )
    if final.status is AuthorizationStatus.VALID:
        log.info("%s: validated", authz.name)
        return
    problem = final.failure()
    reason = (f"{problem.short_type}: {problem.detail}" if problem
              else f"authorization {final.status.value}")
    raise ChallengeError(f"{authz.name}: validation failed: {safe_text(reason)}")


# -- RFC 8555 §7.4: order, finalize, download ---------------------------------------------------

def _order_failed(order: Order, what: str) -> ChallengeError:
    if order.error:
        return ChallengeError(f"{what}: order failed: {safe_text(order.error.short_type)}: "
                              f"{safe_text(order.error.detail)}")
    return ChallengeError(f"{what}: order is {order.status.value}")


async def _finalize(
    session: Session, order: Order, order_url: str, csr: bytes, deadline: float, what: str,
) -> tuple[Order, Response]:
    """POST the CSR (§7.4); if the CA is not ready yet, wait for the order and try once more."""
    payload = {"csr": b64url(csr)}
    try:
        response = await session.client.post(order.finalize, payload, session.signer())
    except AcmeProblem as exc:
        if exc.short_type != "orderNotReady":
            raise
        order = await _poll(session, order_url, Order.from_json,
                            lambda o: o.status is not OrderStatus.PENDING, what, deadline)
        if order.status is not OrderStatus.READY:
            raise _order_failed(order, what) from None
        response = await session.client.post(order.finalize, payload, session.signer())
    return _parse(Order.from_json, response), response


async def _new_order(
    session: Session, names: Sequence[str], profile: str | None, replaces: str | None,
) -> Response:
    """§7.4 newOrder, with the profile asked for and ``replaces`` (RFC 9773 §5) if renewing.

    A CA that will not take ``replaces`` (already replaced, or not understood) gets the
    order once more without it: the renewal matters more than the rate-limit exemption.
    """
    directory = await session.client.directory()
    what = names[0]
    if profile is not None and profile not in directory.profiles:
        offered = ", ".join(sorted(directory.profiles)) or "none"
        raise ConfigError(f"{what}: the CA has no certificate profile {profile!r} "
                          f"(it offers: {safe_text(offered)})")
    payload: dict[str, Any] = {"identifiers": [_identifier(n).to_json() for n in names]}
    if profile is not None:
        payload["profile"] = profile
    if replaces is not None and directory.renewal_info is not None:
        log.info("%s: ordering as the replacement of %s", what, replaces)
        try:
            return await session.client.post(directory.new_order,
                                             {**payload, "replaces": replaces},
                                             session.signer())
        except AcmeProblem as exc:
            refused = exc.short_type == "alreadyReplaced" or (
                exc.short_type == "malformed" and "replace" in exc.detail.lower())
            if not refused:
                raise
            log.info("%s: the CA refused replaces=%s (%s); ordering without it", what,
                     replaces, exc.short_type)
    return await session.client.post(directory.new_order, payload, session.signer())


def _identifier(name: str) -> Identifier:
    """RFC 8738: an IP address is an ``ip`` identifier; everything else ``dns``."""
    try:
        return Identifier("ip", str(ipaddress.ip_address(name)))
    except ValueError:
        return Identifier("dns", name)


async def obtain(
    session: Session, names: Sequence[str], domain_key: keytypes.PrivateKey | None,
    solver: Solver, *, profile: str | None = None, replaces: str | None = None,
    preferred_chain: str | None = None,
    csr: tuple[bytes, keytypes.PublicKey] | None = None,
) -> tuple[Bundle, str]:
    """Order, authorize, finalize and download a certificate for ``names``; verify it."""
    client = session.client
    what = names[0]
    deadline = time.monotonic() + session.validation_timeout
    directory = await client.directory()
    response = await _new_order(session, names, profile, replaces)
    order = _parse(Order.from_json, response)
    order_url = response.location
    if not order_url:
        raise ProtocolError(f"{safe_text(directory.new_order)}: no order URL in answer")
    log.info("%s: order %s is %s", what, order_url, order.status.value)
    if order.status is OrderStatus.PENDING:
        await _authorize(session, order.authorizations, solver, deadline)
        # Every authorization is valid, so the order is ready (§7.1.6): finalize at once
        # instead of spending a request to watch it change.
        order = replace(order, status=OrderStatus.READY)
    finalized: Response | None = None
    if order.status is OrderStatus.READY:
        der = csr[0] if csr else keys.make_csr(_need(domain_key), names)
        order, finalized = await _finalize(session, order, order_url, der, deadline, what)
    if order.status is OrderStatus.PROCESSING:
        order = await _poll(session, order_url, Order.from_json,
                            lambda o: o.status is not OrderStatus.PROCESSING, what, deadline,
                            after=finalized)
    if order.status is not OrderStatus.VALID or not order.certificate:
        raise _order_failed(order, what)
    pem = await _download(session, order.certificate, preferred_chain, what)
    public_key = csr[1] if csr else _need(domain_key).public_key()
    bundle = verify_issued(pem, public_key, names, f"{what}: {safe_text(order.certificate)}")
    return bundle, order_url


def _need(key: keytypes.PrivateKey | None) -> keytypes.PrivateKey:
    if key is None:
        raise ValueError("obtain() needs a domain key or a CSR")
    return key


async def _download(session: Session, url: str, preferred: str | None, what: str) -> bytes:
    """§7.4.2: the certificate chain; with a preference, the first chain (the default, then
    the alternates the CA links to) whose top issuer's common name is ``preferred``."""
    response = await _fetch_chain(session, url)
    if preferred is None or _top_issuer(response.body) == preferred:
        return response.body
    for alternate in response.link("alternate")[:MAX_ALTERNATES]:
        candidate = await _fetch_chain(session, alternate)
        if _top_issuer(candidate.body) == preferred:
            log.info("%s: using the alternate chain to %s", what, safe_text(preferred))
            return candidate.body
    log.info("%s: no chain to %s; keeping the default chain", what, safe_text(preferred))
    return response.body


async def _fetch_chain(session: Session, url: str) -> Response:
    response = await session.client.post_as_get(url, session.signer(), accept=PEM_CHAIN)
    if response.content_type != PEM_CHAIN:
        raise ProtocolError(f"{safe_text(url)}: expected {PEM_CHAIN}, got "
                            f"{safe_text(response.content_type or 'nothing')}")
    return response


def _top_issuer(pem: bytes) -> str | None:
    """The common name of the issuer of the last certificate of a chain (its root)."""
    try:
        last = split_pem_chain(pem, "chain")[-1]
    except CertfleetError:
        return None
    names = last.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


async def issue(
    session: Session, store: Store, names: Sequence[str], key_type: KeyType, solver: Solver,
    reuse_key: bool = False, *, profile: str | None = None, replaces: str | None = None,
    preferred_chain: str | None = None, store_as: str | None = None,
) -> StoredCert:
    """Obtain a certificate for ``names`` and activate it as the next stored version (of
    ``store_as``, by default the first name)."""
    name = store_as or names[0]
    store.preflight(name)
    key_pem = _domain_key_pem(store, name, key_type, reuse_key)
    domain_key = keytypes.load_pem(key_pem, f"{name}: domain key")
    bundle, order_url = await obtain(session, names, domain_key, solver, profile=profile,
                                     replaces=replaces, preferred_chain=preferred_chain)
    meta = _meta(store, session, name, bundle, order_url, key_type.value)
    files = {"cert.pem": bundle.cert_pem, "chain.pem": bundle.chain_pem,
             "fullchain.pem": bundle.fullchain_pem, "privkey.pem": key_pem}
    return store.activate(name, files, meta)


async def issue_csr(
    session: Session, store: Store, csr_der: bytes, names: Sequence[str],
    public_key: keytypes.PublicKey, solver: Solver, *, profile: str | None = None,
    preferred_chain: str | None = None,
) -> StoredCert:
    """Obtain a certificate for the operator's own CSR: no private key is made or written."""
    name = names[0]
    store.preflight(name)
    bundle, order_url = await obtain(session, names, None, solver, profile=profile,
                                     preferred_chain=preferred_chain,
                                     csr=(csr_der, public_key))
    meta = _meta(store, session, name, bundle, order_url, "csr")
    files = {"cert.pem": bundle.cert_pem, "chain.pem": bundle.chain_pem,
             "fullchain.pem": bundle.fullchain_pem}
    return store.activate(name, files, meta)


def _meta(store: Store, session: Session, name: str, bundle: Bundle, order_url: str,
          key_type: str) -> VersionMeta:
    return VersionMeta(
        version=store.next_version(name), names=tuple(bundle.names), key_type=key_type,
        serial=bundle.serial, not_before=bundle.not_before.isoformat(),
        not_after=bundle.not_after.isoformat(), issuer=bundle.issuer,
        aki=bundle.aki.hex() if bundle.aki else "", issued_at=datetime.now(UTC).isoformat(),
        directory=session.client.directory_url, order_url=order_url,
    )


def _domain_key_pem(store: Store, name: str, key_type: KeyType, reuse_key: bool) -> bytes:
    """The key for the next version: the current one if reused, else a new one.

    A new key is saved as pending before the CA sees its CSR, so that an interrupted run
    resumes with the same key and a crash never leaves a certificate without its key.
    """
    current = store.current(name)
    if reuse_key and current is not None and current.meta.key_type == key_type.value:
        return store.read_file(current, "privkey.pem")
    pending = store.load_pending_key(name)
    if pending is not None:
        key = keytypes.load_pem(pending, f"{name}: pending key")
        if keytypes.key_type_of(key) is key_type:
            return pending
    key_pem = keytypes.to_pem(keys.new_domain_key(key_type))
    store.save_pending_key(name, key_pem)
    return key_pem


# -- RFC 8555 §7.6: revocation -----------------------------------------------------------------

async def revoke(
    session_or_client: Session | AcmeClient, cert_pem: bytes, reason: str = "unspecified",
    cert_key_pem: bytes | None = None,
) -> None:
    """Revoke a certificate (§7.6).

    Signed with the account key (``kid``) by default; with ``cert_key_pem``, with the
    certificate's own private key and a ``jwk`` header instead, which needs no account
    (a bare ``AcmeClient`` will do): the way to revoke a certificate whose account is lost.
    """
    if reason not in REVOCATION_REASONS:
        raise ConfigError(f"unknown revocation reason {reason!r}; choose one of "
                          + ", ".join(REVOCATION_REASONS))
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ConfigError(f"revoke: not a PEM certificate: {exc}") from None
    session = session_or_client if isinstance(session_or_client, Session) else None
    client = session.client if session is not None else cast(AcmeClient, session_or_client)
    if cert_key_pem is not None:
        signer = _jwk_signer(AccountKey.for_certificate(
            cert_key_pem, cert.public_key(), f"serial {cert.serial_number:x}: key"))
    elif session is not None:
        signer = session.signer()
    else:
        raise ConfigError("revoke: without an account, the certificate's private key must "
                          "sign the request")
    directory = await client.directory()
    payload = {"certificate": b64url(cert.public_bytes(serialization.Encoding.DER)),
               "reason": REVOCATION_REASONS[reason]}
    await client.post(directory.revoke_cert, payload, signer)
