"""The only code that talks to the CA (RFC 8555 §6): directory, nonces, signed POSTs, GETs.

Touches the network and nothing else. It never holds a key: callers pass a ``Signer`` that
turns (url, nonce, payload) into a finished JWS. It refuses plain http unless allowed,
follows no URL outside the directory URL's origin (``ca_origin``), caps every body,
verifies TLS (optionally against a given CA bundle, never switched off) and retries
``badNonce`` a bounded number of times, within a bounded time.
Its nonces are handed on as ``nonces`` says: a nonce that comes back goes to the next
waiting POST, and ``newNonce`` is asked only when none will come back or a POST has waited
longer than a short grace.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from . import __version__, ca_origin
from .errors import AcmeProblem, BadNonce, ProtocolError, TransportError, acme_problem, safe_text
from .http11 import HttpError, Pool, Reply
from .nonces import NonceFlow
from .protocol.frozen import frozen
from .protocol.messages import Directory, MalformedMessage, Problem
from .protocol.timing import parse_retry_after

log = logging.getLogger(__name__)

Signer = Callable[[str, str, Mapping[str, Any] | None], Mapping[str, Any]]

JOSE_JSON = "application/jose+json"
PEM_CHAIN = "application/pem-certificate-chain"
MAX_BODY = 1 << 20          # no ACME object or certificate chain comes near 1 MiB
MAX_REDIRECTS = 3
# badNonce is retried at once, up to max_bad_nonce times, but none starts after this many
# seconds since the first try: 101 slow answers (each just under the 30 s timeout) held one
# POST ~50 minutes. Twice the timeout: a POST ends within 90 s (lego: 20 s, no count).
BAD_NONCE_BUDGET = 60.0
USER_AGENT = f"certfleet/{__version__} Python/{sys.version_info.major}.{sys.version_info.minor}"


@frozen
class Response:
    """One answer from the CA, read completely and within the size cap."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    links: tuple[tuple[str, str], ...] = ()  # (rel, absolute URL)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def location(self) -> str | None:
        value = self.headers.get("Location")
        return _join(self.url, value) if value else None

    def retry_after(self, now: datetime) -> float | None:
        """Seconds the CA asked to wait, if it asked (RFC 8555 §8.2)."""
        return parse_retry_after(self.headers.get("Retry-After"), now)

    def link(self, rel: str) -> list[str]:
        return [url for r, url in self.links if r == rel]

    def json(self) -> Any:
        """The JSON body; ``ProtocolError`` naming the URL if it is not JSON."""
        if self.content_type not in ("application/json", "application/problem+json"):
            raise ProtocolError(f"{safe_text(self.url)}: expected JSON, got "
                                f"{safe_text(self.content_type or 'no Content-Type')}")
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"{safe_text(self.url)}: invalid JSON: {exc}") from None


def problem_error(url: str, response: Response, now: datetime) -> AcmeProblem | ProtocolError:
    """Turn an error response into ``AcmeProblem`` (or ``ProtocolError`` if it is not one)."""
    try:
        problem = Problem.from_json(json.loads(response.body))
    except (ValueError, RecursionError):
        snippet = response.body[:200].decode("utf-8", "replace")
        return ProtocolError(f"{safe_text(url)}: HTTP {response.status}: {safe_text(snippet)}")
    subs = tuple(
        (sub.identifier.value if sub.identifier else "?", sub.type, sub.detail)
        for sub in problem.subproblems
    )
    return acme_problem(url, problem.type, problem.detail, response.status, subs,
                        response.retry_after(now))


def _join(base: str, reference: str) -> str | None:
    """``reference`` resolved against ``base``; None if it is not a usable URL at all."""
    try:
        url = urljoin(base, reference)
        urlsplit(url).port  # noqa: B018 - raises on a malformed host or port
    except ValueError:
        return None
    return url


def _same_origin(a: str, b: str) -> bool:
    try:
        pa, pb = urlsplit(a), urlsplit(b)
        return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
    except ValueError:
        return False


class AcmeClient:
    """An ACME server session: one connection pool, one nonce pool, one directory."""

    def __init__(
        self, directory_url: str, *, ca_bundle: Path | None = None, allow_http: bool = False,
        timeout: float = 30.0, max_bad_nonce: int = 100, connections: int = 4,
        rate: float | None = None, bad_nonce_budget: float = BAD_NONCE_BUDGET,
    ) -> None:
        self.directory_url = directory_url
        self.allow_http = allow_http
        self.max_bad_nonce = max_bad_nonce
        self.bad_nonce_budget = bad_nonce_budget
        self.requests: collections.Counter[str] = collections.Counter()
        self.server_date: datetime | None = None
        self._check_url(directory_url)
        self._ca_bundle = ca_bundle
        self._timeout = timeout
        self._connections = connections
        self._budget = RateBudget(rate) if rate else None
        self._flow = NonceFlow(connections, rate)
        self._directory_lock = asyncio.Lock()
        self._pool: Pool | None = None
        self._context: ssl.SSLContext | None = None
        self._directory: Directory | None = None

    async def __aenter__(self) -> AcmeClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._pool is not None:
            return
        if urlsplit(self.directory_url).scheme == "https":
            self._tls()  # a CA bundle that cannot be used is said before anything is sent
        self._pool = Pool(context=self._tls, limit=self._connections, timeout=self._timeout,
                          connect_timeout=min(self._timeout, 10.0), max_body=MAX_BODY,
                          user_agent=USER_AGENT)

    def _tls(self) -> ssl.SSLContext:
        """The TLS context, made once: loading the system's trust store takes tens of
        milliseconds, which a session over plain http (a test server) never needs."""
        if self._context is None:
            try:
                context = ssl.create_default_context(
                    cafile=str(self._ca_bundle) if self._ca_bundle else None)
            except (OSError, ssl.SSLError) as exc:
                raise TransportError(f"{self._ca_bundle}: not a usable CA bundle: "
                                     f"{safe_text(str(exc))}") from None
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._context = context
        return self._context

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def _check_url(self, url: str) -> None:
        """``ProtocolError`` unless ``url`` may be followed: https (http if allowed), at the
        directory URL's origin. Said before any connection to it."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a malformed host or port
        except ValueError:
            raise ProtocolError(f"{safe_text(url)}: not a valid URL") from None
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            raise ProtocolError(f"{safe_text(url)}: refusing non-https URL from the CA "
                                "(plain http only with --insecure-http)")
        ca_origin.require(url, self.directory_url)

    # -- RFC 8555 §7.1.1: the directory -------------------------------------------------

    async def directory(self) -> Directory:
        """The CA's directory, fetched once per session."""
        async with self._directory_lock:  # asked once even by many tasks at once
            if self._directory is None:
                await self._fetch_directory()
        assert self._directory is not None
        return self._directory

    async def _fetch_directory(self) -> None:
        response = await self.get(self.directory_url)
        try:
            directory = Directory.from_json(response.json())
        except MalformedMessage as exc:
            raise ProtocolError(f"{safe_text(self.directory_url)}: {exc}") from None
        for url in directory.urls():
            self._check_url(url)
        self._directory = directory

    # -- RFC 8555 §7.2: nonces ------------------------------------------------------------

    async def _nonce(self) -> str:
        """A nonce: pooled, the next to come back, or from ``newNonce`` (``nonces``)."""
        url = (await self.directory()).new_nonce  # the directory's answer may bring one
        return await self._flow.take(lambda: self._new_nonce(url))

    async def _new_nonce(self, url: str) -> None:
        """Ask ``newNonce``; its nonce goes to the first waiter, like any that comes back."""
        response = await self._request("HEAD", url)
        if _plausible_nonce(response.headers) is None:
            raise ProtocolError(f"{safe_text(url)}: no Replay-Nonce in answer "
                                f"(HTTP {response.status})")

    # -- RFC 8555 §6.2, §6.3: signed requests ----------------------------------------------

    async def post(
        self, url: str, payload: Mapping[str, Any] | None, signer: Signer,
        accept: str | None = None,
    ) -> Response:
        """A signed POST (``payload=None`` is POST-as-GET); error answers raise ``AcmeProblem``.

        ``badNonce`` is retried with the fresh nonce from the error (RFC 8555 §6.5), at most
        ``max_bad_nonce`` times, and none starts after ``bad_nonce_budget`` seconds.
        """
        self._check_url(url)
        headers = {"Content-Type": JOSE_JSON}
        if accept:
            headers["Accept"] = accept
        started = time.monotonic()
        for tries in range(self.max_bad_nonce + 1):
            if tries and time.monotonic() - started > self.bad_nonce_budget:
                raise ProtocolError(f"{safe_text(url)}: badNonce {tries} times in a row, "
                                    f"retried for {self.bad_nonce_budget:g} s; giving up")
            body = json.dumps(signer(url, await self._nonce(), payload)).encode()
            response = await self._request("POST", url, data=body, headers=headers)
            if response.status < 400:
                return response
            error = problem_error(url, response, self.now())
            if not isinstance(error, BadNonce):
                raise error
            log.debug("badNonce from %s; retrying with the nonce it returned", url)
        raise ProtocolError(f"{safe_text(url)}: badNonce {self.max_bad_nonce + 1} times in a "
                            "row; giving up")

    async def post_as_get(self, url: str, signer: Signer, accept: str | None = None) -> Response:
        """RFC 8555 §6.3: fetch a resource with an empty signed payload."""
        return await self.post(url, None, signer, accept)

    async def get(self, url: str) -> Response:
        """An unauthenticated GET (directory, renewalInfo); same-origin redirects only."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            self._check_url(current)
            response = await self._request("GET", current)
            if response.status in (301, 302, 303, 307, 308) and response.location:
                if not _same_origin(current, response.location):
                    raise TransportError(f"{safe_text(current)}: redirect to another host "
                                         f"refused: {safe_text(response.location)}")
                current = response.location
                continue
            if response.status >= 400:
                raise problem_error(current, response, self.now())
            return response
        raise TransportError(f"{safe_text(url)}: more than {MAX_REDIRECTS} redirects")

    # -- the wire ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def _request(
        self, method: str, url: str, data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        brings = method in ("POST", "HEAD")  # an answer that should bring a nonce back
        if brings:
            self._flow.sending()  # from now: a waiter counts on this answer
        reply: Reply | None = None
        try:
            if self._budget is not None:
                await self._budget.take()
            self.requests[method] += 1
            reply = await self._pool.request(method, url, headers, data)
        except HttpError as exc:
            raise TransportError(f"{safe_text(url)}: {safe_text(str(exc))}") from None
        finally:
            if brings and reply is None:
                self._flow.answered(None)  # failed: no nonce comes back from this one
        found = _headers(reply)
        nonce = _plausible_nonce(found)
        if brings:  # first: whatever else fails, nobody waits on this
            self._flow.answered(nonce, reply.round_trip)
        elif nonce is not None:
            self._flow.give(nonce)  # a GET's answer brought one: welcome
        response = Response(url=url, status=reply.status, headers=found,
                            body=reply.body, links=_links(reply.all("link"), url))
        log.debug("%s %s -> %s", method, url, response.status)
        if method == "POST" and 300 <= response.status < 400:
            raise ProtocolError(f"{safe_text(url)}: unexpected redirect (HTTP {response.status})")
        self._note_date(response.headers.get("Date"))
        return response

    def _note_date(self, value: str | None) -> None:
        if not value:
            return
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        self.server_date = when if when.tzinfo else when.replace(tzinfo=UTC)


class RateBudget:
    """At most ``rate`` requests a second on average, bursts of up to a quarter second's worth: a
    token bucket, waited on without blocking the other tasks."""

    def __init__(self, rate: float) -> None:
        self.rate, self.capacity = rate, max(1.0, rate / 4)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:  # one waiter at a time: the order of requests is kept
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._stamp = time.monotonic()
                self._tokens = 1
            self._tokens -= 1


class _Headers(dict[str, str]):
    """Header names looked up in any case (the wire gives them in lower case)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


def _plausible_nonce(headers: Mapping[str, str]) -> str | None:
    """The answer's Replay-Nonce, unless absent, huge or not ASCII (then not sent back)."""
    nonce = headers.get("Replay-Nonce")
    return nonce if nonce and len(nonce) < 256 and nonce.isascii() else None


def _headers(reply: Reply) -> _Headers:
    found = _Headers()
    for name, value in reply.headers:
        found.setdefault(name, value)  # the first of repeated headers, as for a dict
    return found


def _links(values: list[str], url: str) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    for value in values[:100]:
        for part in value.split(",")[:100]:
            target, _, params = part.partition(";")
            target = target.strip()
            if not (target.startswith("<") and target.endswith(">")):
                continue
            for param in params.split(";"):
                key, _, rel = param.strip().partition("=")
                joined = _join(url, target[1:-1])
                if key.strip().lower() == "rel" and joined is not None:
                    found.append((rel.strip().strip('"'), joined))
    return tuple(found[:100])
