"""One certificate from its spec to an active stored version: key, order, activation.

Wires ``keys`` (the domain key), ``order`` (the conversation with the CA) and ``store``
(the pending key, the order record, the new version); touches nothing itself. The caller
holds the certificate's lock, so every state change here happens under it.

A new domain key is saved as pending before the CA sees its CSR, and the order URL is
recorded as soon as the CA gives it: an interrupted attempt is resumed with the same key
and order instead of placing another, and a crash never leaves a certificate without its
key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from . import keys, keytypes
from .certs import Bundle
from .errors import CertfleetError
from .keytypes import KeyType
from .order import obtain, resume
from .session import Session
from .solvers import Solver
from .spec import CertSpec
from .state import CertState
from .store import CertStore, StoredCert, VersionMeta

log = logging.getLogger(__name__)
MAX_ISSUER = 1024  # the issuer's name as kept in meta.json: enough for any real one
Change = Callable[[CertState], CertState]


def _same(state: CertState) -> CertState:
    return state


async def issue(session: Session, store: CertStore, spec: CertSpec, solver: Solver, *,
                replaces: str | None = None, outcome: Change = _same) -> StoredCert:
    """Obtain a certificate for ``spec`` and activate it as its next stored version.
    ``outcome``: what else the record keeps of the success (the run's result), written with
    the order's end in one write."""
    name, names = spec.name, list(spec.names)
    await asyncio.to_thread(store.preflight, name)
    if spec.csr is not None:
        return await _issue_csr(session, store, spec, solver, outcome)
    record = store.load_state(name).order
    if record is not None and (done := store.finish_activation(name, record.url)):
        log.info("%s: version %d of order %s was stored by a run that stopped before "
                 "activating it; activated now", name, done.meta.version, record.url)
        store.update_state(name, partial(_ended, outcome))
        return done
    key_pem = await asyncio.to_thread(_domain_key_pem, store, name, spec.key_type,
                                      spec.reuse_key)
    domain_key = keytypes.load_pem(key_pem, f"{name}: domain key")
    bundle_url = await _resume_recorded(session, store, name, names, domain_key, solver,
                                        spec.preferred_chain)
    if bundle_url is None:
        async def remember(url: str) -> None:
            await asyncio.to_thread(store.update_state, name,
                                    lambda state: state.with_order(url, names))

        bundle_url = await obtain(session, names, domain_key, solver, profile=spec.profile,
                                  replaces=replaces, preferred_chain=spec.preferred_chain,
                                  on_order=remember)
    bundle, order_url = bundle_url
    meta = _meta(store, session, name, bundle, order_url, spec.key_label)
    files = {"cert.pem": bundle.cert_pem, "chain.pem": bundle.chain_pem,
             "fullchain.pem": bundle.fullchain_pem, "privkey.pem": key_pem}
    return await asyncio.to_thread(_activate, store, name, files, meta, outcome)


def _activate(store: CertStore, name: str, files: dict[str, bytes], meta: VersionMeta,
              outcome: Change) -> StoredCert:
    stored = store.activate(name, files, meta)
    store.update_state(name, partial(_ended, outcome))
    return stored


def _ended(outcome: Change, state: CertState) -> CertState:
    """The record once the new version is active: no order in flight, and the outcome."""
    return outcome(state.without_order())


async def _issue_csr(session: Session, store: CertStore, spec: CertSpec, solver: Solver,
                     outcome: Change) -> StoredCert:
    """The operator's own CSR: no private key is made or written."""
    assert spec.csr is not None
    der, names, public_key = keys.load_csr(spec.csr, f"{spec.name}: CSR")
    bundle, order_url = await obtain(session, names, None, solver, profile=spec.profile,
                                     preferred_chain=spec.preferred_chain,
                                     csr=(der, public_key))
    meta = _meta(store, session, spec.name, bundle, order_url, "csr")
    files = {"cert.pem": bundle.cert_pem, "chain.pem": bundle.chain_pem,
             "fullchain.pem": bundle.fullchain_pem}
    return await asyncio.to_thread(_activate, store, spec.name, files, meta, outcome)


async def _resume_recorded(
    session: Session, store: CertStore, name: str, names: Sequence[str],
    domain_key: keytypes.PrivateKey, solver: Solver, preferred_chain: str | None,
) -> tuple[Bundle, str] | None:
    """An order recorded by an interrupted attempt, for these names and this pending key."""
    record = store.load_state(name).order
    if record is None or list(record.names) != list(names) \
            or store.load_pending_key(name) is None:
        return None
    current = store.current(name)
    if current is not None and current.meta.order_url == record.url:
        return None  # that order's certificate is the active one already
    try:
        return await resume(session, record.url, names, domain_key, solver, preferred_chain)
    except CertfleetError as exc:  # a fresh order is the way out
        log.info("%s: could not resume %s: %s", name, record.url, exc)
        return None


def _meta(store: CertStore, session: Session, name: str, bundle: Bundle, order_url: str,
          key_type: str) -> VersionMeta:
    return VersionMeta(
        version=store.next_version(name), names=tuple(bundle.names), key_type=key_type,
        serial=bundle.serial, not_before=bundle.not_before.isoformat(),
        not_after=bundle.not_after.isoformat(), issuer=bundle.issuer[:MAX_ISSUER],
        aki=bundle.aki.hex() if bundle.aki else "", issued_at=datetime.now(UTC).isoformat(),
        directory=session.client.directory_url, order_url=order_url,
    )


def _domain_key_pem(store: CertStore, name: str, key_type: KeyType, reuse_key: bool) -> bytes:
    """The key for the next version: the current one if reused, else a new one.

    A new key is saved as pending before the CA sees its CSR, so that an interrupted run
    resumes with the same key and a crash never leaves a certificate without its key.
    """
    current = store.current(name)
    if reuse_key and current is not None and current.meta.key_type == key_type.value:
        return store.read_file(current, "privkey.pem")
    pending = store.load_pending_key(name)
    if pending is not None and current is not None and current.meta.key_type != "csr" \
            and pending == store.read_file(current, "privkey.pem"):
        # Left by an activation killed before it cleared it: that key is in use already.
        store.clear_pending(name)
        pending = None
    if pending is not None:
        key = keytypes.load_pem(pending, f"{name}: pending key")
        if keytypes.key_type_of(key) is key_type:
            return pending
    key_pem = keytypes.to_pem(keys.new_domain_key(key_type))
    store.save_pending_key(name, key_pem)
    return key_pem
