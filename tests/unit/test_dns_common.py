"""certfleet.solvers.dns_common: record names, server parsing, lookups and the propagation
wait, against an in-memory fake of DNS (no sockets). ``FakeDns`` is shared with the other
test_dns_* modules."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import dns.update
import pytest

from certfleet.errors import ChallengeError, ConfigError
from certfleet.solvers import dns_common
from certfleet.solvers.dns_common import (
    TxtCheck,
    find_zone,
    follow_cname,
    record_name,
    to_name,
    wait_for_txt,
    zone_servers,
)
from certfleet.solvers.dns_server import Server, parse_server, server_text

PRIMARY: Server = ("192.0.2.53", 53)


class FakeDns:
    """Authoritative data for a few zones, answered like one server would (AA, NXDOMAIN,
    REFUSED outside its zones); per-server TXT overrides model lagging secondaries."""

    def __init__(self) -> None:
        self.zones = {"example.com.", "example.org.", "delegate.example.net."}
        self.records: dict[tuple[str, str], list[str]] = {
            ("example.com.", "SOA"): ["ns1.example.com. h.example.com. 1 2 3 4 5"],
            ("example.org.", "SOA"): ["ns1.example.org. h.example.org. 1 2 3 4 5"],
            ("delegate.example.net.", "SOA"): ["ns1.delegate.example.net. h. 1 2 3 4 5"],
            ("example.com.", "NS"): ["ns1.example.com.", "ns2.example.com."],
            ("example.org.", "NS"): ["ns1.example.org."],
            ("delegate.example.net.", "NS"): ["ns1.delegate.example.net."],
            ("ns1.example.com.", "A"): ["192.0.2.1"],
            ("ns2.example.com.", "A"): ["192.0.2.2"],
            ("ns2.example.com.", "AAAA"): ["2001:db8::2"],
            ("ns1.example.org.", "A"): ["192.0.2.3"],
            ("ns1.delegate.example.net.", "A"): ["192.0.2.4"],
            ("_acme-challenge.www.example.org.", "CNAME"): ["x.delegate.example.net."],
            ("_acme-challenge.loop.example.org.", "CNAME"): ["_acme-challenge.loop2.example.org."],
            ("_acme-challenge.loop2.example.org.", "CNAME"): ["_acme-challenge.loop.example.org."],
        }
        self.hidden: dict[Server, set[str]] = {}  # TXT values a server does not have (yet)
        self.silent: set[Server] = set()  # servers that never answer
        self.queries: list[tuple[str, str, Server]] = []
        self.updates: list[dns.update.UpdateMessage] = []
        self.update_error: Exception | None = None
        self.update_rcode = dns.rcode.NOERROR

    def zone_of(self, name: str) -> str | None:
        labels = name.split(".")
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            if candidate in self.zones:
                return candidate
        return None

    async def query(self, name: dns.name.Name, rdtype: str, server: Server,
                    timeout: float) -> dns.message.Message:
        self.queries.append((name.to_text(), rdtype, server))
        if server in self.silent:
            raise dns.exception.Timeout
        request = dns.message.make_query(name, rdtype)
        response = dns.message.make_response(request)
        zone = self.zone_of(name.to_text())
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        values = list(self.records.get((name.to_text(), rdtype), []))
        if rdtype == "TXT":
            values = [v for v in values if v not in self.hidden.get(server, set())]
            values = [f'"{v}"' for v in values]
        if values:
            response.answer.append(dns.rrset.from_text_list(name, 60, "IN", rdtype, values))
        else:
            exists = any(key[0] == name.to_text() for key in self.records)
            if not exists and name.to_text() != zone:
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa = self.records[(zone, "SOA")]
            response.authority.append(dns.rrset.from_text_list(zone, 60, "IN", "SOA", soa))
        return response

    async def tcp(self, update: dns.message.Message, where: str, timeout: float | None = None,
                  port: int = 53, **kwargs: object) -> dns.message.Message:
        assert isinstance(update, dns.update.UpdateMessage)
        self.updates.append(update)
        if self.update_error is not None:
            raise self.update_error
        response = dns.message.make_response(update)
        response.set_rcode(self.update_rcode)
        if self.update_rcode != dns.rcode.NOERROR:
            return response
        for rrset in update.update:
            key = (rrset.name.to_text(), "TXT")
            values = self.records.setdefault(key, [])
            for rdata in rrset:
                value = b"".join(rdata.strings).decode()
                if rrset.rdclass == dns.rdataclass.IN and value not in values:
                    values.append(value)
                elif rrset.deleting == dns.rdataclass.NONE and value in values:
                    values.remove(value)
        return response

    def txt(self, name: str) -> list[str]:
        return sorted(self.records.get((name if name.endswith(".") else name + ".", "TXT"), []))


def install_fake(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Route the solvers' queries and updates to a new FakeDns; no resolver, no sockets."""
    fake = FakeDns()
    monkeypatch.setattr(dns_common, "query", fake.query)
    monkeypatch.setattr(dns.asyncquery, "tcp", fake.tcp)

    def no_resolver(*args: object, **kwargs: object) -> None:
        raise AssertionError("the system resolver must not be used here")

    monkeypatch.setattr(dns.asyncresolver, "Resolver", no_resolver)
    return fake


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    return install_fake(monkeypatch)


# -- names and servers --------------------------------------------------------------------


@pytest.mark.parametrize(("identifier", "record"), [
    ("example.com", "_acme-challenge.example.com."),
    ("*.example.com", "_acme-challenge.example.com."),
    ("www.example.com", "_acme-challenge.www.example.com."),
    ("*.www.example.com", "_acme-challenge.www.example.com."),
    ("xn--bcher-kva.example", "_acme-challenge.xn--bcher-kva.example."),
])
def test_record_name(identifier: str, record: str) -> None:
    assert record_name(identifier) == dns.name.from_text(record)


def test_wildcard_and_base_share_one_record() -> None:
    assert record_name("*.example.com") == record_name("example.com")


def test_bad_name_is_a_challenge_error() -> None:
    with pytest.raises(ChallengeError, match="not a valid DNS name"):
        to_name("a" * 64 + ".example.com")


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.1", ("192.0.2.1", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("[::1]:5353", ("::1", 5353)),
    ("[2001:db8::1]", ("2001:db8::1", 53)),
    ("2001:db8::1", ("2001:db8::1", 53)),
    (" 10.0.0.1:1 ", ("10.0.0.1", 1)),
])
def test_parse_server(text: str, expected: Server) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["ns1.example.com", "ns1.example.com:53", "192.0.2.1:0",
                                  "192.0.2.1:65536", "192.0.2.1:dns", "[::1]x", "",
                                  "1.2.3.4:\u00b2"])
def test_parse_server_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="DNS server"):
        parse_server(text)


def test_server_text() -> None:
    assert server_text(("127.0.0.1", 5353)) == "127.0.0.1:5353"
    assert server_text(("::1", 53)) == "[::1]:53"
    assert parse_server(server_text(("2001:db8::1", 8053))) == ("2001:db8::1", 8053)


# -- lookups ------------------------------------------------------------------------------


def test_follow_cname(fake_dns: FakeDns) -> None:
    start = record_name("www.example.org")
    assert asyncio.run(follow_cname(start, PRIMARY, 1)) == to_name("x.delegate.example.net")
    plain = record_name("example.com")
    assert asyncio.run(follow_cname(plain, PRIMARY, 1)) == plain


def test_cname_loop_is_refused(fake_dns: FakeDns) -> None:
    with pytest.raises(ChallengeError, match=r"CNAME loop: _acme-challenge.loop.example.org -> "
                       "_acme-challenge.loop2.example.org -> _acme-challenge.loop.example.org"):
        asyncio.run(follow_cname(record_name("loop.example.org"), PRIMARY, 1))


def test_cname_chain_is_bounded(fake_dns: FakeDns) -> None:
    for i in range(20):
        fake_dns.records[(f"c{i}.example.com.", "CNAME")] = [f"c{i + 1}.example.com."]
    with pytest.raises(ChallengeError, match="more than 8 CNAMEs"):
        asyncio.run(follow_cname(to_name("c0.example.com"), PRIMARY, 1))


@pytest.mark.parametrize(("name", "zone"), [
    ("_acme-challenge.example.com", "example.com"),
    ("_acme-challenge.a.b.c.example.com", "example.com"),
    ("example.org", "example.org"),
    ("x.delegate.example.net", "delegate.example.net"),
])
def test_find_zone(fake_dns: FakeDns, name: str, zone: str) -> None:
    assert asyncio.run(find_zone(to_name(name), PRIMARY, 1)) == to_name(zone)


def test_find_zone_outside_the_servers_zones(fake_dns: FakeDns) -> None:
    with pytest.raises(ChallengeError, match=r"_acme-challenge.example.net: 192.0.2.53:53 is "
                       "authoritative for no zone holding this name"):
        asyncio.run(find_zone(to_name("_acme-challenge.example.net"), PRIMARY, 1))


def test_find_zone_server_silent(fake_dns: FakeDns) -> None:
    fake_dns.silent.add(PRIMARY)
    with pytest.raises(ChallengeError, match=r"no answer from 192\.0\.2\.53:53: timed out"):
        asyncio.run(find_zone(to_name("_acme-challenge.example.com"), PRIMARY, 1))


def test_zone_servers_every_address_at_the_given_port(fake_dns: FakeDns) -> None:
    servers = asyncio.run(zone_servers(to_name("example.com"), PRIMARY, 5353, 1))
    assert servers == (("192.0.2.1", 5353), ("192.0.2.2", 5353), ("2001:db8::2", 5353))


def test_zone_servers_none(fake_dns: FakeDns) -> None:
    del fake_dns.records[("example.org.", "NS")]
    with pytest.raises(ChallengeError,
                       match=r"zone example\.org: no NS records at 192\.0\.2\.53:53"):
        asyncio.run(zone_servers(to_name("example.org"), PRIMARY, 53, 1))


# -- the propagation wait -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _check(values: set[str], servers: tuple[Server, ...]) -> TxtCheck:
    return TxtCheck("*.example.com", to_name("_acme-challenge.example.com"),
                    frozenset(values), servers)


def test_wait_returns_when_every_server_has_every_value(fake_dns: FakeDns) -> None:
    fake_dns.records[("_acme-challenge.example.com.", "TXT")] = ["a", "b", "other"]
    a, b = ("192.0.2.1", 53), ("192.0.2.2", 53)
    fake_dns.hidden[b] = {"b"}
    clock = Clock()

    async def later(seconds: float) -> None:
        await clock.sleep(seconds)
        if clock.now >= 6:
            fake_dns.hidden.clear()  # the secondary caught up

    asyncio.run(wait_for_txt([_check({"a", "b"}, (a, b))], timeout=30, interval=2,
                             query_timeout=1, sleep=later, clock=clock))
    assert clock.sleeps == [2, 2, 2]


def test_wait_times_out_naming_record_server_and_missing(fake_dns: FakeDns) -> None:
    fake_dns.records[("_acme-challenge.example.com.", "TXT")] = ["a"]
    a, b = ("192.0.2.1", 53), ("192.0.2.2", 8053)
    fake_dns.hidden[b] = {"a"}
    clock = Clock()
    with pytest.raises(ChallengeError) as info:
        asyncio.run(wait_for_txt([_check({"a"}, (a, b))], timeout=10, interval=3,
                                 query_timeout=1, sleep=clock.sleep, clock=clock))
    assert str(info.value) == ('*.example.com: TXT _acme-challenge.example.com did not appear '
                               'at 192.0.2.2:8053 within 10 s: missing 1 of 1 values ("a")')
    assert clock.now <= 10


def test_wait_times_out_on_a_silent_server(fake_dns: FakeDns) -> None:
    fake_dns.records[("_acme-challenge.example.com.", "TXT")] = ["a"]
    dead = ("127.0.0.9", 53)
    fake_dns.silent.add(dead)
    clock = Clock()
    with pytest.raises(ChallengeError, match=r"did not appear at 127.0.0.9:53 within 4 s: "
                       r"no answer \(timed out\)"):
        asyncio.run(wait_for_txt([_check({"a"}, (PRIMARY, dead))], timeout=4, interval=1,
                                 query_timeout=1, sleep=clock.sleep, clock=clock))


class FakeResolver:
    """Stands in for dns.asyncresolver.Resolver: one CNAME outside the server's zones."""

    answers: ClassVar[dict[tuple[str, str], list[str]]] = {
        ("_acme-challenge.shop.example.test.", "CNAME"): ["x.delegate.example.net."],
    }
    asked: ClassVar[list[tuple[str, str]]] = []

    def __init__(self) -> None:
        self.lifetime = 0.0

    async def resolve(self, name: dns.name.Name, rdtype: str,
                      raise_on_no_answer: bool = True) -> object:
        self.asked.append((name.to_text(), rdtype))
        if name.to_text().endswith(".broken.test."):
            raise dns.resolver.NoNameservers
        values = self.answers.get((name.to_text(), rdtype))
        if values is None:
            raise dns.resolver.NXDOMAIN

        class Answer:
            rrset = dns.rrset.from_text_list(name, 60, "IN", rdtype, values)

        return Answer()


def test_cname_outside_the_servers_zones_comes_from_the_resolver(
        fake_dns: FakeDns, monkeypatch: pytest.MonkeyPatch) -> None:
    """Delegated validation where the customer's zone is hosted elsewhere: the server
    refuses the CNAME owner's name, so the system's resolver is asked for it."""
    monkeypatch.setattr(dns.asyncresolver, "Resolver", FakeResolver)
    FakeResolver.asked.clear()
    start = record_name("shop.example.test")
    assert asyncio.run(follow_cname(start, PRIMARY, 1)) == to_name("x.delegate.example.net")
    # The target is in the server's zone: asked there, not at the resolver.
    assert FakeResolver.asked == [("_acme-challenge.shop.example.test.", "CNAME")]
    assert asyncio.run(follow_cname(record_name("none.example.test"), PRIMARY, 1)) == \
        record_name("none.example.test")


def test_resolver_failure_is_a_challenge_error(fake_dns: FakeDns,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dns.asyncresolver, "Resolver", FakeResolver)
    with pytest.raises(ChallengeError, match=r"^_acme-challenge\.x\.broken\.test CNAME: "
                       r"192\.0\.2\.53:53 is not authoritative and the resolver failed: "):
        asyncio.run(follow_cname(record_name("x.broken.test"), PRIMARY, 1))
