"""The http-01 responder's limits, the table of open connections they are checked against,
and why each is what it is.

Touches nothing but its own bookkeeping (and the log, for the report of dropped
connections); the responder (``http_responder``) calls ``admit`` for each accepted socket
before anything else is done with it, and closes what it is told to.

* Deadlines. The whole head must arrive within ``header_timeout`` (10 s) of the accept,
  and no more than ``idle_timeout`` (5 s) may pass without a byte: slowloris clients that
  trickle their headers, and clients that send nothing, are closed silently. An honest
  client (a CA, nginx proxying) sends its head in one write right after connecting;
  Pebble gives a validation request 15 s in all, Let's Encrypt about as much.
* Per client (``per_client``, 64 connections per IPv4 address or IPv6 /64, an IPv4-mapped
  IPv6 address counting as its IPv4 address): a new connection over it is **closed at
  once**. That client already holds its share; closing the newcomer keeps its earlier
  requests and costs nothing, while dropping its oldest instead would let one client churn
  through the whole table. This cap is what keeps a load balancer's quota its own when the
  flood comes from elsewhere, even from the same host: the load balancers proxy from their
  own address and, being nginx, connect only once they hold a complete request head, so
  their connections last milliseconds. 64 is far above the few requests a CA makes per
  name at once (Pebble 3, Let's Encrypt one per perspective).
* Demand. A run with hundreds of orders in flight has hundreds of tokens being validated
  at once, and the CA (or the load balancers proxying it, all from one address each) asks
  for each from every perspective within moments: both caps grow with the tokens presented
  (``PER_TOKEN`` connections a token, a client; the total that plus one ordinary client's
  share), never beyond the descriptor budget below.
* In total (``capacity``: ``max_connections``, 512, or the demand's, but at most half the
  process's RLIMIT_NOFILE soft limit less ``backlog``): a new connection over it is **admitted, and
  the oldest idle connection is dropped**, chosen from the client holding the most idle
  connections. Idle means still waiting for its head, or already answered and lingering;
  a connection being answered is never dropped (if every one is, the newcomer is closed).
  Closing newcomers instead would let a flood spread over many addresses hold every slot,
  renewing each as it times out, and shut the CA out for as long as it lasts; dropping
  the oldest idle one means an honest
  request, complete within milliseconds of its connect, is dropped only if the flood
  cycles through the whole table faster than that, and choosing from the heaviest client
  first spares the clients with few connections (a load balancer, a CA).
* Descriptors. A connection is counted from its accept() on, and one refused is closed
  (with a reset) before the next accept: the responder's descriptors are its listening
  sockets, at most ``capacity`` connections, and dropped ones the event loop has not yet
  closed (at most one accept batch, ``backlog``). Half the limit keeps the other half for
  the rest of the process (the ACME client, deploys, logs) and accept() from failing with
  EMFILE; if it ever does fail so, accepting pauses for a second and that is reported.
* Dropped and timed-out connections are not requests and are not logged one by one (that
  would let a flood fill the log): they are counted and reported in one line at most
  every ``report_every`` seconds, and at stop.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import resource
from collections.abc import Callable

from ..protocol.frozen import frozen
from .http_head import MAX_HEAD

log = logging.getLogger("certfleet.solvers.http_responder")   # the responder's own log

# Connections one client may need for one token under validation: Let's Encrypt asks from
# up to five perspectives, all arriving from one load balancer's address when proxied
# (Pebble asks three times); one more for a retry.
PER_TOKEN = 6


@frozen
class Limits:
    """Every bound of the responder; the defaults are the production values (module doc)."""

    max_head: int = MAX_HEAD
    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    write_timeout: float = 10.0
    linger: float = 2.0
    linger_bytes: int = 64 * 1024
    per_client: int = 64
    max_connections: int = 512
    backlog: int = 128
    report_every: float = 10.0


def descriptor_budget(limits: Limits, nofile: int | None = None) -> int:
    """Connections the descriptors allow: half the RLIMIT_NOFILE soft limit less the accept
    batch (and never fewer than 16)."""
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile == resource.RLIM_INFINITY or nofile <= 0:
        nofile = 1 << 20
    return max(16, nofile // 2 - limits.backlog)


def connection_budget(limits: Limits, nofile: int | None = None) -> int:
    """How many connections may be open at once with no token presented:
    ``max_connections``, within the descriptor budget."""
    return min(limits.max_connections, descriptor_budget(limits, nofile))


def client_key(address: str) -> str:
    """What the per-client cap counts: the IPv4 address, or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Conn:
    """One accepted connection; ``transport`` is set once the event loop has wrapped it."""

    __slots__ = ("address", "client", "since", "transport")

    def __init__(self, address: str, client: str, since: float) -> None:
        self.address, self.client, self.since = address, client, since
        self.transport: asyncio.WriteTransport | None = None


class ConnectionTable:
    """The open connections by client, and the idle (droppable) ones, oldest first."""

    def __init__(self, limits: Limits, budget: int,
                 demand: Callable[[], int] | None = None) -> None:
        self.limits, self.budget = limits, budget
        self.demand = demand or (lambda: 0)
        self._conns: dict[str, dict[Conn, None]] = {}
        self._idle: dict[str, dict[Conn, None]] = {}
        self._open = 0
        self._dropped: collections.Counter[str] = collections.Counter()
        self._report: asyncio.TimerHandle | None = None

    @property
    def open(self) -> int:
        return self._open

    @property
    def capacity(self) -> int:
        """Connections at once: the larger of ``max_connections`` and the demand's (room
        for the tokens' validations and one ordinary client), within the budget."""
        wanted = PER_TOKEN * self.demand() + self.limits.per_client
        return min(self.budget, max(self.limits.max_connections, wanted))

    @property
    def per_client(self) -> int:
        """Connections one client may hold: ``per_client``, or the tokens' share."""
        return min(self.capacity, max(self.limits.per_client, PER_TOKEN * self.demand()))

    def all(self) -> list[Conn]:
        return [conn for conns in self._conns.values() for conn in conns]

    def admit(self, address: str, now: float) -> Conn | None:
        """Count a just-accepted connection in, or None: close it at once. May drop the
        oldest idle connection of the heaviest client to make room (module doc)."""
        client = client_key(address)
        if len(self._conns.get(client, ())) >= self.per_client:
            self.count("over the per-client cap, closed at once")
            return None
        if self._open >= self.capacity:
            victim = self._victim()
            if victim is None or victim.transport is None:
                self.count("over the connection budget, closed at once")
                return None
            self.forget(victim)
            victim.transport.abort()
            self.count("idle, dropped for a newer connection")
        conn = Conn(address, client, now)
        self._conns.setdefault(client, {})[conn] = None
        self._open += 1
        return conn

    def _victim(self) -> Conn | None:
        """The oldest idle connection of the client with the most idle connections."""
        best: Conn | None = None
        best_key = (0, 0.0)
        for conns in self._idle.values():
            oldest = next(iter(conns))
            key = (len(conns), -oldest.since)
            if best is None or key > best_key:
                best, best_key = oldest, key
        return best

    def forget(self, conn: Conn) -> None:
        """The connection is closed (idempotent)."""
        self.busy(conn)
        conns = self._conns.get(conn.client)
        if conns is not None and conn in conns:
            del conns[conn]
            self._open -= 1
            if not conns:
                del self._conns[conn.client]

    def busy(self, conn: Conn) -> None:
        """Being answered: not to be dropped."""
        conns = self._idle.get(conn.client)
        if conns is not None:
            conns.pop(conn, None)
            if not conns:
                del self._idle[conn.client]

    def idle(self, conn: Conn) -> None:
        """Waiting for its head, or answered and lingering: may be dropped."""
        if conn.transport is not None and conn in self._conns.get(conn.client, ()):
            self._idle.setdefault(conn.client, {})[conn] = None

    def count(self, why: str) -> None:
        self._dropped[why] += 1
        if self._report is None:
            self._report = asyncio.get_running_loop().call_later(
                self.limits.report_every, self.report)

    def report(self) -> None:
        """One line for the connections closed without a request since the last one."""
        if self._report is not None:
            self._report.cancel()
            self._report = None
        if self._dropped:
            counts = ", ".join(f"{n} {why}" for why, n in sorted(self._dropped.items()))
            log.warning("http-01 responder: connections without a request: %s "
                        "(%d open now, at most %d, %d per client)", counts, self._open,
                        self.capacity, self.per_client)
            self._dropped.clear()
