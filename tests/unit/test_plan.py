"""The plan of a run: what is due and why, which targets lack the current version, and the
lines ``--dry-run`` prints. Pure: the store's snapshot and the time come in as values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certfleet.keytypes import KeyType
from certfleet.plan import CertPlan, describe, make_plans, plan_cert, renewal, stale_targets
from certfleet.protocol import ari
from certfleet.spec import CertSpec, HostSettings, JobConfig, Target
from certfleet.standing import of
from certfleet.state import CertState
from certfleet.store import Snapshot, VersionMeta

NAME = "www.example.com"
ISSUED = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=90)        # due by the lifetime rule at day 60
SERIAL = 0xABC
WEB1 = Target("/etc/certs", "web1")
WEB2 = Target("/srv/tls", "web2", "deploy")
LOCAL = Target("/var/certs")
SPEC = CertSpec((NAME, "example.com"), (WEB1, WEB2, LOCAL))


def meta(serial: int = SERIAL, names: tuple[str, ...] = (NAME, "example.com"),
         key_type: str = "ec256", not_after: datetime = EXPIRES) -> VersionMeta:
    return VersionMeta(version=3, names=names, key_type=key_type, serial=serial,
                       not_before=ISSUED.isoformat(), not_after=not_after.isoformat(),
                       issuer="CN=Test CA", aki="00ff", issued_at=ISSUED.isoformat(),
                       directory="https://ca/dir", order_url="https://ca/order/3")


def snap(state: CertState | None = None, *, version: VersionMeta | None = None,
         damage: str | None = None) -> Snapshot:
    return Snapshot(version, state or CertState(), damage)


def day(n: float) -> datetime:
    return ISSUED + timedelta(days=n)


# -- which targets lack the current version -------------------------------------------------------

def test_stale_targets_are_those_without_the_current_serial() -> None:
    state = (CertState().deployed(WEB1.key, day(1), SERIAL, 3)
             .deployed(WEB2.key, day(1), SERIAL - 1, 2)
             .deploy_failed(LOCAL.key, day(1), "disk full"))
    assert stale_targets(SPEC, of(meta(), state)) == (WEB2, LOCAL)
    state = state.deployed(WEB2.key, day(2), SERIAL, 3).deployed(LOCAL.key, day(2), SERIAL, 3)
    assert stale_targets(SPEC, of(meta(), state)) == ()
    assert stale_targets(SPEC, of(meta(), CertState())) == (WEB1, WEB2, LOCAL)


def test_nothing_is_stale_before_anything_was_issued() -> None:
    assert stale_targets(SPEC, of(None, CertState())) == ()


def test_the_serial_is_compared_as_stored_hex() -> None:
    """Records keep serials in lowercase hex: 0xABC is "abc", never "2748" or "ABC"."""
    state = CertState().deployed(WEB1.key, day(1), SERIAL, 3)
    assert state.deployed_serial(WEB1.key) == "abc"
    assert WEB1 not in stale_targets(SPEC, of(meta(), state))


# -- is it due, and why ----------------------------------------------------------------------------

def test_never_issued_is_new_or_forced() -> None:
    plan = plan_cert(SPEC, snap(), day(0))
    assert plan == CertPlan(SPEC, "new", None, ())
    assert plan.name == NAME
    assert plan_cert(SPEC, snap(), day(0), force=True).due == "forced"


def test_lifetime_rule_a_third_left() -> None:
    state = CertState().deployed(WEB1.key, day(1), SERIAL, 3)
    plan = plan_cert(SPEC, snap(state, version=meta()), day(59))
    assert plan == CertPlan(SPEC, None, day(60), (WEB2, LOCAL), "lifetime", SERIAL)
    assert plan_cert(SPEC, snap(version=meta()), day(60)).due == "expiring"
    assert plan_cert(SPEC, snap(version=meta()), day(91)).due == "expired"


def test_the_fraction_comes_from_the_job() -> None:
    assert plan_cert(SPEC, snap(version=meta()), day(46), fraction=0.5).due == "expiring"
    assert plan_cert(SPEC, snap(version=meta()), day(44), fraction=0.5).due is None
    job = JobConfig("https://ca/dir", Path("/state"), (SPEC,), renew_fraction=0.5)
    (plan,) = make_plans([SPEC], {NAME: snap(version=meta())}, job, day(46), lambda _: None)
    assert plan.due == "expiring"
    assert plan.renew_at == day(45)


def test_forced_revoked_names_and_key_type() -> None:
    version = meta()
    assert plan_cert(SPEC, snap(version=version), day(1), force=True).due == "forced"
    revoked = CertState().revoked(SERIAL, day(1))
    assert plan_cert(SPEC, snap(revoked, version=version), day(1)).due == "revoked"
    other = CertState().revoked(SERIAL + 1, day(1))
    assert plan_cert(SPEC, snap(other, version=version), day(1)).due is None
    fewer = meta(names=(NAME,))
    assert plan_cert(SPEC, snap(version=fewer), day(1)).due == "names changed"
    rsa = meta(key_type="rsa2048")
    assert plan_cert(SPEC, snap(version=rsa), day(1)).due == "key type changed"
    wanted = replace(SPEC, key_type=KeyType.RSA2048)
    assert plan_cert(wanted, snap(version=rsa), day(1)).due is None


def _window(serial: int, start: float, end: float, draw: float = 0.5) -> ari.Schedule:
    return ari.schedule(None, serial, day(start), day(end), None, day(start), draw)


def test_the_cas_renewal_window_replaces_the_lifetime_rule() -> None:
    state = CertState().with_ari(_window(SERIAL, 10, 20))
    plan = plan_cert(SPEC, snap(state, version=meta()), day(14))
    assert (plan.due, plan.renew_at, plan.renew_source) == (None, day(15), "ARI")
    assert plan_cert(SPEC, snap(state, version=meta()), day(15)).due == "expiring"
    assert renewal(of(meta(), state), 1 / 3) == (day(15), "ARI")


@pytest.mark.parametrize(("start", "end"), [(90, 91), (95, 3000), (89.9, 90.1)])
def test_a_window_that_reaches_past_expiry_yields_to_the_lifetime_rule(
        start: float, end: float) -> None:
    """A time chosen at or after notAfter would leave the certificate to be served expired
    until the next run: the lifetime rule decides."""
    state = CertState().with_ari(_window(SERIAL, start, end, draw=0.5))
    expires = meta(not_after=day(90))
    renew_at, source = renewal(of(expires, state), 1 / 3)
    assert source == "lifetime"
    assert renew_at < day(90)
    # ... and a window that ends before it still wins, however late in the lifetime
    state = CertState().with_ari(_window(SERIAL, 89, 89.5))
    assert renewal(of(expires, state), 1 / 3) == (day(89.25), "ARI")


def test_a_window_for_another_serial_is_ignored() -> None:
    state = CertState().with_ari(_window(SERIAL + 1, 10, 20))
    assert renewal(of(meta(), state), 1 / 3) == (day(60), "lifetime")
    plan = plan_cert(SPEC, snap(state, version=meta()), day(15))
    assert (plan.due, plan.renew_at, plan.renew_source) == (None, day(60), "lifetime")


# -- what stops a certificate before the network ------------------------------------------------

def test_damage_blocks_and_nothing_else_is_decided() -> None:
    plan = plan_cert(SPEC, snap(version=meta(), damage="state.json: damaged"), day(80),
                     force=True)
    assert plan == CertPlan(SPEC, None, None, (), serial=SERIAL, blocked="state.json: damaged")
    plan = plan_cert(SPEC, snap(damage="meta.json: missing"), day(80))
    assert plan == CertPlan(SPEC, None, None, (), serial=None, blocked="meta.json: missing")


def test_backoff_waits_unless_forced() -> None:
    state = CertState().after_attempt(day(70), "renewed", "CA said no", asked_ca=True)
    until = day(70) + timedelta(minutes=5)
    plan = plan_cert(SPEC, snap(state, version=meta()), day(70))
    assert plan == CertPlan(
        SPEC, None, until, (WEB1, WEB2, LOCAL), serial=SERIAL,
        backoff="next attempt after 2026-03-12 00:05 UTC; last failure: CA said no")
    assert plan_cert(SPEC, snap(state, version=meta()), day(70), force=True).due == "forced"
    assert plan_cert(SPEC, snap(state, version=meta()), until).due == "expiring"
    never = plan_cert(SPEC, snap(state), day(70))
    assert (never.due, never.backoff is not None, never.stale_targets) == (None, True, ())


def test_a_backoff_from_the_index_without_its_error_names_none() -> None:
    # The index is a cache whose entries are checked field by field, not as a whole: one
    # may carry a backoff time without the error. The note says nothing, never "None".
    held = of(None, CertState())._replace(failures=1, waiting_until=day(1).timestamp())
    plan = plan_cert(SPEC, Snapshot(None, CertState(), standing=held), day(0))
    assert plan.backoff == "next attempt after 2026-01-02 00:00 UTC; last failure: "


def test_a_certificate_that_cannot_be_answered_is_blocked_only_when_due() -> None:
    why = "no http-01 responder configured"
    new = plan_cert(SPEC, snap(), day(0), unusable=why)
    assert new.due == "new"
    assert new.blocked == f"cannot be ordered: {why}"
    due = plan_cert(SPEC, snap(version=meta()), day(61), unusable=why)
    assert due.blocked == f"cannot be ordered: {why}"
    fine = plan_cert(SPEC, snap(version=meta()), day(1), unusable=why)
    assert fine.blocked is None
    assert plan_cert(SPEC, snap(version=meta()), day(61), unusable=None).blocked is None


def test_make_plans_asks_about_each_certificates_challenge() -> None:
    dns = CertSpec(("*.example.org",), challenge="dns-01")
    job = JobConfig("https://ca/dir", Path("/state"), (SPEC, dns))
    asked: list[str] = []

    def unusable(challenge: str) -> str | None:
        asked.append(challenge)
        return "no DNS settings" if challenge == "dns-01" else None

    plans = make_plans([SPEC, dns], {NAME: snap(), "*.example.org": snap()}, job, day(0),
                       unusable)
    assert asked == ["http-01", "dns-01"]
    assert [(p.name, p.due, p.blocked) for p in plans] == [
        (NAME, "new", None), ("*.example.org", "new", "cannot be ordered: no DNS settings")]
    forced = make_plans([SPEC], {NAME: snap(version=meta())}, job, day(1), unusable,
                        force=True)
    assert forced[0].due == "forced"


# -- key types renewed together ----------------------------------------------------------------

RSA = replace(SPEC, key_type=KeyType.RSA2048, variant="rsa2048")
OTHER = CertSpec(("shop.example.net",))


def test_one_key_type_due_makes_the_others_of_its_names_due() -> None:
    job = JobConfig("https://ca/dir", Path("/state"), (SPEC, RSA, OTHER))
    snaps = {NAME: snap(version=meta()),
             RSA.name: snap(version=meta(key_type="rsa2048", not_after=day(300))),
             OTHER.name: snap(version=meta(names=OTHER.names, not_after=day(300)))}
    plans = make_plans([SPEC, RSA, OTHER], snaps, job, day(61), lambda _: None)
    assert [(p.name, p.due) for p in plans] == [
        (NAME, "expiring"), (f"{NAME}+rsa2048", f"renewed with {NAME}"),
        ("shop.example.net", None)]
    plans = make_plans([RSA, SPEC], {**snaps, NAME: snap(version=meta(not_after=day(300)))},
                       job, day(61), lambda _: None)
    assert [p.due for p in plans] == [None, None]


def test_the_first_due_key_type_names_the_group() -> None:
    ecdsa384 = replace(SPEC, key_type=KeyType.EC384, variant="ec384")
    job = JobConfig("https://ca/dir", Path("/state"), (SPEC, RSA, ecdsa384))
    snaps = {NAME: snap(version=meta(not_after=day(300))),
             RSA.name: snap(version=meta(key_type="rsa2048")),
             ecdsa384.name: snap(version=meta(key_type="ec384"))}
    plans = make_plans([SPEC, RSA, ecdsa384], snaps, job, day(61), lambda _: None)
    assert [p.due for p in plans] == [f"renewed with {RSA.name}", "expiring", "expiring"]


def test_a_blocked_or_waiting_key_type_neither_leads_nor_follows() -> None:
    job = JobConfig("https://ca/dir", Path("/state"), (SPEC, RSA))
    waiting = CertState().after_attempt(day(61), "renewed", "boom", asked_ca=True)
    snaps = {NAME: snap(version=meta()),
             RSA.name: snap(waiting, version=meta(key_type="rsa2048", not_after=day(300)))}
    plans = make_plans([SPEC, RSA], snaps, job, day(61), lambda _: None)
    assert [p.due for p in plans] == ["expiring", None]
    assert plans[1].backoff is not None
    damaged = {NAME: snap(version=meta(), damage="broken"),
               RSA.name: snap(version=meta(key_type="rsa2048", not_after=day(300)))}
    plans = make_plans([SPEC, RSA], damaged, job, day(61), lambda _: None)
    assert [(p.due, p.blocked) for p in plans] == [(None, "broken"), (None, None)]
    plans = make_plans([SPEC, RSA], {NAME: snap(version=meta()), RSA.name: snap(
        version=meta(key_type="rsa2048", not_after=day(300)))}, job, day(61),
        lambda c: "no responder")
    assert [(p.due, p.blocked) for p in plans] == [
        ("expiring", "cannot be ordered: no responder"), (None, None)]


# -- the --dry-run lines ---------------------------------------------------------------------------

def test_describe_every_kind_of_plan() -> None:
    hosts = {"web2": HostSettings(files={"fullchain.pem": "{name}.crt",
                                         "privkey.pem": "{name}.key"})}
    job = JobConfig("https://ca/dir", Path("/state"), (SPEC,), hosts=hosts)
    one = (WEB1,)
    plans = [
        CertPlan(replace(SPEC, names=("blocked.example",)), "new", None, (),
                 blocked="cannot be ordered: no responder"),
        CertPlan(replace(SPEC, names=("waiting.example",), targets=one), None, day(3), one,
                 backoff="next attempt after X"),
        CertPlan(SPEC, "expiring", day(60), (WEB2,)),
        CertPlan(replace(SPEC, names=("ok.example",), targets=one), None, day(60), (),
                 "lifetime"),
        CertPlan(replace(SPEC, names=("ari.example",), targets=one), None,
                 day(10) + timedelta(hours=7, minutes=5), one, "ARI"),
        CertPlan(replace(SPEC, names=("idle.example",), targets=one), None, None, ()),
        CertPlan(replace(SPEC, names=("later.example",), targets=one), None, None, (),
                 deferred="deferred: the CA's order limit"),
    ]
    assert describe(plans, job) == [
        "blocked.example: will fail: cannot be ordered: no responder",
        "waiting.example: waiting: next attempt after X",
        "  deploy to web1:/etc/certs/waiting.example/{cert,chain,fullchain,privkey}.pem",
        f"{NAME}: will be ordered (expiring; http-01)",
        f"  deploy to web1:/etc/certs/{NAME}/{{cert,chain,fullchain,privkey}}.pem",
        f"  deploy to deploy@web2:/srv/tls/{{cert.pem,chain.pem,{NAME}.crt,{NAME}.key}}",
        f"  deploy to /var/certs/{NAME}/{{cert,chain,fullchain,privkey}}.pem",
        "ok.example: not due until 2026-03-02 00:00 UTC (lifetime rule)",
        "ari.example: not due until 2026-01-11 07:05 UTC (ARI window)",
        "  deploy to web1:/etc/certs/ari.example/{cert,chain,fullchain,privkey}.pem",
        "idle.example: nothing to do",
        "later.example: deferred: the CA's order limit",
    ]


@pytest.mark.parametrize("host", ["2001:db8::1", "web1"])
def test_describe_names_the_host_as_written(host: str) -> None:
    target = Target("/c", host, "u")
    job = JobConfig("https://ca/dir", Path("/state"), (SPEC,))
    plan = CertPlan(replace(SPEC, targets=(target,)), "new", None, ())
    label = f"[{host}]" if ":" in host else host
    assert describe([plan], job)[1] == \
        f"  deploy to u@{label}:/c/{NAME}/{{cert,chain,fullchain,privkey}}.pem"


def test_the_fast_built_plan_is_a_whole_cert_plan() -> None:
    """``plan._planned`` bypasses the dataclass ``__init__``: it must give the same value,
    with every field set, equal, hashable and replaceable like one built the usual way."""
    from dataclasses import fields

    from certfleet.plan import _planned

    spec = CertSpec(names=("a.example.com",), targets=(Target(path=Path("/srv")),))
    when = datetime(2027, 1, 1, tzinfo=UTC)
    fast = _planned(spec, None, when, spec.targets, "ARI", 0xABC)
    usual = CertPlan(spec, None, when, spec.targets, "ARI", 0xABC)
    assert fast == usual
    assert hash(fast) == hash(usual)
    assert [getattr(fast, f.name) for f in fields(CertPlan)] == \
        [getattr(usual, f.name) for f in fields(CertPlan)]
    assert replace(fast, due="forced") == replace(usual, due="forced")
    with pytest.raises(AttributeError):
        fast.due = "x"  # type: ignore[misc]


@pytest.mark.parametrize("variant", [None, "rsa2048"])
def test_a_spec_made_like_a_template_has_its_own_name(variant: str | None) -> None:
    template = CertSpec(names=("t.example.com",), variant=variant)
    assert template.name  # cached on the template: must not carry over
    made = CertSpec.like(template, ("a.example.com", "b.example.com"), (), "d:1")
    usual = replace(template, names=("a.example.com", "b.example.com"), source="d:1")
    assert made == usual
    assert made.name == usual.name == ("a.example.com+rsa2048" if variant else "a.example.com")
