"""The account's life at one CA (RFC 8555 §7.3): register, read, update, roll over, deactivate.

Wires the roles and touches nothing itself: ``acme_client`` talks to the CA,
``account_key`` holds the keys (and stages, installs and keeps them on disk), ``store``
keeps ``account.json``. Reads in the RFC's order: §7.3 registration, §7.3.2 contact
update, §7.3.5 key change, §7.3.6 deactivation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import account_key as account_file
from .acme_client import AcmeClient
from .errors import ConfigError, ProtocolError, TransportError, safe_text
from .keytypes import KeyType
from .protocol.frozen import frozen
from .protocol.messages import AccountResource, AccountStatus, MalformedMessage
from .registration import MAX_CONTACTS, Eab, find_or_register
from .session import Session, Sleep
from .store import CertStore

log = logging.getLogger(__name__)



def mailto(contact: Sequence[str]) -> list[str]:
    """``mailto:`` URLs for e-mail addresses (§7.3); ``ConfigError`` for anything else."""
    urls = []
    for item in contact:
        address = item.removeprefix("mailto:")
        local, _, domain = address.partition("@")
        if (not local or not domain or "@" in domain or not address.isprintable()
                or any(c in address for c in " ,;<>") or len(address) > 254):
            raise ConfigError(f"contact {safe_text(item, 80)!r} is not an e-mail address")
        urls.append(f"mailto:{address}")
    if len(urls) > MAX_CONTACTS:
        raise ConfigError(f"{len(urls)} contact addresses; at most {MAX_CONTACTS}")
    return urls


# -- §7.3: registration and the account object -------------------------------------------------

@frozen
class Registered:
    """What ``register`` did: the session, and whether the account is new."""

    session: Session
    created: bool
    retired_key: Path | None = None


async def register(
    client: AcmeClient, store: CertStore, key_type: KeyType, contact: Sequence[str],
    *, eab: Eab | None = None, new_key: bool = False, sleep: Sleep = asyncio.sleep,
) -> Registered:
    """Find the account of the current key, or register one (bound to ``eab`` if given).

    ``new_key`` first moves the current key aside as ``account.key.old-<timestamp>``, so
    a new account is registered with a new key (after a deactivation, or to start over).
    """
    addresses = mailto(contact)
    retired = None
    if new_key:
        await client.directory()  # a CA that cannot be reached changes nothing on disk
        retired = account_file.retire(store.account_key_path(client.directory_url))
        if retired is not None:
            log.info("moved the old account key aside to %s", retired)
    session, created = await find_or_register(client, store, key_type, addresses, sleep,
                                              eab=eab)
    return Registered(session, created, retired)


async def open_existing(client: AcmeClient, store: CertStore,
                        sleep: Sleep = asyncio.sleep) -> Session:
    """The account of the current key; ``ConfigError`` if it has none (never registers)."""
    session, _ = await find_or_register(client, store, KeyType.EC256, (), sleep,
                                        register=False)
    return session


async def fetch(session: Session) -> AccountResource:
    """The account object as the CA has it now (POST-as-GET to the account URL, §7.3)."""
    response = await session.client.post_as_get(session.kid, session.signer())
    return _account(response.json(), session.kid)


# -- §7.3.2: contact --------------------------------------------------------------------------

async def update_contact(session: Session, contact: Sequence[str],
                         store: CertStore | None = None) -> AccountResource:
    """Replace the account's contact addresses (an empty list removes them all)."""
    payload = {"contact": mailto(contact)}
    response = await session.client.post(session.kid, payload, session.signer())
    account = _account(response.json(), session.kid)
    if store is not None:
        directory_url = session.client.directory_url
        record = store.load_account(directory_url) or {}
        shown = account.contact if account.contact else tuple(payload["contact"])
        store.save_account(directory_url, {
            **record, "url": session.kid, "thumbprint": session.key.thumbprint,
            "contact": [c.removeprefix("mailto:") for c in shown],
        })
    return account


# -- §7.3.5: key change -----------------------------------------------------------------------

@frozen
class RolledOver:
    """What ``rollover`` did: the session with the new key, and where the old key is kept."""

    session: Session
    old_key_kept: Path


async def rollover(session: Session, store: CertStore, new_key_type: KeyType) -> RolledOver:
    """Replace the account key with a new one of ``new_key_type``; the account URL stays.

    The new key is on disk (``account.key.new``, 0600) before the CA hears of it. The
    inner JWS, signed by the new key with its ``jwk`` and no nonce, says "this key now
    stands for ``account``, replacing ``oldKey``"; the outer JWS, the old key's with
    ``kid`` and nonce, carries it as payload. Only after the CA said yes does the new key
    become ``account.key`` (the old one kept as ``account.key.old-<timestamp>``) and
    ``account.json`` get the new thumbprint. A refusal deletes the new key; a lost answer
    keeps it for the next run to resolve (``issue.find_or_register``).
    """
    client = session.client
    directory = await client.directory()
    path = store.account_key_path(client.directory_url)
    old = session.key
    with account_file.Rollover.start(path, new_key_type) as staged:
        new = staged.key
        inner = new.sign_inner(directory.key_change, {"account": session.kid,
                                                      "oldKey": old.jwk})
        try:
            await client.post(directory.key_change, inner, session.signer())
        except ProtocolError:
            staged.abandon()  # an answer, and a no: the old key is still the account's
            raise
        except TransportError as exc:
            raise TransportError(f"{exc}; the CA may have taken the new account key: it is "
                                 f"kept in {staged.staged} and the next command sorts it "
                                 "out") from None
        kept = staged.commit()
    directory_url = client.directory_url
    record = store.load_account(directory_url) or {}
    store.save_account(directory_url, {
        **record, "url": session.kid, "thumbprint": new.thumbprint,
        "previous_thumbprint": old.thumbprint,
        "rolled_over_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    log.info("%s: account key rolled over to %s (%s); old key kept as %s", session.kid,
             new.thumbprint, new.key_type.value, kept)
    return RolledOver(replace(session, key=new), kept)


# -- §7.3.6: deactivation ---------------------------------------------------------------------

async def deactivate(session: Session, store: CertStore) -> AccountResource:
    """Deactivate the account for good, and remember it so later runs fail at once."""
    response = await session.client.post(
        session.kid, {"status": AccountStatus.DEACTIVATED.value}, session.signer())
    account = _account(response.json(), session.kid)
    if account.status is not AccountStatus.DEACTIVATED:
        raise ProtocolError(f"{safe_text(session.kid)}: asked to deactivate, the CA says the "
                            f"account is {account.status.value}")
    directory_url = session.client.directory_url
    record = store.load_account(directory_url) or {}
    store.save_account(directory_url, {
        **record, "url": session.kid, "thumbprint": session.key.thumbprint,
        "status": AccountStatus.DEACTIVATED.value,
        "deactivated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    return account


def _account(data: Any, url: str) -> AccountResource:
    try:
        return AccountResource.from_json(data)
    except MalformedMessage as exc:
        raise ProtocolError(f"{safe_text(url)}: {exc}") from None


__all__ = [
    "Registered", "RolledOver", "deactivate", "fetch", "mailto", "open_existing", "register",
    "rollover", "update_contact",
]
