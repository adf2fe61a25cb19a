"""certfleet.protocol.messages: strict parsing of RFC 8555 resources."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certfleet.protocol.messages import (
    AccountResource,
    AccountStatus,
    Authorization,
    AuthorizationStatus,
    Challenge,
    ChallengeStatus,
    Directory,
    Identifier,
    MalformedMessage,
    Order,
    OrderStatus,
    Problem,
    token_is_safe,
)

# RFC 8555 §7.1.1, plus "renewalInfo" (RFC 9773) and meta.profiles.
DIRECTORY: dict[str, Any] = {
    "newNonce": "https://example.com/acme/new-nonce",
    "newAccount": "https://example.com/acme/new-account",
    "newOrder": "https://example.com/acme/new-order",
    "newAuthz": "https://example.com/acme/new-authz",
    "revokeCert": "https://example.com/acme/revoke-cert",
    "keyChange": "https://example.com/acme/key-change",
    "renewalInfo": "https://example.com/acme/renewal-info",
    "meta": {
        "termsOfService": "https://example.com/acme/terms/2017-5-30",
        "website": "https://www.example.com/",
        "caaIdentities": ["example.com"],
        "externalAccountRequired": False,
        "profiles": {"classic": "The same profile as always", "shortlived": "6-day certs"},
    },
}

# RFC 8555 §7.1.3
ORDER: dict[str, Any] = {
    "status": "valid",
    "expires": "2016-01-20T14:09:07.99Z",
    "identifiers": [
        {"type": "dns", "value": "www.example.org"},
        {"type": "dns", "value": "example.org"},
    ],
    "notBefore": "2016-01-01T00:00:00Z",
    "notAfter": "2016-01-08T00:00:00Z",
    "authorizations": [
        "https://example.com/acme/authz/PAniVnsZcis",
        "https://example.com/acme/authz/r4HqLzrSrpI",
    ],
    "finalize": "https://example.com/acme/order/TOlocE8rfgo/finalize",
    "certificate": "https://example.com/acme/cert/mAt3xBGaobw",
}

# RFC 8555 §7.1.4
AUTHZ: dict[str, Any] = {
    "status": "valid",
    "expires": "2015-03-01T14:09:07.99Z",
    "identifier": {"type": "dns", "value": "www.example.org"},
    "challenges": [
        {
            "url": "https://example.com/acme/chall/prV_B7yEyA4",
            "type": "http-01",
            "status": "valid",
            "token": "DGyRejmCefe7v4NfDGDKfA",
            "validated": "2014-12-01T12:05:58.16Z",
        }
    ],
    "wildcard": False,
}

# RFC 8555 §6.7.1
PROBLEM: dict[str, Any] = {
    "type": "urn:ietf:params:acme:error:malformed",
    "detail": "Some of the identifiers requested were rejected",
    "subproblems": [
        {
            "type": "urn:ietf:params:acme:error:malformed",
            "detail": 'Invalid underscore in DNS name "_example.org"',
            "identifier": {"type": "dns", "value": "_example.org"},
        },
        {
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": 'This CA will not issue for "example.net"',
            "identifier": {"type": "dns", "value": "example.net"},
        },
    ],
}


def without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    del out[key]
    return out


def with_(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.update(changes)
    return out


# -- directory ----------------------------------------------------------------------------

def test_directory_example() -> None:
    d = Directory.from_json(DIRECTORY)
    assert d.new_nonce == "https://example.com/acme/new-nonce"
    assert d.new_account == "https://example.com/acme/new-account"
    assert d.new_order == "https://example.com/acme/new-order"
    assert d.revoke_cert == "https://example.com/acme/revoke-cert"
    assert d.key_change == "https://example.com/acme/key-change"
    assert d.renewal_info == "https://example.com/acme/renewal-info"
    assert d.terms_of_service == "https://example.com/acme/terms/2017-5-30"
    assert d.external_account_required is False
    assert dict(d.profiles) == {"classic": "The same profile as always",
                                "shortlived": "6-day certs"}
    assert "https://example.com/acme/renewal-info" in d.urls()
    assert len(d.urls()) == 6


def test_directory_minimal() -> None:
    d = Directory.from_json(without(without(DIRECTORY, "meta"), "renewalInfo"))
    assert d.renewal_info is None
    assert d.terms_of_service is None
    assert dict(d.profiles) == {}
    assert len(d.urls()) == 5


def test_directory_eab_required() -> None:
    data = copy.deepcopy(DIRECTORY)
    data["meta"]["externalAccountRequired"] = True
    assert Directory.from_json(data).external_account_required is True


@pytest.mark.parametrize("field", ["newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"])
def test_directory_missing_field_is_named(field: str) -> None:
    with pytest.raises(MalformedMessage, match=field):
        Directory.from_json(without(DIRECTORY, field))


@pytest.mark.parametrize("meta", [["x"], "terms", 5])
def test_directory_meta_must_be_object(meta: Any) -> None:
    with pytest.raises(MalformedMessage, match="meta"):
        Directory.from_json(with_(DIRECTORY, meta=meta))


@pytest.mark.parametrize("value", [None, [], "x", 1])
def test_directory_must_be_object(value: Any) -> None:
    with pytest.raises(MalformedMessage, match="not a JSON object"):
        Directory.from_json(value)


# -- order ---------------------------------------------------------------------------------

def test_order_example() -> None:
    o = Order.from_json(ORDER)
    assert o.status is OrderStatus.VALID
    assert o.identifiers == (Identifier("dns", "www.example.org"), Identifier("dns", "example.org"))
    assert o.authorizations == tuple(ORDER["authorizations"])
    assert o.finalize == "https://example.com/acme/order/TOlocE8rfgo/finalize"
    assert o.certificate == "https://example.com/acme/cert/mAt3xBGaobw"
    assert o.expires == "2016-01-20T14:09:07.99Z"
    assert o.error is None


def test_order_pending_without_certificate_and_with_error() -> None:
    data = with_(without(ORDER, "certificate"), status="invalid", error=PROBLEM)
    o = Order.from_json(data)
    assert o.status is OrderStatus.INVALID
    assert o.certificate is None
    assert o.error is not None
    assert o.error.short_type == "malformed"


@pytest.mark.parametrize("field", ["status", "identifiers", "authorizations", "finalize"])
def test_order_missing_field_is_named(field: str) -> None:
    with pytest.raises(MalformedMessage, match=field):
        Order.from_json(without(ORDER, field))


@pytest.mark.parametrize("status", ["done", "Valid", "", "deactivated"])
def test_order_unknown_status(status: str) -> None:
    with pytest.raises(MalformedMessage, match="unknown status"):
        Order.from_json(with_(ORDER, status=status))


def test_order_authorizations_must_be_strings() -> None:
    with pytest.raises(MalformedMessage, match="authorizations"):
        Order.from_json(with_(ORDER, authorizations=["https://a", {"url": "https://b"}]))


def test_order_too_many_identifiers() -> None:
    idents = [{"type": "dns", "value": f"n{i}.example"} for i in range(1001)]
    with pytest.raises(MalformedMessage, match="identifiers"):
        Order.from_json(with_(ORDER, identifiers=idents))


def test_order_identifier_missing_value() -> None:
    with pytest.raises(MalformedMessage, match="'value'"):
        Order.from_json(with_(ORDER, identifiers=[{"type": "dns"}]))


# -- authorization --------------------------------------------------------------------------

def test_authorization_example() -> None:
    a = Authorization.from_json(AUTHZ)
    assert a.status is AuthorizationStatus.VALID
    assert a.identifier == Identifier("dns", "www.example.org")
    assert a.name == "www.example.org"
    assert a.wildcard is False
    assert a.expires == "2015-03-01T14:09:07.99Z"
    (chall,) = a.challenges
    assert chall == Challenge("http-01", "https://example.com/acme/chall/prV_B7yEyA4",
                              ChallengeStatus.VALID, "DGyRejmCefe7v4NfDGDKfA")
    assert a.challenge("http-01") is chall
    assert a.challenge("dns-01") is None
    assert a.failure() is None


def test_authorization_wildcard() -> None:
    data = with_(AUTHZ, status="pending", wildcard=True,
                 identifier={"type": "dns", "value": "example.org"})
    data["challenges"][0].update(type="dns-01", status="pending")
    a = Authorization.from_json(data)
    assert a.wildcard is True
    assert a.name == "*.example.org"
    assert a.status is AuthorizationStatus.PENDING
    assert a.challenge("dns-01") is not None


def test_authorization_wildcard_must_be_true_not_truthy() -> None:
    assert Authorization.from_json(with_(AUTHZ, wildcard="yes")).wildcard is False


def test_authorization_failure_is_the_challenge_error() -> None:
    data = with_(AUTHZ, status="invalid")
    data["challenges"][0].update(status="invalid", error={
        "type": "urn:ietf:params:acme:error:connection", "detail": "refused", "status": 400})
    failure = Authorization.from_json(data).failure()
    assert failure is not None
    assert failure.short_type == "connection"
    assert failure.status == 400


@pytest.mark.parametrize("field", ["status", "identifier", "challenges"])
def test_authorization_missing_field_is_named(field: str) -> None:
    with pytest.raises(MalformedMessage, match=field):
        Authorization.from_json(without(AUTHZ, field))


@pytest.mark.parametrize("field", ["type", "url", "status"])
def test_challenge_missing_field_is_named(field: str) -> None:
    with pytest.raises(MalformedMessage, match=f"challenge.*{field}"):
        Challenge.from_json(without(AUTHZ["challenges"][0], field))


def test_challenge_unknown_status() -> None:
    with pytest.raises(MalformedMessage, match="unknown status"):
        Challenge.from_json(with_(AUTHZ["challenges"][0], status="ready"))


def test_authorization_unknown_status() -> None:
    with pytest.raises(MalformedMessage, match="unknown status"):
        Authorization.from_json(with_(AUTHZ, status="processing"))


# -- problem documents ----------------------------------------------------------------------

def test_problem_with_subproblems() -> None:
    p = Problem.from_json(with_(PROBLEM, status=403))
    assert p.type == "urn:ietf:params:acme:error:malformed"
    assert p.short_type == "malformed"
    assert p.detail == "Some of the identifiers requested were rejected"
    assert p.status == 403
    assert p.identifier is None
    first, second = p.subproblems
    assert first.identifier == Identifier("dns", "_example.org")
    assert first.short_type == "malformed"
    assert second.identifier == Identifier("dns", "example.net")
    assert second.short_type == "rejectedIdentifier"
    assert second.detail == 'This CA will not issue for "example.net"'


def test_problem_defaults() -> None:
    p = Problem.from_json({})
    assert p.type == "about:blank"
    assert p.short_type == "about:blank"
    assert p.detail == ""
    assert p.status is None
    assert p.subproblems == ()


def test_problem_non_acme_type_kept_whole() -> None:
    assert Problem.from_json({"type": "https://ca/errors/x"}).short_type == "https://ca/errors/x"


@pytest.mark.parametrize(
    "data",
    [{"subproblems": ["not an object"]}, {"subproblems": {"a": 1}}, {"detail": 5},
     {"type": ["x"]}, {"identifier": "example.org"}],
)
def test_problem_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        Problem.from_json(data)


# -- account -------------------------------------------------------------------------------

def test_account_resource() -> None:
    a = AccountResource.from_json({"status": "valid", "contact": ["mailto:cert-admin@example.org"],
                                   "orders": "https://example.com/acme/orders/rzGoeA"})
    assert a.status is AccountStatus.VALID
    assert a.contact == ("mailto:cert-admin@example.org",)
    assert a.orders == "https://example.com/acme/orders/rzGoeA"


def test_account_unknown_status() -> None:
    with pytest.raises(MalformedMessage, match="unknown status"):
        AccountResource.from_json({"status": "pending"})


# -- tokens --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "token",
    ["DGyRejmCefe7v4NfDGDKfA", "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", "A" * 256],
)
def test_token_is_safe_accepts(token: str) -> None:
    assert token_is_safe(token)


@pytest.mark.parametrize(
    "token",
    [
        "../../etc/passwd",
        "../../etc/passwd-padding-to-be-long-enough",
        "DGyRejmCefe7v4NfDGDKf",  # 21 characters: under 128 bits
        "short",
        "DGyRejmCefe7v4NfDGDKfA==",
        "DGyRejmCefe7v4NfDGDKfA\n",
        "DGyRejmCefe7v4NfDGDK+/",
        "DGyRejmCefe7v4NfDGDKfA.x",
        "",
        "A" * 257,
    ],
)
def test_token_is_safe_refuses(token: str) -> None:
    assert not token_is_safe(token)


# -- anything a CA could send -------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
FIELDS = sorted({"newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo",
                 "meta", "profiles", "termsOfService", "externalAccountRequired", "status",
                 "identifiers", "identifier", "authorizations", "finalize", "certificate",
                 "error", "expires", "profile", "challenges", "wildcard", "type", "url", "token",
                 "value", "detail", "subproblems", "contact", "orders"})
STATUSES = st.sampled_from(["valid", "pending", "ready", "processing", "invalid", "expired",
                            "deactivated", "revoked", "other"])
field_values = st.one_of(json_values, STATUSES, st.just("https://ca/x"))
shaped = st.dictionaries(st.sampled_from(FIELDS), st.one_of(
    field_values,
    st.lists(st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=6), max_size=3),
    st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=6),
), max_size=12)

PARSERS = [Directory, Order, Authorization, Challenge, Problem, Identifier, AccountResource]


@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.__name__)
@given(value=st.one_of(json_values, shaped))
def test_from_json_raises_only_malformed_message(cls: Any, value: Any) -> None:
    with contextlib.suppress(MalformedMessage):
        cls.from_json(value)


# -- every field read, every fault named ---------------------------------------------------------

def test_directory_reads_every_field() -> None:
    d = Directory.from_json(DIRECTORY)
    assert d == Directory(
        new_nonce="https://example.com/acme/new-nonce",
        new_account="https://example.com/acme/new-account",
        new_order="https://example.com/acme/new-order",
        revoke_cert="https://example.com/acme/revoke-cert",
        key_change="https://example.com/acme/key-change",
        renewal_info="https://example.com/acme/renewal-info",
        terms_of_service="https://example.com/acme/terms/2017-5-30",
        external_account_required=False,
        profiles={"classic": "The same profile as always", "shortlived": "6-day certs"})
    assert d.urls() == ("https://example.com/acme/new-nonce",
                        "https://example.com/acme/new-account",
                        "https://example.com/acme/new-order",
                        "https://example.com/acme/revoke-cert",
                        "https://example.com/acme/key-change",
                        "https://example.com/acme/renewal-info")


def test_directory_optional_fields_of_the_wrong_kind_are_absent() -> None:
    data = with_(without(DIRECTORY, "meta"), renewalInfo=5)
    d = Directory.from_json(data)
    assert (d.renewal_info, d.terms_of_service, d.external_account_required, d.profiles) == \
        (None, None, False, {})
    assert "renewal" not in " ".join(d.urls())
    meta = {"termsOfService": ["x"], "externalAccountRequired": "yes", "profiles": {5: 6}}
    d = Directory.from_json(with_(DIRECTORY, meta=meta))
    assert (d.terms_of_service, d.external_account_required, d.profiles) == \
        (None, False, {"5": "6"})
    for profiles in (None, {}):
        assert Directory.from_json(with_(DIRECTORY, meta={"profiles": profiles})).profiles == {}


@pytest.mark.parametrize(("data", "message"), [
    ([], "directory is not a JSON object"),
    (with_(DIRECTORY, meta="x"), "directory meta is not a JSON object"),
    (with_(DIRECTORY, meta={"profiles": ["classic"]}),
     "directory meta.profiles is not a JSON object"),
    (without(DIRECTORY, "newNonce"), "directory: field 'newNonce' is missing or not a string"),
    (with_(DIRECTORY, newAccount=5), "directory: field 'newAccount' is missing or not a string"),
    (without(DIRECTORY, "newOrder"), "directory: field 'newOrder' is missing or not a string"),
    (without(DIRECTORY, "revokeCert"),
     "directory: field 'revokeCert' is missing or not a string"),
    (without(DIRECTORY, "keyChange"), "directory: field 'keyChange' is missing or not a string"),
])
def test_directory_faults_are_named(data: Any, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        Directory.from_json(data)
    assert str(caught.value) == message


def test_order_reads_every_field() -> None:
    data = with_(ORDER, status="invalid", error=PROBLEM, profile="shortlived")
    o = Order.from_json(data)
    assert o == Order(OrderStatus.INVALID,
                      (Identifier("dns", "www.example.org"), Identifier("dns", "example.org")),
                      tuple(ORDER["authorizations"]), ORDER["finalize"], ORDER["certificate"],
                      Problem.from_json(PROBLEM), ORDER["expires"], "shortlived")
    odd = Order.from_json(with_(ORDER, certificate=5, expires=[], profile={}))
    assert (odd.certificate, odd.expires, odd.profile) == (None, None, None)
    assert Order.from_json(with_(ORDER, identifiers=[{"type": "dns", "value": "a"}] * 1000))


@pytest.mark.parametrize(("data", "message"), [
    ("x", "order is not a JSON object"),
    (without(ORDER, "authorizations"), "order: field 'authorizations' is missing or not a list"),
    (with_(ORDER, authorizations=["https://a", 5]), "order: authorizations must be URLs"),
    (with_(ORDER, identifiers="dns"), "order: field 'identifiers' is missing or not a list"),
    (with_(ORDER, identifiers=[{"type": "dns", "value": "a"}] * 1001),
     "order: field 'identifiers' has 1001 entries"),
    (with_(ORDER, identifiers=["a"]), "identifier is not a JSON object"),
    (with_(ORDER, identifiers=[{"value": "a"}]),
     "identifier: field 'type' is missing or not a string"),
    (without(ORDER, "finalize"), "order: field 'finalize' is missing or not a string"),
    (without(ORDER, "status"), "order: field 'status' is missing or not a string"),
    (with_(ORDER, status="x" * 100), f"order: unknown status {'x' * 40!r}"),
    (with_(ORDER, error="boom"), "problem document is not a JSON object"),
])
def test_order_faults_are_named(data: Any, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        Order.from_json(data)
    assert str(caught.value) == message


def test_every_status_of_rfc_8555() -> None:
    for status in ("pending", "ready", "processing", "valid", "invalid"):
        assert Order.from_json(with_(ORDER, status=status)).status.value == status
    for status in ("pending", "valid", "invalid", "deactivated", "expired", "revoked"):
        assert Authorization.from_json(with_(AUTHZ, status=status)).status.value == status
    for status in ("pending", "processing", "valid", "invalid"):
        chall = with_(AUTHZ["challenges"][0], status=status)
        assert Challenge.from_json(chall).status.value == status
    for status in ("valid", "deactivated", "revoked"):
        assert AccountResource.from_json({"status": status}).status.value == status


def test_challenge_reads_every_field() -> None:
    error = {"type": "urn:ietf:params:acme:error:connection", "detail": "refused"}
    data = with_(AUTHZ["challenges"][0], status="invalid", error=error)
    assert Challenge.from_json(data) == Challenge(
        "http-01", "https://example.com/acme/chall/prV_B7yEyA4", ChallengeStatus.INVALID,
        "DGyRejmCefe7v4NfDGDKfA", Problem("urn:ietf:params:acme:error:connection", "refused"))
    assert Challenge.from_json(without(AUTHZ["challenges"][0], "token")).token == ""


@pytest.mark.parametrize(("data", "message"), [
    (5, "challenge is not a JSON object"),
    (without(AUTHZ["challenges"][0], "type"), "challenge: field 'type' is missing or not a "
                                              "string"),
    (with_(AUTHZ["challenges"][0], url=["u"]), "challenge: field 'url' is missing or not a "
                                               "string"),
    (with_(AUTHZ["challenges"][0], token=5), "challenge: field 'token' is missing or not a "
                                             "string"),
    (with_(AUTHZ["challenges"][0], status="ready"), "challenge: unknown status 'ready'"),
])
def test_challenge_faults_are_named(data: Any, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        Challenge.from_json(data)
    assert str(caught.value) == message


def test_authorization_reads_every_field() -> None:
    second = {"type": "dns-01", "url": "https://ca/c/2", "status": "invalid", "token": "t",
              "error": {"type": "urn:ietf:params:acme:error:dns", "detail": "NXDOMAIN"}}
    third = {"type": "dns-01", "url": "https://ca/c/3", "status": "pending", "token": "u",
             "error": {"type": "urn:ietf:params:acme:error:caa", "detail": "no"}}
    a = Authorization.from_json(with_(AUTHZ, challenges=[AUTHZ["challenges"][0], second,
                                                         third], wildcard=True))
    assert a.wildcard is True
    assert a.challenge("dns-01") == Challenge.from_json(second)   # the first of its type
    assert a.failure() == Problem("urn:ietf:params:acme:error:dns", "NXDOMAIN")
    assert Authorization.from_json(with_(AUTHZ, expires=5)).expires is None
    assert Authorization.from_json(without(AUTHZ, "wildcard")).wildcard is False


@pytest.mark.parametrize(("data", "message"), [
    (None, "authorization is not a JSON object"),
    (without(AUTHZ, "identifier"), "identifier is not a JSON object"),
    (with_(AUTHZ, identifier={"type": "dns"}),
     "identifier: field 'value' is missing or not a string"),
    (with_(AUTHZ, status="ready"), "authorization: unknown status 'ready'"),
    (without(AUTHZ, "challenges"), "authorization: field 'challenges' is missing or not a list"),
    (with_(AUTHZ, challenges=[{}] * 1001), "authorization: field 'challenges' has 1001 entries"),
])
def test_authorization_faults_are_named(data: Any, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        Authorization.from_json(data)
    assert str(caught.value) == message


def test_problem_reads_every_field() -> None:
    p = Problem.from_json({"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                           "detail": "no", "status": 400,
                           "identifier": {"type": "dns", "value": "a.example"}})
    assert p == Problem("urn:ietf:params:acme:error:rejectedIdentifier", "no", 400,
                        Identifier("dns", "a.example"))
    assert Problem.from_json({"status": "400"}).status is None
    assert Problem.from_json({"type": None}).type == "about:blank"
    assert Problem.from_json({"type": ""}).type == "about:blank"
    assert Problem("urn:ietf:params:acme:error:", "").short_type == ""
    assert Problem("urn:ietf:params:acme:errorbadNonce", "").short_type == \
        "urn:ietf:params:acme:errorbadNonce"


@pytest.mark.parametrize(("data", "message"), [
    ("x", "problem document is not a JSON object"),
    ({"type": ["x"]}, "problem document: field 'type' is missing or not a string"),
    ({"detail": 5}, "problem document: field 'detail' is missing or not a string"),
    ({"subproblems": {"a": 1}}, "problem document: field 'subproblems' is missing or not a "
                                "list"),
    ({"subproblems": [{}] * 1001}, "problem document: field 'subproblems' has 1001 entries"),
    ({"identifier": "example.org"}, "identifier is not a JSON object"),
])
def test_problem_faults_are_named(data: Any, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        Problem.from_json(data)
    assert str(caught.value) == message


def test_identifier_round_trip() -> None:
    ident = Identifier.from_json({"type": "ip", "value": "192.0.2.1"})
    assert ident == Identifier("ip", "192.0.2.1")
    assert ident.to_json() == {"type": "ip", "value": "192.0.2.1"}


def test_account_reads_every_field() -> None:
    a = AccountResource.from_json({"status": "valid", "contact": ["mailto:a@example.org", 5],
                                   "orders": 5})
    assert a == AccountResource(AccountStatus.VALID, ("mailto:a@example.org", "5"), None)
    assert AccountResource.from_json({"status": "deactivated"}) == \
        AccountResource(AccountStatus.DEACTIVATED)
    with pytest.raises(MalformedMessage) as caught:
        AccountResource.from_json({"status": "valid", "contact": "mailto:a@example.org"})
    assert str(caught.value) == "account: field 'contact' is missing or not a list"
    with pytest.raises(MalformedMessage) as caught:
        AccountResource.from_json([])
    assert str(caught.value) == "account is not a JSON object"


def test_an_unknown_account_status_is_named() -> None:
    with pytest.raises(MalformedMessage) as caught:
        AccountResource.from_json({"status": "pending"})
    assert str(caught.value) == "account: unknown status 'pending'"
