"""What the dns-01 solvers share: record names, servers, lookups and the propagation wait.

Touches only DNS servers over UDP (TCP when an answer is truncated): the server it is
given, queried without recursion; the system's resolver only for a name that server is
not authoritative for (a CNAME owner or a nameserver in someone else's zone). Sends no
updates and holds no keys.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from ..errors import ChallengeError, safe_text
from ..protocol.challenges import dns01_record_name
from ..protocol.frozen import frozen
from .dns_server import Server, server_text

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

MAX_CNAME_HOPS = 8
_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}


def to_name(text: str) -> dns.name.Name:
    """An absolute DNS name, or ChallengeError."""
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise ChallengeError(f"{safe_text(text)}: not a valid DNS name: {exc}") from None


def record_name(identifier: str) -> dns.name.Name:
    """RFC 8555 §8.4: where the TXT record for ``identifier`` goes (``*.`` dropped)."""
    return to_name(dns01_record_name(identifier))


def show(name: dns.name.Name) -> str:
    return safe_text(name.to_text(omit_final_dot=True))


def describe(exc: BaseException) -> str:
    """A short cause for a failed query."""
    if isinstance(exc, dns.exception.Timeout):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return safe_text(str(exc) or type(exc).__name__, 120)


async def query(name: dns.name.Name, rdtype: str, server: Server,
                timeout: float) -> dns.message.Message:
    """Ask ``server`` directly, without recursion; TCP when the UDP answer is truncated."""
    request = dns.message.make_query(name, rdtype)
    request.flags &= ~dns.flags.RD
    response, _ = await dns.asyncquery.udp_with_fallback(request, server[0], timeout=timeout,
                                                         port=server[1])
    return response


def authoritative(response: dns.message.Message) -> bool:
    ok = response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    return ok and bool(response.flags & dns.flags.AA)


def answer_rdatas(response: dns.message.Message, name: dns.name.Name, rdtype: str) -> list[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    out: list[str] = []
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == wanted:
            for rdata in rrset:
                if wanted == dns.rdatatype.TXT:
                    out.append(b"".join(rdata.strings).decode("ascii", "replace"))
                else:
                    out.append(rdata.to_text())
    return out


async def lookup(name: dns.name.Name, rdtype: str, server: Server,
                 timeout: float) -> list[str]:
    """``name``'s records from ``server`` if it is authoritative, else from the resolver."""
    try:
        response = await query(name, rdtype, server, timeout)
        if authoritative(response):
            return answer_rdatas(response, name, rdtype)
    except (OSError, dns.exception.DNSException) as exc:
        raise ChallengeError(f"{show(name)} {rdtype}: no answer from {server_text(server)}: "
                             f"{describe(exc)}") from None
    try:
        resolver = dns.asyncresolver.Resolver()  # reads /etc/resolv.conf
        resolver.lifetime = timeout
        answer = await resolver.resolve(name, rdtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return []
    except dns.exception.DNSException as exc:
        raise ChallengeError(f"{show(name)} {rdtype}: {server_text(server)} is not "
                             f"authoritative and the resolver failed: {describe(exc)}") from None
    return [r.to_text() for r in answer.rrset or ()]


async def follow_cname(record: dns.name.Name, server: Server, timeout: float) -> dns.name.Name:
    """The end of the CNAME chain at ``record`` (delegated validation), bounded."""
    chain = [record]
    for _ in range(MAX_CNAME_HOPS):
        targets = await lookup(chain[-1], "CNAME", server, timeout)
        if not targets:
            return chain[-1]
        target = to_name(targets[0])
        if target in chain:
            raise ChallengeError(f"{show(record)}: CNAME loop: "
                                 + " -> ".join(show(n) for n in [*chain, target]))
        chain.append(target)
    raise ChallengeError(f"{show(record)}: more than {MAX_CNAME_HOPS} CNAMEs in a row")


async def find_zone(name: dns.name.Name, server: Server, timeout: float) -> dns.name.Name:
    """The zone ``server`` holds ``name`` in: the closest enclosing SOA it answers for."""
    candidate = name
    while candidate != dns.name.root:
        try:
            response = await query(candidate, "SOA", server, timeout)
        except (OSError, dns.exception.DNSException) as exc:
            raise ChallengeError(f"{show(name)}: looking for its zone: no answer from "
                                 f"{server_text(server)}: {describe(exc)}") from None
        if authoritative(response):
            for rrset in (*response.answer, *response.authority):
                if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
                    return rrset.name
        candidate = candidate.parent()
    raise ChallengeError(f"{show(name)}: {server_text(server)} is authoritative for no zone "
                         "holding this name")


async def zone_servers(zone: dns.name.Name, server: Server, port: int,
                       timeout: float) -> tuple[Server, ...]:
    """Every address of every NS of ``zone``, to be queried at ``port``."""
    ns_names = [to_name(t) for t in await lookup(zone, "NS", server, timeout)]
    if not ns_names:
        raise ChallengeError(f"zone {show(zone)}: no NS records at {server_text(server)}")
    found: list[Server] = []
    for ns in ns_names:
        for rdtype in ("A", "AAAA"):
            try:
                addresses = await lookup(ns, rdtype, server, timeout)
            except ChallengeError as exc:
                log.warning("zone %s: nameserver %s: %s", show(zone), show(ns), exc)
                continue
            found.extend((a, port) for a in addresses if (a, port) not in found)
    if not found:
        raise ChallengeError(f"zone {show(zone)}: no address for its nameservers "
                             + ", ".join(show(n) for n in ns_names))
    return tuple(found)


class PerTask(Generic[T]):
    """What the current task (one order) presented and its ``ready()`` has not checked yet.

    One solver serves concurrent orders (one task each): an order's ``ready()`` must wait
    for its own records, neither skip them because another order took them nor fail on
    another order's.
    """

    def __init__(self) -> None:
        self._by_task: weakref.WeakKeyDictionary[asyncio.Task[Any], list[T]] = (
            weakref.WeakKeyDictionary())

    @staticmethod
    def _task() -> asyncio.Task[Any]:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a solver must be called from an asyncio task")
        return task

    def add(self, item: T) -> None:
        self._by_task.setdefault(self._task(), []).append(item)

    def take(self) -> list[T]:
        return self._by_task.pop(self._task(), [])

    def discard(self, item: T) -> None:
        items = self._by_task.get(self._task(), [])
        if item in items:
            items.remove(item)


@frozen
class TxtCheck:
    """``values`` must be in ``record``'s TXT RRset at every one of ``servers``."""

    label: str
    record: dns.name.Name
    values: frozenset[str]
    servers: tuple[Server, ...]


async def _missing_at(check: TxtCheck, server: Server, timeout: float) -> str | None:
    try:
        response = await query(check.record, "TXT", server, timeout)
    except OSError as exc:
        if exc.errno in _NO_ROUTE:  # e.g. an IPv6 nameserver seen from an IPv4-only host
            log.warning("%s: cannot check %s: %s", check.label, server_text(server),
                        describe(exc))
            return None
        return f"no answer ({describe(exc)})"
    except dns.exception.DNSException as exc:
        return f"no answer ({describe(exc)})"
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return f"answered {dns.rcode.to_text(response.rcode())}"
    missing = check.values - set(answer_rdatas(response, check.record, "TXT"))
    if not missing:
        return None
    shown = ", ".join(f'"{safe_text(v, 60)}"' for v in sorted(missing)[:3])
    return f"missing {len(missing)} of {len(check.values)} values ({shown})"


async def wait_for_txt(
    checks: Sequence[TxtCheck], *, timeout: float, interval: float, query_timeout: float,
    sleep: Sleep = asyncio.sleep, clock: Clock | None = None,
) -> None:
    """Poll every server of every check until all values are there; bounded by ``timeout``."""
    now = clock or asyncio.get_running_loop().time
    deadline = now() + timeout
    pairs = [(check, server) for check in checks for server in check.servers]
    while True:
        each = max(0.1, min(query_timeout, deadline - now()))
        results = await asyncio.gather(*(_missing_at(c, s, each) for c, s in pairs))
        failed = [(c, s, why) for (c, s), why in zip(pairs, results, strict=True) if why]
        if not failed:
            return
        if now() + interval > deadline:
            check, server, why = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise ChallengeError(f"{check.label}: TXT {show(check.record)} did not appear at "
                                 f"{server_text(server)} within {timeout:g} s: {why}{more}")
        log.debug("waiting for TXT records at %d server(s)", len({s for _, s, _ in failed}))
        await sleep(interval)
