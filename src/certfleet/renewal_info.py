"""Keep each certificate's ARI renewal window (RFC 9773) fresh before a run plans.

Wires ``acme_client`` (the GET), ``protocol.ari`` (the schedule) and ``store`` (the state
record); touches nothing itself. A certificate is asked about only when it has never been,
or when the CA's Retry-After has passed, so a cron job every few minutes does not ask every
few minutes. Any failure (no ARI at this CA, no AKI in the certificate, a bad answer)
leaves the lifetime rule in charge and is asked again later, never sooner than an hour.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .acme_client import AcmeClient
from .errors import CertfleetError, safe_text
from .protocol import ari
from .protocol.messages import MalformedMessage
from .store import Store, VersionMeta

log = logging.getLogger(__name__)
AT_ONCE = 8
_rng = random.SystemRandom()


def needs_fetch(state: dict[str, Any], meta: VersionMeta, now: datetime) -> bool:
    return ari.fetch_due(state.get("ari"), meta.serial, now)


async def _one(client: AcmeClient, base: str, store: Store, name: str, meta: VersionMeta,
               now: datetime) -> None:
    state = store.read_state(name)
    previous = state.get("ari")
    if not meta.aki:
        record: dict[str, Any] = {"serial": f"{meta.serial:x}", "error": "no AKI in certificate",
                                  "next_fetch": (now + ari.MAX_RECHECK).isoformat()}
    else:
        url = f"{base.rstrip('/')}/{ari.cert_id(bytes.fromhex(meta.aki), meta.serial)}"
        try:
            response = await client.get(url)
            start, end, explanation = ari.parse_window(response.json())
            record = ari.schedule(previous, meta.serial, start, end, explanation,
                                  ari.recheck_after(response.retry_after(now), now),
                                  _rng.random())
            if explanation:
                log.info("%s: renewal window %s to %s; the CA explains: %s", name,
                         start.isoformat(), end.isoformat(), safe_text(explanation))
        except (CertfleetError, MalformedMessage) as exc:
            log.warning("%s: renewal information unavailable, using the lifetime rule: %s",
                        name, exc)
            record = {"serial": f"{meta.serial:x}", "error": safe_text(str(exc)),
                      "next_fetch": (now + ari.FAILED_RECHECK).isoformat()}
    state["ari"] = record
    store.write_state(name, state)


async def refresh(client: AcmeClient, store: Store,
                  certs: Sequence[tuple[str, VersionMeta]]) -> None:
    """Ask the CA for the renewal window of each certificate given (already known due)."""
    directory = await client.directory()
    now = datetime.now(UTC)
    if directory.renewal_info is None:
        for name, meta in certs:  # no ARI here: ask the directory again tomorrow
            state = store.read_state(name)
            state["ari"] = {"serial": f"{meta.serial:x}", "error": "the CA offers no ARI",
                            "next_fetch": (now + ari.MAX_RECHECK).isoformat()}
            store.write_state(name, state)
        return
    base = directory.renewal_info
    gate = asyncio.Semaphore(AT_ONCE)

    async def bounded(name: str, meta: VersionMeta) -> None:
        async with gate:
            await _one(client, base, store, name, meta, now)

    await asyncio.gather(*(bounded(name, meta) for name, meta in certs))
