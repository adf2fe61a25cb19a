"""Keep each certificate's ARI renewal window (RFC 9773) fresh before a run plans.

Wires ``acme_client`` (the GET), ``protocol.ari`` (the schedule) and ``store`` (the state
record); touches nothing itself. A certificate is asked about only when it has never been,
or when the CA's Retry-After has passed, so a cron job every few minutes does not ask every
few minutes. Any failure (no ARI at this CA, no AKI in the certificate, a bad answer)
leaves the lifetime rule in charge and is asked again later, never sooner than an hour.
A certificate another run holds is left to that run: its window is asked for next time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime

from .acme_client import AcmeClient
from .errors import CertfleetError, safe_text
from .protocol import ari
from .protocol.messages import MalformedMessage
from .store import CertStore, VersionMeta

log = logging.getLogger(__name__)
AT_ONCE = 8
_rng = random.SystemRandom()


async def _ask(client: AcmeClient, base: str, meta: VersionMeta, previous: ari.Schedule | None,
               name: str, now: datetime) -> ari.Schedule:
    """The schedule after asking the CA about one certificate."""
    if not meta.aki:
        return ari.failed(previous, meta.serial, "no AKI in certificate", now + ari.MAX_RECHECK)
    url = f"{base.rstrip('/')}/{ari.cert_id(bytes.fromhex(meta.aki), meta.serial)}"
    try:
        response = await client.get(url)
        start, end, explanation = ari.parse_window(response.json())
    except (CertfleetError, MalformedMessage) as exc:
        log.warning("%s: renewal information unavailable, using the lifetime rule: %s",
                    name, exc)
        return ari.failed(previous, meta.serial, safe_text(str(exc)),
                          now + ari.FAILED_RECHECK)
    if explanation:
        log.info("%s: renewal window %s to %s; the CA explains: %s", name,
                 start.isoformat(), end.isoformat(), safe_text(explanation))
    return ari.schedule(previous, meta.serial, start, end, explanation,
                        ari.recheck_after(response.retry_after(now), now), _rng.random())


def _record(store: CertStore, name: str, schedule: ari.Schedule) -> None:
    """Keep the schedule, unless another run holds the certificate right now."""
    if not store.try_lock(name):
        return
    try:
        store.update_state(name, lambda state: state.with_ari(schedule))
    except CertfleetError as exc:
        log.warning("%s: cannot keep the renewal window: %s", name, exc)
    finally:
        store.unlock(name)


async def refresh(client: AcmeClient, store: CertStore,
                  certs: Sequence[tuple[str, VersionMeta]]) -> None:
    """Ask the CA for the renewal window of each certificate given (already known due)."""
    directory = await client.directory()
    now = datetime.now(UTC)
    base = directory.renewal_info
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(name: str, meta: VersionMeta) -> None:
        try:
            previous = store.load_state(name).ari
        except CertfleetError:
            return  # a damaged record fails its certificate in the plan
        if base is None:  # no ARI here: ask the directory again tomorrow
            schedule = ari.failed(previous, meta.serial, "the CA offers no ARI",
                                  now + ari.MAX_RECHECK)
        else:
            async with gate:
                schedule = await _ask(client, base, meta, previous, name, now)
        _record(store, name, schedule)

    await asyncio.gather(*(one(name, meta) for name, meta in certs))
