"""certfleet.account_ops against a small in-memory CA: key rollover (RFC 8555 §7.3.5) with
both JWS verified by ``cryptography``, its files on disk through success, refusal, a lost
answer and a crash; deactivation (§7.3.6); contact update (§7.3.2); revocation by the
certificate's own key (§7.6)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from certfleet import account_changes as account_ops
from certfleet.account_key import AccountKey, Rollover, staged_path
from certfleet.acme_client import Response, Signer
from certfleet.errors import AcmeProblem, ConfigError, StoreError, TransportError, acme_problem
from certfleet.keytypes import KeyType
from certfleet.protocol import jws
from certfleet.protocol.b64 import b64url_decode
from certfleet.protocol.messages import Directory
from certfleet.registration import find_or_register, open_account
from certfleet.revocation import revoke
from certfleet.session import Session
from certfleet.store import Store

from .pki import CA

DIRECTORY_URL = "https://ca.test/dir"
ERR = "urn:ietf:params:acme:error:"
_CURVES = {"P-256": (ec.SECP256R1(), hashes.SHA256(), 32),
           "P-384": (ec.SECP384R1(), hashes.SHA384(), 48)}


def _int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def decode(signed: Mapping[str, str]) -> tuple[dict[str, Any], Any]:
    """The protected header and the payload (None for POST-as-GET) of a flattened JWS."""
    header = json.loads(b64url_decode(signed["protected"]))
    payload = json.loads(b64url_decode(signed["payload"])) if signed["payload"] else None
    return header, payload


def verify_jws(jwk: Mapping[str, str], signed: Mapping[str, str]) -> None:
    """Verify a flattened JWS with the public key rebuilt from ``jwk`` (raises if bad)."""
    header, _ = decode(signed)
    data = f"{signed['protected']}.{signed['payload']}".encode()
    sig = b64url_decode(signed["signature"])
    if jwk["kty"] == "RSA":
        assert header["alg"] == "RS256"
        pub = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
        pub.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        return
    curve, digest, size = _CURVES[jwk["crv"]]
    assert header["alg"] == {"P-256": "ES256", "P-384": "ES384"}[jwk["crv"]]
    assert len(sig) == 2 * size
    pub_ec = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve).public_key()
    der = encode_dss_signature(int.from_bytes(sig[:size], "big"),
                               int.from_bytes(sig[size:], "big"))
    pub_ec.verify(der, data, ec.ECDSA(digest))


class FakeCA:
    """Just enough of an ACME server behind the ``AcmeClient`` interface: it checks every
    signature, keeps accounts by key, and can refuse or lose a key change."""

    def __init__(self, eab_required: bool = False) -> None:
        self.directory_url = DIRECTORY_URL
        self.eab_required = eab_required
        self.requests: collections.Counter[str] = collections.Counter()
        self.sent: list[tuple[str, dict[str, Any]]] = []  # (url, JWS) of every POST
        self.accounts: dict[str, dict[str, Any]] = {}      # account URL -> account
        self.revoked: list[str] = []
        self.key_change_fault: str | None = None           # "refuse", "lose-before/after"
        self._nonce = 0

    async def directory(self) -> Directory:
        return Directory.from_json({
            "newNonce": "https://ca.test/nonce", "newAccount": "https://ca.test/new-acct",
            "newOrder": "https://ca.test/new-order", "revokeCert": "https://ca.test/revoke",
            "keyChange": "https://ca.test/key-change",
            "meta": {"externalAccountRequired": self.eab_required},
        })

    def now(self) -> Any:
        return None

    async def post_as_get(self, url: str, signer: Signer, accept: str | None = None) -> Response:
        return await self.post(url, None, signer, accept)

    async def post(self, url: str, payload: Mapping[str, Any] | None, signer: Signer,
                   accept: str | None = None) -> Response:
        self._nonce += 1
        signed = dict(signer(url, f"nonce-{self._nonce}", payload))
        self.requests["POST"] += 1
        self.sent.append((url, signed))
        header, body = decode(signed)
        assert header["url"] == url
        assert header["nonce"] == f"nonce-{self._nonce}"
        if "jwk" in header:
            verify_jws(header["jwk"], signed)
            return self._by_jwk(url, header["jwk"], body)
        account = self.accounts.get(header["kid"])
        if account is None:
            raise acme_problem(url, ERR + "accountDoesNotExist", "no such account", 400)
        try:
            verify_jws(account["jwk"], signed)
        except Exception:
            raise acme_problem(url, ERR + "malformed", "JWS verification error", 400) from None
        if account["status"] == "deactivated":
            raise acme_problem(url, ERR + "unauthorized", "Account has been deactivated", 403)
        if url == "https://ca.test/key-change":
            return self._key_change(url, account, signed, body)
        if url == "https://ca.test/revoke":
            self.revoked.append(body["certificate"])
            return self._answer(url, None)
        assert url == header["kid"]
        if body and "contact" in body:
            account["contact"] = body["contact"]
        if body and body.get("status") == "deactivated":
            account["status"] = "deactivated"
        return self._answer(url, account)

    def _by_jwk(self, url: str, jwk: dict[str, str], body: Any) -> Response:
        if url == "https://ca.test/revoke":
            self.revoked.append(body["certificate"])
            return self._answer(url, None)
        assert url == "https://ca.test/new-acct"
        for acct_url, account in self.accounts.items():
            if jws.thumbprint(account["jwk"]) == jws.thumbprint(jwk):
                if account["status"] == "deactivated":
                    raise acme_problem(url, ERR + "unauthorized", "An account with the "
                                      "provided public key exists but is deactivated", 403)
                return self._answer(url, account, location=acct_url)
        if body.get("onlyReturnExisting"):
            raise acme_problem(url, ERR + "accountDoesNotExist", "no account for key", 400)
        if self.eab_required and "externalAccountBinding" not in body:
            raise acme_problem(url, ERR + "externalAccountRequired", "EAB required", 400)
        acct_url = f"https://ca.test/acct/{len(self.accounts) + 1}"
        self.accounts[acct_url] = {"status": "valid", "contact": body.get("contact", []),
                                   "jwk": jwk, "eab": body.get("externalAccountBinding")}
        return self._answer(url, self.accounts[acct_url], location=acct_url, status=201)

    def _key_change(self, url: str, account: dict[str, Any], outer: dict[str, Any],
                    inner: dict[str, str]) -> Response:
        if self.key_change_fault == "refuse":
            raise acme_problem(url, ERR + "malformed", "refused for the test", 400)
        if self.key_change_fault == "lose-before":
            raise TransportError(f"{url}: timed out")
        inner_header, inner_body = decode(inner)
        verify_jws(inner_header["jwk"], inner)
        assert inner_body["oldKey"] == account["jwk"]
        account["jwk"] = inner_header["jwk"]
        if self.key_change_fault == "lose-after":
            raise TransportError(f"{url}: timed out")
        return self._answer(url, None)

    @staticmethod
    def _answer(url: str, account: Mapping[str, Any] | None, location: str | None = None,
                status: int = 200) -> Response:
        headers = {"Content-Type": "application/json"}
        if location:
            headers["Location"] = location
        body = {k: v for k, v in (account or {}).items() if k in ("status", "contact")}
        return Response(url=url, status=status, headers=headers,
                        body=json.dumps(body).encode())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def ca() -> FakeCA:
    return FakeCA()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state")


def opened(ca: FakeCA, store: Store, contact: tuple[str, ...] = ()) -> Session:
    return run(open_account(ca, store, KeyType.EC256, contact))  # type: ignore[arg-type]


def key_dir(store: Store) -> Path:
    return store.account_key_path(DIRECTORY_URL).parent


def names(store: Store) -> list[str]:
    return sorted(p.name for p in key_dir(store).iterdir())


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- §7.3.5 key change: what is sent ------------------------------------------------------

@pytest.mark.parametrize("new_type", [KeyType.EC384, KeyType.RSA2048, KeyType.EC256])
def test_rollover_inner_and_outer_jws(ca: FakeCA, store: Store, new_type: KeyType) -> None:
    session = opened(ca, store)
    old_jwk = dict(session.key.jwk)
    rolled = run(account_ops.rollover(session, store, new_type))
    url, outer = next((u, s) for u, s in ca.sent if u == "https://ca.test/key-change")
    outer_header, inner = decode(outer)
    # Outer: the old key, by kid, with a nonce.
    assert outer_header == {"alg": "ES256", "kid": session.kid, "nonce": outer_header["nonce"],
                            "url": url}
    verify_jws(old_jwk, outer)
    # Inner: the new key, by jwk, no nonce, same url; says which account and which old key.
    inner_header, inner_payload = decode(inner)
    new_jwk = rolled.session.key.jwk
    assert set(inner) == {"protected", "payload", "signature"}
    assert inner_header == {"alg": rolled.session.key.alg, "jwk": new_jwk, "url": url}
    assert inner_payload == {"account": session.kid, "oldKey": old_jwk}
    verify_jws(new_jwk, inner)
    assert rolled.session.key.key_type is new_type
    assert rolled.session.kid == session.kid


def test_sign_inner_has_no_nonce_and_verifies() -> None:
    key = AccountKey.generate(KeyType.EC384)
    signed = key.sign_inner("https://ca.test/key-change", {"account": "a", "oldKey": {}})
    header, payload = decode(signed)
    assert header == {"alg": "ES384", "jwk": key.jwk, "url": "https://ca.test/key-change"}
    assert payload == {"account": "a", "oldKey": {}}
    verify_jws(key.jwk, signed)


# -- §7.3.5 key change: the files -----------------------------------------------------------

def test_rollover_replaces_key_and_keeps_old(ca: FakeCA, store: Store) -> None:
    session = opened(ca, store)
    path = store.account_key_path(DIRECTORY_URL)
    old_pem = path.read_bytes()
    rolled = run(account_ops.rollover(session, store, KeyType.EC384))
    assert mode(path) == 0o600
    assert AccountKey.load(path).thumbprint == rolled.session.key.thumbprint  # type: ignore[union-attr]
    assert rolled.old_key_kept.name.startswith("account.key.old-")
    assert rolled.old_key_kept.read_bytes() == old_pem
    assert mode(rolled.old_key_kept) == 0o600
    assert names(store) == sorted(["account.json", "account.key", rolled.old_key_kept.name])
    record = store.load_account(DIRECTORY_URL)
    assert record is not None
    assert record["thumbprint"] == rolled.session.key.thumbprint
    assert record["previous_thumbprint"] == session.key.thumbprint
    assert record["url"] == session.kid
    assert AccountKey.load(path).key_type.value == "ec384"  # type: ignore[union-attr]
    # The next run opens the same account with the new key, and the CA knows it.
    again = opened(ca, store)
    assert again.kid == session.kid
    assert again.key.thumbprint == rolled.session.key.thumbprint


def test_refused_rollover_keeps_old_key(ca: FakeCA, store: Store) -> None:
    session = opened(ca, store)
    path = store.account_key_path(DIRECTORY_URL)
    before = path.read_bytes(), store.load_account(DIRECTORY_URL)
    ca.key_change_fault = "refuse"
    with pytest.raises(AcmeProblem, match="refused for the test"):
        run(account_ops.rollover(session, store, KeyType.EC256))
    assert (path.read_bytes(), store.load_account(DIRECTORY_URL)) == before
    assert names(store) == ["account.json", "account.key"]
    assert opened(ca, store).key.thumbprint == session.key.thumbprint


@pytest.mark.parametrize("when", ["lose-before", "lose-after"])
def test_lost_answer_is_resolved_by_next_open(ca: FakeCA, store: Store, when: str) -> None:
    """The answer never came: the new key stays staged; the next open asks the CA which key
    it has and finishes (it took it) or undoes (it did not) the rollover."""
    session = opened(ca, store)
    path = store.account_key_path(DIRECTORY_URL)
    ca.key_change_fault = when
    with pytest.raises(TransportError, match=r"may have taken the new account key.*\.new"):
        run(account_ops.rollover(session, store, KeyType.EC384))
    staged = staged_path(path)
    assert mode(staged) == 0o600
    new_pem = staged.read_bytes()
    assert names(store) == ["account.json", "account.key", "account.key.new"]
    ca.key_change_fault = None
    again = opened(ca, store)
    assert not staged.exists()
    assert again.kid == session.kid  # never a second account
    assert len(ca.accounts) == 1
    if when == "lose-after":
        assert path.read_bytes() == new_pem
        assert again.key.key_type is KeyType.EC384
        assert any(n.startswith("account.key.old-") for n in names(store))
        assert store.load_account(DIRECTORY_URL)["thumbprint"] == again.key.thumbprint  # type: ignore[index]
    else:
        assert again.key.thumbprint == session.key.thumbprint
        assert names(store) == ["account.json", "account.key"]


def test_rollover_in_progress_is_not_touched(ca: FakeCA, store: Store) -> None:
    opened(ca, store)
    path = store.account_key_path(DIRECTORY_URL)
    with Rollover.start(path, KeyType.EC256):
        with pytest.raises(StoreError, match="already in progress"):
            Rollover.start(path, KeyType.EC256)
        with pytest.raises(StoreError, match="another process is rolling"):
            opened(ca, store)
        assert staged_path(path).exists()


# -- §7.3.6 deactivation -------------------------------------------------------------------

def test_deactivate_then_fail_fast_then_new_key(ca: FakeCA, store: Store) -> None:
    session = opened(ca, store)
    account = run(account_ops.deactivate(session, store))
    assert account.status.value == "deactivated"
    record = store.load_account(DIRECTORY_URL)
    assert record is not None
    assert record["status"] == "deactivated"
    posts = ca.requests["POST"]
    with pytest.raises(ConfigError, match=(
            rf"account {session.kid} at {DIRECTORY_URL} is deactivated .*"
            r"`certfleet account register --new-key`")):
        opened(ca, store)
    assert ca.requests["POST"] == posts  # no request: the record said so
    done = run(account_ops.register(ca, store, KeyType.EC256, ["a@example.com"],  # type: ignore[arg-type]
                                    new_key=True))
    assert done.created
    assert done.session.kid != session.kid
    assert done.retired_key is not None
    assert mode(done.retired_key) == 0o600
    assert store.load_account(DIRECTORY_URL)["status"] == "valid"  # type: ignore[index]


def test_deactivated_at_the_ca_is_recorded(ca: FakeCA, store: Store) -> None:
    session = opened(ca, store)
    ca.accounts[session.kid]["status"] = "deactivated"  # by another client
    with pytest.raises(ConfigError, match="is deactivated"):
        opened(ca, store)
    assert store.load_account(DIRECTORY_URL)["status"] == "deactivated"  # type: ignore[index]


# -- §7.3.2 contact, and registering ---------------------------------------------------------

def test_update_contact(ca: FakeCA, store: Store) -> None:
    session = opened(ca, store, ("a@example.com",))
    account = run(account_ops.update_contact(session, ["b@example.com", "mailto:c@example.com"],
                                             store))
    assert account.contact == ("mailto:b@example.com", "mailto:c@example.com")
    assert ca.accounts[session.kid]["contact"] == list(account.contact)
    assert store.load_account(DIRECTORY_URL)["contact"] == ["b@example.com",  # type: ignore[index]
                                                            "c@example.com"]
    assert run(account_ops.fetch(session)).contact == account.contact


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b@c", "a b@example.com", "a@x,b@y"])
def test_mailto_refuses(bad: str) -> None:
    with pytest.raises(ConfigError, match="is not an e-mail address"):
        account_ops.mailto([bad])


def test_register_twice_finds_the_account(ca: FakeCA, store: Store) -> None:
    first = run(account_ops.register(ca, store, KeyType.EC256, []))  # type: ignore[arg-type]
    second = run(account_ops.register(ca, store, KeyType.EC256, []))  # type: ignore[arg-type]
    assert first.created
    assert not second.created
    assert first.session.kid == second.session.kid


def test_managing_needs_an_account(ca: FakeCA, store: Store) -> None:
    with pytest.raises(ConfigError, match=r"no account for a key.*account register"):
        run(account_ops.open_existing(ca, store))  # type: ignore[arg-type]
    assert ca.requests["POST"] == 0
    assert names(store) == []  # and no key was made


# -- §7.6 revocation by the certificate's key -------------------------------------------------

def test_revoke_with_certificate_key(ca: FakeCA) -> None:
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    cert_pem = CA().issue(leaf_key.public_key(), ["revoke.example.com"])
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    run(revoke(ca, cert_pem, "keyCompromise", cert_key_pem=key_pem))  # type: ignore[arg-type]
    url, signed = ca.sent[-1]
    header, payload = decode(signed)
    assert url == "https://ca.test/revoke"
    assert set(header) == {"alg", "jwk", "nonce", "url"}
    assert header["alg"] == "ES384"
    assert payload["reason"] == 1
    verify_jws(header["jwk"], signed)
    assert ca.revoked == [payload["certificate"]]


def test_revoke_with_wrong_key_or_no_key(ca: FakeCA) -> None:
    cert_pem = CA().issue(ec.generate_private_key(ec.SECP256R1()).public_key(), ["x.example"])
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        run(revoke(ca, cert_pem, "unspecified", cert_key_pem=other))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="certificate's private key must sign"):
        run(revoke(ca, cert_pem, "unspecified"))  # type: ignore[arg-type]
    assert ca.requests["POST"] == 0


def test_find_or_register_reports_creation(ca: FakeCA, store: Store) -> None:
    _, created = run(find_or_register(ca, store, KeyType.EC256, []))  # type: ignore[arg-type]
    _, again = run(find_or_register(ca, store, KeyType.EC256, []))  # type: ignore[arg-type]
    assert (created, again) == (True, False)
