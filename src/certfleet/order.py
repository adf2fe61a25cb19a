"""One order's conversation with the CA, from newOrder to a verified certificate
(RFC 8555 §7.4 to §7.4.2, §7.5; RFC 9773 §5 ``replaces``).

Touches nothing itself and knows no storage: ``acme_client`` talks to the CA, the session's
key holder signs, ``keys`` makes the CSR, a solver answers challenges, ``certs`` verifies.
What to keep and where is ``issuance.py``'s business. Reads top to bottom in protocol order.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from cryptography.x509.oid import NameOID

from . import ca_origin, keys, keytypes
from .acme_client import PEM_CHAIN, Response
from .certs import Bundle, split_pem_chain, verify_issued
from .errors import (
    AcmeProblem,
    BadNonce,
    CertfleetError,
    ChallengeError,
    ConfigError,
    OrderNotReady,
    ProtocolError,
    RateLimited,
    safe_text,
)
from .protocol.b64 import b64url
from .protocol.challenges import key_authorization
from .protocol.messages import (
    Authorization,
    AuthorizationStatus,
    Identifier,
    Order,
    OrderStatus,
    token_is_safe,
)
from .protocol.timing import poll_intervals, poll_wait
from .session import Session, parse_response
from .solvers import Solver

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ALTERNATES = 10  # a hostile CA may link thousands; each costs a request
MAX_URL = 2048


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
            delay = poll_wait(asked, intervals)
            if session.clock() + delay > deadline:
                raise ChallengeError(f"{what}: still not done after the deadline "
                                     f"(CA asks to wait {delay:.0f}s more)")
            await session.sleep(delay)
        response = await session.client.post_as_get(url, session.signer())
        obj = parse_response(parse, response)
        if done(obj):
            return obj


# -- RFC 8555 §7.5: authorizations and challenges ----------------------------------------------

async def _authorize(
    session: Session, authz_urls: Sequence[str], solver: Solver, deadline: float,
    names: Sequence[str],
) -> None:
    signer = session.signer()
    ordered = {_identifier(n).value.lower() for n in names} | {
        n.lower() for n in names}
    # One authorization per identifier ordered (§7.1.3): a list longer than that, or one
    # naming a URL twice, would have certfleet fetch, present and poll for the CA's asking.
    if len(authz_urls) > len(names) or len(set(authz_urls)) != len(authz_urls):
        raise ProtocolError(f"{names[0]}: the order lists {len(authz_urls)} "
                            f"authorizations ({len(set(authz_urls))} different) for "
                            f"{len(names)} identifiers")
    responses = await asyncio.gather(
        *(session.client.post_as_get(url, signer) for url in authz_urls)
    )
    pending: list[tuple[str, Authorization]] = []
    for url, response in zip(authz_urls, responses, strict=True):
        authz = parse_response(Authorization.from_json, response)
        if authz.name.lower() not in ordered:  # never present anything for a name not asked
            raise ChallengeError(f"{safe_text(url)}: the CA sent an authorization for "
                                 f"'{safe_text(authz.name, 80)}', which was not ordered")
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
    except OrderNotReady:
        order = await _poll(session, order_url, Order.from_json,
                            lambda o: o.status is not OrderStatus.PENDING, what, deadline)
        if order.status is not OrderStatus.READY:
            raise _order_failed(order, what) from None
        response = await session.client.post(order.finalize, payload, session.signer())
    return parse_response(Order.from_json, response), response


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
            response = await session.client.post(directory.new_order,
                                                  {**payload, "replaces": replaces},
                                                  session.signer())
            session.orders_placed += 1
            return response
        except (RateLimited, BadNonce):
            raise
        except AcmeProblem as exc:
            # alreadyReplaced, a CA that does not understand the field, or one that cannot
            # find the certificate (Pebble misreads serials with a leading zero byte): any
            # of them is worth one order without it; a rate limit is not.
            log.info("%s: the CA refused replaces=%s (%s); ordering without it", what,
                     replaces, exc.short_type)
    response = await session.client.post(directory.new_order, payload, session.signer())
    session.orders_placed += 1
    return response


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
    on_order: Callable[[str], Awaitable[None]] | None = None,
) -> tuple[Bundle, str]:
    """Order, authorize, finalize and download a certificate for ``names``; verify it.

    ``on_order`` learns the order URL as soon as the CA gives it, so that an interrupted
    attempt can be resumed (``resume``) instead of ordering again.
    """
    directory = await session.client.directory()
    response = await _new_order(session, names, profile, replaces)
    order = parse_response(Order.from_json, response)
    order_url = response.location
    if not order_url or len(order_url) > MAX_URL:  # it is recorded, to resume the order
        raise ProtocolError(f"{safe_text(directory.new_order)}: no usable order URL in answer")
    # Before it is recorded: a later run would resume it (``resume``) by polling it.
    ca_origin.require(order_url, session.client.directory_url)
    log.info("%s: order %s is %s", names[0], order_url, order.status.value)
    if on_order is not None:
        await on_order(order_url)
    return await _complete(session, order, order_url, names, domain_key, solver,
                           preferred_chain, csr)


async def resume(
    session: Session, order_url: str, names: Sequence[str], domain_key: keytypes.PrivateKey,
    solver: Solver, preferred_chain: str | None = None,
) -> tuple[Bundle, str] | None:
    """Carry an earlier order for the same names to its certificate, or None if it cannot be
    (gone, invalid, other names): e.g. a finalize whose answer was lost is downloaded now."""
    try:
        order = parse_response(Order.from_json,
                       await session.client.post_as_get(order_url, session.signer()))
    except CertfleetError as exc:
        log.info("%s: earlier order %s not usable: %s", names[0], order_url, exc)
        return None
    if sorted(i.value for i in order.identifiers) != sorted(_identifier(n).value for n in names) \
            or order.status is OrderStatus.INVALID:
        return None
    log.info("%s: resuming order %s (%s)", names[0], order_url, order.status.value)
    return await _complete(session, order, order_url, names, domain_key, solver,
                           preferred_chain, None)


async def _complete(
    session: Session, order: Order, order_url: str, names: Sequence[str],
    domain_key: keytypes.PrivateKey | None, solver: Solver, preferred_chain: str | None,
    csr: tuple[bytes, keytypes.PublicKey] | None,
) -> tuple[Bundle, str]:
    """From an order in any state to its verified certificate (§7.4, §7.5)."""
    what = names[0]
    deadline = session.clock() + session.validation_timeout
    if order.status is OrderStatus.PENDING:
        await _authorize(session, order.authorizations, solver, deadline, names)
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
    if preferred is None or top_issuer(response.body) == preferred:
        return response.body
    for alternate in response.link("alternate")[:MAX_ALTERNATES]:
        try:
            candidate = await _fetch_chain(session, alternate)
        except CertfleetError as exc:  # the default chain is good: one alternate is optional
            log.warning("%s: alternate chain %s: %s", what, safe_text(alternate), exc)
            continue
        if top_issuer(candidate.body) == preferred:
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


def top_issuer(pem: bytes) -> str | None:
    """The common name of the issuer of the last certificate of a chain (its root)."""
    try:
        last = split_pem_chain(pem, "chain")[-1]
        names = last.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (CertfleetError, ValueError):  # cryptography parses names lazily
        return None
    return str(names[0].value) if names else None
