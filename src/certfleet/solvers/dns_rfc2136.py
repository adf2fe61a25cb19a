"""dns-01 (RFC 8555 §8.4) by dynamic update (RFC 2136) signed with TSIG (RFC 8945).

Touches one DNS server, the primary that takes the updates (UDP and TCP): asks it where a
record lives (CNAME, SOA) and sends it TSIG-signed UPDATEs that add, and later delete,
exactly the TXT values this solver made. Then it reads (never writes) the zone's
authoritative servers, found by NS or given as ``nameservers``, to wait until every one
of them serves the values. Holds the TSIG secret only as a key object that is never
printed: no message or log line carries it.

Per challenge::

    _acme-challenge.<name without *.>  --CNAME...-->  record  (delegated validation)
    record --SOA at the server--> zone;  UPDATE zone: add record TTL TXT "value"
    ready():    every value at every authoritative server (bounded wait)
    cleanup():  UPDATE zone: delete record TXT "value" (that value only)

Values are added, never replaced, so a wildcard and its base name (two values at one
name) and concurrent orders coexist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Sequence

import dns.asyncquery
import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from ..errors import ChallengeError, ConfigError, safe_text
from ..protocol.challenges import DNS_01, dns01_txt_value
from ..protocol.frozen import frozen
from . import Solver
from .dns_common import (
    Clock,
    PerTask,
    Sleep,
    TxtCheck,
    describe,
    find_zone,
    follow_cname,
    record_name,
    show,
    wait_for_txt,
    zone_servers,
)
from .dns_server import Server, server_text

log = logging.getLogger(__name__)

ALGORITHMS = {
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}
_TSIG_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (dns.tsig.PeerBadKey, "TSIG key not accepted (BADKEY)"),
    (dns.tsig.PeerBadSignature,
     "TSIG signature not accepted (BADSIG): wrong secret or algorithm for this key name?"),
    (dns.tsig.PeerBadTime, "TSIG time not accepted (BADTIME): is this host's clock right?"),
    (dns.tsig.PeerError, "TSIG error reported by the server"),
    (dns.tsig.BadSignature, "the answer's TSIG signature does not verify"),
)
_RCODES = {
    dns.rcode.REFUSED: "REFUSED (is this key allowed to update this name?)",
    dns.rcode.NOTAUTH: "NOTAUTH (not authoritative for the zone, or TSIG not accepted)",
    dns.rcode.NOTZONE: "NOTZONE (the name is not in the zone)",
    dns.rcode.SERVFAIL: "SERVFAIL",
}


@frozen
class _Added:
    label: str
    record: dns.name.Name
    zone: dns.name.Name
    value: str


def make_key(name: str, secret: str, algorithm: str = "hmac-sha256") -> dns.tsig.Key:
    """A TSIG key from its name, base64 secret and algorithm; ConfigError if unusable.

    Errors name the key, never the secret.
    """
    if algorithm.lower() not in ALGORITHMS:
        raise ConfigError(f"TSIG key {safe_text(name)!r}: unknown algorithm "
                          f"{safe_text(algorithm)!r}; choose one of " + ", ".join(ALGORITHMS))
    try:
        raw = base64.b64decode(secret.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"TSIG key {safe_text(name)!r}: the secret is not base64") from None
    if not raw:
        raise ConfigError(f"TSIG key {safe_text(name)!r}: the secret is empty")
    try:
        key_name = dns.name.from_text(name)
    except dns.exception.DNSException:
        raise ConfigError(f"TSIG key name {safe_text(name)!r} is not a DNS name") from None
    return dns.tsig.Key(key_name, raw, ALGORITHMS[algorithm.lower()])


def refusal(label: str, server: Server, zone: dns.name.Name, reason: str) -> ChallengeError:
    """The one message for an UPDATE the server did not carry out."""
    return ChallengeError(f"{label}: DNS update refused by {server_text(server)} for zone "
                          f"{show(zone)}: {reason}")


class RFC2136Solver(Solver):
    """dns-01 through RFC 2136 updates at ``server``, signed with one TSIG key.

    ``nameservers`` replaces the NS lookup of the propagation check (address, port pairs);
    otherwise each zone's NS addresses are queried at ``ns_port`` (53; a test server on
    another port gives its own). Waits at most ``propagation_timeout`` seconds in ``ready``,
    polling every ``poll_interval``; each query or update waits ``query_timeout``.
    """

    challenge_type = DNS_01

    def __init__(
        self, server: Server, key_name: str, key_secret: str,
        key_algorithm: str = "hmac-sha256", *, nameservers: Sequence[Server] | None = None,
        ns_port: int = 53, ttl: int = 60, propagation_timeout: float = 120.0,
        poll_interval: float = 2.0, query_timeout: float = 5.0,
        sleep: Sleep = asyncio.sleep, clock: Clock | None = None,
    ) -> None:
        self.server = server
        self.key_name = key_name
        self.key_algorithm = key_algorithm.lower()
        self._key = make_key(key_name, key_secret, key_algorithm)
        self.nameservers = tuple(nameservers) if nameservers else None
        self.ns_port, self.ttl = ns_port, ttl
        self.propagation_timeout, self.poll_interval = propagation_timeout, poll_interval
        self.query_timeout = query_timeout
        self._sleep, self._clock = sleep, clock
        self._added: dict[tuple[str, str], _Added] = {}
        self._unchecked: PerTask[_Added] = PerTask()

    def __repr__(self) -> str:  # the key object's own repr shows its secret
        return (f"RFC2136Solver(server={server_text(self.server)!r}, "
                f"key_name={self.key_name!r}, key_algorithm={self.key_algorithm!r})")

    # -- present ---------------------------------------------------------------------------

    async def present(self, name: str, token: str, key_auth: str) -> None:
        try:
            record = await follow_cname(record_name(name), self.server, self.query_timeout)
            zone = await find_zone(record, self.server, self.query_timeout)
        except ChallengeError as exc:
            raise ChallengeError(f"{name}: {exc}") from None
        value = dns01_txt_value(key_auth)
        added = _Added(name, record, zone, value)
        await self._update(added, lambda u: u.add(record, self.ttl, _txt(value)))
        self._added[(name, token)] = added
        self._unchecked.add(added)
        log.info("%s: added TXT %s in zone %s at %s", name, show(record), show(zone),
                 server_text(self.server))

    async def _update(self, added: _Added, change: Callable[[dns.update.UpdateMessage], None],
                      ) -> None:
        """Send one signed UPDATE for ``added.zone``; any failure is one ChallengeError."""
        update = dns.update.UpdateMessage(added.zone, keyring=self._key)
        change(update)
        host, port = self.server
        try:
            response = await dns.asyncquery.tcp(update, host, timeout=self.query_timeout,
                                                port=port)
        except Exception as exc:  # what reaches the message is chosen below, never the key
            for kind, reason in _TSIG_ERRORS:
                if isinstance(exc, kind):
                    raise refusal(added.label, self.server, added.zone, reason) from None
            if isinstance(exc, OSError | dns.exception.DNSException):
                raise ChallengeError(
                    f"{added.label}: DNS update for zone {show(added.zone)} to "
                    f"{server_text(self.server)} failed: {describe(exc)}") from None
            raise
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            reason = _RCODES.get(rcode, dns.rcode.to_text(rcode))
            raise refusal(added.label, self.server, added.zone, reason)

    # -- ready -----------------------------------------------------------------------------

    async def ready(self) -> None:
        """Wait until every value this order presented is at every server."""
        pending = self._unchecked.take()
        if not pending:
            return
        by_record: dict[dns.name.Name, list[_Added]] = {}
        for added in pending:
            by_record.setdefault(added.record, []).append(added)
        servers_of: dict[dns.name.Name, tuple[Server, ...]] = {}
        checks = []
        for record, items in by_record.items():
            zone = items[0].zone
            if zone not in servers_of:
                try:
                    servers_of[zone] = self.nameservers or await zone_servers(
                        zone, self.server, self.ns_port, self.query_timeout)
                except ChallengeError as exc:
                    raise ChallengeError(f"{items[0].label}: {exc}") from None
            checks.append(TxtCheck(items[0].label, record, frozenset(a.value for a in items),
                                   servers_of[zone]))
        await wait_for_txt(checks, timeout=self.propagation_timeout,
                           interval=self.poll_interval, query_timeout=self.query_timeout,
                           sleep=self._sleep, clock=self._clock)

    # -- cleanup ---------------------------------------------------------------------------

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        """Delete the one TXT value ``present`` added (others at that name stay)."""
        added = self._added.pop((name, token), None)
        if added is None:
            return
        self._unchecked.discard(added)
        await self._update(added, lambda u: u.delete(added.record, _txt(added.value)))
        log.info("%s: deleted TXT %s in zone %s", name, show(added.record), show(added.zone))


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value.encode()])
