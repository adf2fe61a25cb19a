"""Preflight: prove the http-01 path works through every load balancer before asking the CA.

Touches outgoing HTTP connections to the load balancers (configured, or the name's own
addresses from DNS) and, through the solver, whatever it presents with. A probe token is
presented like a real one, fetched as ``http://NAME/.well-known/acme-challenge/<probe>``
from each load balancer with the right Host header, and removed again; a load balancer that
answers wrongly is named before the CA can count a failed validation (Let's Encrypt allows
five per name per hour).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Sequence

from .errors import ChallengeError, safe_text
from .http11 import HttpError, Pool
from .protocol.b64 import b64url
from .protocol.challenges import HTTP_01, HTTP_01_PREFIX, key_authorization
from .protocol.frozen import frozen
from .solvers import Solver
from .spec import CertSpec, JobConfig

TIMEOUT = 10.0
MAX_BODY = 4096


@frozen
class ProbeResult:
    name: str
    lb: str               # the load balancer as configured (or the resolved address)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        return f"{self.name} via {self.lb}: " + ("ok" if self.ok else f"FAILED: {self.error}")


async def resolve(name: str, port: int) -> list[tuple[str, str, int]]:
    """The name's own addresses, as load balancer endpoints, when none are configured."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    addresses = sorted({str(info[4][0]) for info in infos})
    return [(f"[{a}]:{port}" if ":" in a else f"{a}:{port}", a, port) for a in addresses]


async def _fetch(pool: Pool, name: str, host: str, port: int,
                 token: str, expected: str) -> str | None:
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}{HTTP_01_PREFIX}{token}"
    try:
        reply = await pool.request("GET", url, {"Host": name})
    except HttpError as exc:
        return f"cannot fetch the probe: {safe_text(str(exc))}"
    if reply.status != 200:
        moved = reply.header("location") if 300 <= reply.status < 400 else None
        return f"HTTP {reply.status} for the probe token" + (
            f" (a redirect to {safe_text(moved, 200)})" if moved else "")
    answer = reply.body.decode("ascii", "replace").strip()
    if answer != expected:
        return f"answered, but not with the probe's key authorization " \
               f"(got {safe_text(answer, 60)!r})"
    return None


async def probe(
    names: Sequence[str], solver: Solver, thumbprint: str,
    endpoints: Sequence[tuple[str, str, int]], default_port: int = 80,
) -> list[ProbeResult]:
    """Present one probe token per name and fetch it through every endpoint.

    With no endpoints configured, each name is fetched at its own DNS addresses.
    """
    # One token per name: a solver may hold one name per token (as serve's files do).
    tokens = {name: b64url(secrets.token_bytes(32)) for name in names}
    results: list[ProbeResult] = []
    presented: list[str] = []
    try:
        for name in names:
            await solver.present(name, tokens[name], key_authorization(tokens[name], thumbprint))
            presented.append(name)
        async with _pool() as pool:
            for name in names:
                targets = list(endpoints) or await resolve(name, default_port)
                if not targets:
                    results.append(ProbeResult(name, "DNS", "the name has no address"))
                expected = key_authorization(tokens[name], thumbprint)
                errors = await asyncio.gather(*(
                    _fetch(pool, name, host, port, tokens[name], expected)
                    for _, host, port in targets))
                results += [ProbeResult(name, label, error)
                            for (label, _, _), error in zip(targets, errors, strict=True)]
    finally:
        for name in presented:
            await solver.cleanup(name, tokens[name], key_authorization(tokens[name], thumbprint))
    return results


def _pool() -> Pool:
    # Plain http only: a CA starts every http-01 validation on port 80 without TLS.
    return Pool(context=None, limit=32, timeout=TIMEOUT,
                connect_timeout=TIMEOUT, max_body=MAX_BODY, user_agent="certfleet-preflight")


async def before_order(job: JobConfig, spec: CertSpec, solver: Solver, thumbprint: str) -> None:
    """Fail the certificate, before any order, if a load balancer cannot serve its tokens
    (with ``[lb] addresses`` configured and ``preflight`` not turned off)."""
    names = [n for n in spec.names if not n.startswith("*.")]
    if spec.challenge != HTTP_01 or not job.lb.addresses or not job.lb.preflight or not names:
        return
    results = await probe(names, solver, thumbprint, job.lb.endpoints(), job.lb.port)
    failed = [r for r in results if not r.ok]
    if failed:
        raise ChallengeError("preflight (CA not asked): "
                             + "; ".join(f"{r.lb} for {r.name}: {r.error}" for r in failed))
