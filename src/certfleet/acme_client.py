"""The only code that talks to the CA (RFC 8555 §6): directory, nonces, signed POSTs, GETs.

Touches the network and nothing else. It never holds a key: callers pass a ``Signer`` that
turns (url, nonce, payload) into a finished JWS. It refuses plain http unless allowed,
refuses redirects to another origin, caps every body, verifies TLS (optionally against a
given CA bundle, never switched off), retries ``badNonce`` a bounded number of times, and
keeps a pool of the nonces the CA hands back so that ``newNonce`` is asked only when empty.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from . import __version__
from .errors import AcmeProblem, BadNonce, ProtocolError, TransportError, acme_problem, safe_text
from .protocol.messages import Directory, MalformedMessage, Problem
from .protocol.timing import parse_retry_after

log = logging.getLogger(__name__)

Signer = Callable[[str, str, Mapping[str, Any] | None], Mapping[str, Any]]

JOSE_JSON = "application/jose+json"
PEM_CHAIN = "application/pem-certificate-chain"
MAX_BODY = 1 << 20          # no ACME object or certificate chain comes near 1 MiB
MAX_REDIRECTS = 3
NONCE_POOL = 64
USER_AGENT = (f"certfleet/{__version__} aiohttp/{aiohttp.__version__} "
              f"Python/{sys.version_info.major}.{sys.version_info.minor}")


@dataclass(frozen=True)
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
    ) -> None:
        self.directory_url = directory_url
        self.allow_http = allow_http
        self.max_bad_nonce = max_bad_nonce
        self.requests: collections.Counter[str] = collections.Counter()
        self.server_date: datetime | None = None
        self._check_url(directory_url)
        self._ca_bundle = ca_bundle
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._connections = connections
        self._nonces: collections.deque[str] = collections.deque(maxlen=NONCE_POOL)
        self._session: aiohttp.ClientSession | None = None
        self._directory: Directory | None = None

    async def __aenter__(self) -> AcmeClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._session is not None:
            return
        context = ssl.create_default_context(
            cafile=str(self._ca_bundle) if self._ca_bundle else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        connector = aiohttp.TCPConnector(ssl=context, limit=self._connections)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout,
            headers={"User-Agent": USER_AGENT}, auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def _check_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a malformed host or port
        except ValueError:
            raise ProtocolError(f"{safe_text(url)}: not a valid URL") from None
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            raise ProtocolError(f"{safe_text(url)}: refusing non-https URL from the CA "
                                "(plain http only with --insecure-http)")

    # -- RFC 8555 §7.1.1: the directory -------------------------------------------------

    async def directory(self) -> Directory:
        """The CA's directory, fetched once per session."""
        if self._directory is None:
            response = await self.get(self.directory_url)
            try:
                directory = Directory.from_json(response.json())
            except MalformedMessage as exc:
                raise ProtocolError(f"{safe_text(self.directory_url)}: {exc}") from None
            for url in directory.urls():
                self._check_url(url)
            self._directory = directory
        return self._directory

    # -- RFC 8555 §7.2: nonces ------------------------------------------------------------

    async def _nonce(self) -> str:
        if self._nonces:
            return self._nonces.pop()
        directory = await self.directory()
        response = await self._request("HEAD", directory.new_nonce)
        if not self._nonces:
            raise ProtocolError(f"{safe_text(directory.new_nonce)}: no Replay-Nonce in answer "
                                f"(HTTP {response.status})")
        return self._nonces.pop()

    # -- RFC 8555 §6.2, §6.3: signed requests ----------------------------------------------

    async def post(
        self, url: str, payload: Mapping[str, Any] | None, signer: Signer,
        accept: str | None = None,
    ) -> Response:
        """A signed POST (``payload=None`` is POST-as-GET); error answers raise ``AcmeProblem``.

        ``badNonce`` is retried with the fresh nonce from the error (RFC 8555 §6.5), at most
        ``max_bad_nonce`` times.
        """
        self._check_url(url)
        headers = {"Content-Type": JOSE_JSON}
        if accept:
            headers["Accept"] = accept
        for _ in range(self.max_bad_nonce + 1):
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
        if self._session is None:
            await self.open()
        assert self._session is not None
        self.requests[method] += 1
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as resp:
                body = await _read_capped(resp, url)
                response = Response(
                    url=url, status=resp.status, headers=dict(resp.headers), body=body,
                    links=_links(resp, url),
                )
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise TransportError(f"{safe_text(url)}: {_describe(exc)}") from None
        log.debug("%s %s -> %s", method, url, response.status)
        if method == "POST" and 300 <= response.status < 400:
            raise ProtocolError(f"{safe_text(url)}: unexpected redirect (HTTP {response.status})")
        nonce = response.headers.get("Replay-Nonce")
        if nonce and len(nonce) < 256 and nonce.isascii():
            self._nonces.append(nonce)
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


async def _read_capped(resp: aiohttp.ClientResponse, url: str) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > MAX_BODY:
        raise TransportError(f"{safe_text(url)}: response of {declared} bytes exceeds "
                             f"{MAX_BODY}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise TransportError(f"{safe_text(url)}: response exceeds {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _links(resp: aiohttp.ClientResponse, url: str) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    for value in resp.headers.getall("Link", [])[:100]:
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate not trusted: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return safe_text(str(exc) or type(exc).__name__)
