"""certfleet.solvers.dns_rfc2136 against the in-memory FakeDns (no sockets): what is
updated where, add-not-replace, exact deletes, the propagation check, every failure as
one ChallengeError naming zone and server, and the TSIG secret in no message or log."""

from __future__ import annotations

import asyncio
import base64
import logging

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.tsig
import pytest

from certfleet.errors import ChallengeError, ConfigError
from certfleet.protocol.challenges import dns01_txt_value
from certfleet.solvers.dns_rfc2136 import RFC2136Solver, make_key

from .test_dns_common import PRIMARY, FakeDns, install_fake


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    return install_fake(monkeypatch)

SECRET = base64.b64encode(b"not-so-secret-test-key-32-bytes!").decode()
SECRET_FORMS = (SECRET, SECRET.rstrip("="), base64.b64decode(SECRET).decode(),
                base64.b64decode(SECRET).hex())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def solver(**kwargs: object) -> RFC2136Solver:
    clock = Clock()
    options: dict[str, object] = {"sleep": clock.sleep, "clock": clock, "poll_interval": 1,
                                  "propagation_timeout": 5, **kwargs}
    return RFC2136Solver(PRIMARY, "acme-key", SECRET, **options)  # type: ignore[arg-type]


def run_one(s: RFC2136Solver, name: str, token: str = "tok", *, ready: bool = False) -> str:
    """present (and ready, in the same task, as one order does); the TXT value."""
    key_auth = f"{token}.thumb"

    async def go() -> None:
        await s.present(name, token, key_auth)
        if ready:
            await s.ready()

    asyncio.run(go())
    return dns01_txt_value(key_auth)


def value_of(token: str = "tok") -> str:
    return dns01_txt_value(f"{token}.thumb")


def test_wildcard_and_base_name_add_two_values(fake_dns: FakeDns) -> None:
    s = solver()

    async def scenario() -> None:
        await s.present("*.example.com", "t1", "t1.thumb")
        await s.present("example.com", "t2", "t2.thumb")
        await s.ready()
        assert fake_dns.txt("_acme-challenge.example.com") == sorted(
            [dns01_txt_value("t1.thumb"), dns01_txt_value("t2.thumb")])
        await s.cleanup("*.example.com", "t1", "t1.thumb")
        assert fake_dns.txt("_acme-challenge.example.com") == [dns01_txt_value("t2.thumb")]
        await s.cleanup("example.com", "t2", "t2.thumb")

    asyncio.run(scenario())
    assert fake_dns.txt("_acme-challenge.example.com") == []
    adds, deletes = fake_dns.updates[:2], fake_dns.updates[2:]
    for update in adds:
        (rrset,) = update.update
        assert rrset.rdclass == dns.rdataclass.IN  # an add: nothing of the RRset is removed
        assert rrset.ttl == 60
        assert update.zone[0].name == dns.name.from_text("example.com")
    for update in deletes:
        (rrset,) = update.update
        assert rrset.deleting == dns.rdataclass.NONE  # delete this rdata only (RFC 2136 §2.5.4)
        assert len(rrset) == 1


def test_others_values_survive_cleanup(fake_dns: FakeDns) -> None:
    fake_dns.records[("_acme-challenge.example.com.", "TXT")] = ["someone-else"]
    s = solver()
    value = run_one(s, "example.com")
    assert fake_dns.txt("_acme-challenge.example.com") == sorted(["someone-else", value])
    asyncio.run(s.cleanup("example.com", "tok", "tok.thumb"))
    assert fake_dns.txt("_acme-challenge.example.com") == ["someone-else"]


def test_updates_are_signed_with_the_key(fake_dns: FakeDns) -> None:
    s = RFC2136Solver(PRIMARY, "acme-key", SECRET, "HMAC-SHA512")
    run_one(s, "example.com")
    (update,) = fake_dns.updates
    assert update.keyname == dns.name.from_text("acme-key")
    assert update.keyalgorithm == dns.tsig.HMAC_SHA512
    wire = update.to_wire()
    signed = dns.message.from_wire(wire, keyring={update.keyname: update.keyring},
                                   ignore_trailing=True)
    assert signed.had_tsig


def test_cname_is_followed_to_the_delegated_zone(fake_dns: FakeDns) -> None:
    s = solver()
    value = run_one(s, "www.example.org", ready=True)
    (update,) = fake_dns.updates
    assert update.zone[0].name == dns.name.from_text("delegate.example.net")
    assert fake_dns.txt("x.delegate.example.net") == [value]
    assert fake_dns.txt("_acme-challenge.www.example.org") == []
    # The check asked the delegated zone's own nameserver for the CNAME target.
    assert ("x.delegate.example.net.", "TXT", ("192.0.2.4", 53)) in fake_dns.queries


def test_ready_asks_every_ns_address_at_ns_port(fake_dns: FakeDns) -> None:
    s = solver(ns_port=5353)
    run_one(s, "example.com", ready=True)
    asked = {q[2] for q in fake_dns.queries if q[1] == "TXT"}
    assert asked == {("192.0.2.1", 5353), ("192.0.2.2", 5353), ("2001:db8::2", 5353)}


def test_ready_nameservers_override(fake_dns: FakeDns) -> None:
    s = solver(nameservers=[("127.0.0.1", 8053)])
    run_one(s, "example.com", ready=True)
    assert not [q for q in fake_dns.queries if q[1] == "NS"]
    assert {q[2] for q in fake_dns.queries if q[1] == "TXT"} == {("127.0.0.1", 8053)}


def test_ready_timeout_names_record_server_and_missing_value(fake_dns: FakeDns) -> None:
    s = solver(propagation_timeout=4)
    value = value_of()
    fake_dns.hidden[("192.0.2.2", 53)] = {value}
    with pytest.raises(ChallengeError) as info:
        run_one(s, "*.example.com", ready=True)
    assert str(info.value) == (f"*.example.com: TXT _acme-challenge.example.com did not appear "
                               f'at 192.0.2.2:53 within 4 s: missing 1 of 1 values ("{value}")')


def test_ready_twice_checks_only_new_records(fake_dns: FakeDns) -> None:
    s = solver()

    async def go() -> None:
        await s.present("example.com", "tok", "tok.thumb")
        await s.ready()
        fake_dns.queries.clear()
        await s.ready()

    asyncio.run(go())
    assert fake_dns.queries == []


def test_concurrent_orders_each_wait_for_their_own(fake_dns: FakeDns) -> None:
    """One solver, two orders in two tasks: each ready() checks its own records only."""
    s = solver(propagation_timeout=4)
    fake_dns.hidden[("192.0.2.1", 53)] = {value_of("slow")}
    order_b_presented = asyncio.Event()

    async def order(name: str, token: str) -> None:
        await s.present(name, token, f"{token}.thumb")
        if token == "slow":
            await order_b_presented.wait()  # B's record exists before A's ready() runs
        else:
            order_b_presented.set()
        await s.ready()

    async def both() -> list[BaseException | None]:
        return await asyncio.gather(order("a.example.com", "slow"),
                                    order("b.example.com", "fast"), return_exceptions=True)

    result_a, result_b = asyncio.run(both())
    # A's ready() checked A's record (B's did not take it away) and failed on it alone;
    # B's ready() did not wait for A's record, or it would have failed too.
    assert isinstance(result_a, ChallengeError)
    assert str(result_a).startswith("a.example.com: TXT _acme-challenge.a.example.com did not "
                                    "appear at 192.0.2.1:53")
    assert result_b is None


def test_cleanup_without_present_does_nothing(fake_dns: FakeDns) -> None:
    asyncio.run(solver().cleanup("example.com", "tok", "tok.thumb"))
    assert fake_dns.updates == []


def test_failed_present_leaves_nothing_to_clean(fake_dns: FakeDns) -> None:
    fake_dns.update_rcode = dns.rcode.REFUSED
    s = solver()

    async def go() -> None:
        with pytest.raises(ChallengeError):
            await s.present("example.com", "tok", "tok.thumb")
        fake_dns.update_rcode = dns.rcode.NOERROR
        await s.ready()
        await s.cleanup("example.com", "tok", "tok.thumb")

    asyncio.run(go())
    assert len(fake_dns.updates) == 1
    assert not [q for q in fake_dns.queries if q[1] == "TXT"]


REFUSED = "example.com: DNS update refused by 192.0.2.53:53 for zone example.com: "


@pytest.mark.parametrize(("error", "rcode", "message"), [
    (dns.tsig.PeerBadKey(), None, REFUSED + "TSIG key not accepted (BADKEY)"),
    (dns.tsig.PeerBadSignature(), None, REFUSED + "TSIG signature not accepted (BADSIG): "
     "wrong secret or algorithm for this key name?"),
    (dns.tsig.PeerBadTime(), None, REFUSED + "TSIG time not accepted (BADTIME): is this "
     "host's clock right?"),
    (dns.tsig.BadSignature(), None, REFUSED + "the answer's TSIG signature does not verify"),
    (None, dns.rcode.REFUSED, REFUSED + "REFUSED (is this key allowed to update this name?)"),
    (None, dns.rcode.NOTAUTH, REFUSED + "NOTAUTH (not authoritative for the zone, or TSIG not "
     "accepted)"),
    (None, dns.rcode.NOTZONE, REFUSED + "NOTZONE (the name is not in the zone)"),
    (None, dns.rcode.YXRRSET, REFUSED + "YXRRSET"),
    (dns.exception.Timeout(), None, "example.com: DNS update for zone example.com to "
     "192.0.2.53:53 failed: timed out"),
    (ConnectionRefusedError(111, "Connection refused"), None, "example.com: DNS update for zone "
     "example.com to 192.0.2.53:53 failed: Connection refused"),
])
def test_update_failures(fake_dns: FakeDns, caplog: pytest.LogCaptureFixture,
                         error: Exception | None, rcode: dns.rcode.Rcode | None,
                         message: str) -> None:
    caplog.set_level(logging.DEBUG)
    fake_dns.update_error = error
    if rcode is not None:
        fake_dns.update_rcode = rcode
    s = solver()
    with pytest.raises(ChallengeError) as info:
        run_one(s, "example.com")
    assert str(info.value) == message
    # dnspython's exception (and whatever it holds) is not chained into the report
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    _assert_no_secret(str(info.value), caplog.text, repr(s))


def test_lookup_failure_names_the_identifier(fake_dns: FakeDns) -> None:
    fake_dns.silent.add(PRIMARY)
    with pytest.raises(ChallengeError, match=r"^\*\.example\.com: _acme-challenge.example.com "
                       "CNAME: no answer from 192.0.2.53:53: timed out$"):
        run_one(solver(), "*.example.com")


@pytest.mark.parametrize(("secret", "algorithm", "match"), [
    ("not base64!", "hmac-sha256", "TSIG key 'acme-key': the secret is not base64"),
    ("", "hmac-sha256", "TSIG key 'acme-key': the secret is empty"),
    (SECRET, "hmac-md5", "TSIG key 'acme-key': unknown algorithm 'hmac-md5'; choose one of "
     "hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512"),
])
def test_bad_key_configuration(secret: str, algorithm: str, match: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_key("acme-key", secret, algorithm)
    assert str(info.value) == match
    if secret:
        assert secret not in str(info.value)


def test_secret_never_in_repr_messages_or_logs(fake_dns: FakeDns,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    s = solver(propagation_timeout=2)
    texts.append(repr(s))
    texts.append(str(s))
    fake_dns.hidden[("192.0.2.1", 53)] = {value_of()}
    with pytest.raises(ChallengeError) as info:
        run_one(s, "example.com", ready=True)
    texts.append(str(info.value))
    asyncio.run(s.cleanup("example.com", "tok", "tok.thumb"))
    for error in (dns.tsig.PeerBadKey(), dns.tsig.PeerBadSignature(), OSError("boom")):
        fake_dns.update_error = error
        with pytest.raises(ChallengeError) as info:
            run_one(s, "example.com")
        texts.append(str(info.value))
    _assert_no_secret(*texts, caplog.text)
    assert "acme-key" in repr(s)


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for form in SECRET_FORMS:
            assert form not in text
