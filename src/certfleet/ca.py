"""The CAs of a job: one client and one account per CA, made when first needed.

Wires ``acme_client`` and ``registration``; touches nothing itself. This is the one place
a CA client is built (trust, plain-http permission and connection count all come from the
job), so every command reaches every CA the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import CertfleetError
from .gcpause import importing

if TYPE_CHECKING:
    from .acme_client import AcmeClient
    from .session import Session
    from .spec import JobConfig
    from .store import CertStore

# Kept-alive connections to one CA at most: HTTP/1.1 carries one request at a time, and a
# few dozen carry a CA's whole request rate at internet round-trip times.
MAX_CONNECTIONS = 32


def client(job: JobConfig, url: str | None = None, *, connections: int = 4) -> AcmeClient:
    """A client for ``url`` (the job's CA if not given), with the job's trust settings and
    the request rate that CA allows."""
    with importing():  # long-lived objects (gcpause.py)
        from .acme_client import AcmeClient  # noqa: PLC0415 - ssl, framing: only a run asking a CA

    url = url or job.directory
    limits = job.limits(url)
    return AcmeClient(url, ca_bundle=job.ca_bundle, allow_http=job.allow_http,
                      connections=connections,
                      rate=limits.request_rate if limits is not None else None)


class CaSessions:
    """Clients and accounts of a run, per CA; ``async with`` closes them all."""

    def __init__(self, job: JobConfig, store: CertStore) -> None:
        self.job, self.store = job, store
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[str, AcmeClient] = {}
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Per CA: how many openings of the account failed, and how the last one did.
        self._failed: dict[str, tuple[int, CertfleetError]] = {}

    async def __aenter__(self) -> CaSessions:
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    @property
    def asked(self) -> bool:
        """Whether any CA was (or was about to be) asked anything in this run."""
        return bool(self._clients)

    async def client(self, url: str) -> AcmeClient:
        if url not in self._clients:
            self._clients[url] = await self._stack.enter_async_context(
                client(self.job, url,
                       connections=min(MAX_CONNECTIONS, max(4, self.job.concurrency))))
        return self._clients[url]

    async def session(self, url: str) -> Session:
        """The account at ``url``, looked up or registered once even when many wait. Those
        that waited on an opening that failed share its failure, so that a CA that is down
        costs them one timeout between them, not one each; a later caller tries again."""
        from .registration import eab_settings, open_account  # noqa: PLC0415 - cryptography

        seen, _ = self._failed.get(url, (0, None))
        async with self._locks.setdefault(url, asyncio.Lock()):
            if url not in self._sessions:
                failures, failure = self._failed.get(url, (0, None))
                if failure is not None and failures > seen:
                    # Its traceback is the first raiser's; each raise here would lengthen it.
                    raise failure.with_traceback(None)
                # External account binding belongs to the primary CA's account.
                eab = eab_settings(self.job) if url == self.job.directory else None
                try:
                    self._sessions[url] = await open_account(
                        await self.client(url), self.store, self.job.account_key_type,
                        self.job.contact, eab=eab)
                except CertfleetError as exc:
                    self._failed[url] = (failures + 1, exc)
                    raise
        return self._sessions[url]

    def orders_placed(self) -> dict[str, int]:
        """New orders each CA took in this run, by directory URL."""
        return {url: session.orders_placed for url, session in self._sessions.items()}

    @property
    def requests(self) -> int:
        return sum(c.total_requests for c in self._clients.values())
