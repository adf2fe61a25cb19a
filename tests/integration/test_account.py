"""The account's life against a real Pebble (-strict): external account binding (RFC 8555
§7.3.4), contact update (§7.3.2), key rollover (§7.3.5), deactivation (§7.3.6) and
revocation by the certificate's own key (§7.6)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from certfleet.account_key import AccountKey
from certfleet.acme_client import AcmeClient
from certfleet.errors import AcmeProblem, ConfigError
from certfleet.keytypes import KeyType
from certfleet.protocol.b64 import b64url
from certfleet.registration import open_account
from certfleet.revocation import revoke
from certfleet.session import Session
from certfleet.store import Store

from .conftest import Certfleet

pytestmark = pytest.mark.integration

MAC_KEY = bytes(range(100, 164))
MAC_KEY_B64 = b64url(MAC_KEY)
WRONG_KEY = bytes(range(1, 65))
WRONG_KEY_B64 = b64url(WRONG_KEY)
EAB_CONFIG = {"externalAccountBindingRequired": True,
              "externalAccountMACKeys": {"kid-1": MAC_KEY_B64}}


def client(lab: Any) -> AcmeClient:
    return AcmeClient(lab.directory_url, ca_bundle=lab.ca_bundle)


def on_ca(lab: Any, work: Callable[[AcmeClient], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``work(client)`` with a fresh client to ``lab``."""
    async def go() -> Any:
        async with client(lab) as acme:
            return await work(acme)
    return asyncio.run(go())


def record(cf: Certfleet) -> dict[str, Any]:
    (path,) = (cf.state / "accounts").glob("*/account.json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def key_dir(cf: Certfleet) -> Path:
    (path,) = (cf.state / "accounts").glob("*/account.key")
    return path.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def account_object(lab: Any, key: AccountKey, kid: str) -> dict[str, Any]:
    """POST-as-GET the account URL signed by ``key``: the CA's account object."""
    async def go(acme: AcmeClient) -> dict[str, Any]:
        response = await acme.post_as_get(
            kid, lambda url, nonce, payload: key.sign(url, nonce, payload, kid=kid))
        data: dict[str, Any] = response.json()
        return data
    result: dict[str, Any] = on_ca(lab, go)
    return result


# -- §7.3.4 external account binding ---------------------------------------------------------

@pytest.fixture(scope="module")
def eab_lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from pebble_lab import PebbleLab

    from .. import conftest as top

    top.require_pebble()
    with PebbleLab(tmp_path_factory.mktemp("pebble-eab"), config=EAB_CONFIG) as lab:
        yield lab


def test_eab_register_then_issue(eab_lab: Any, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cf = Certfleet(eab_lab, tmp_path / "state")
    monkeypatch.setenv("CERTFLEET_EAB_KID", "kid-1")
    monkeypatch.setenv("CERTFLEET_EAB_HMAC_KEY", MAC_KEY_B64)
    rc, out = cf.run("account", "register", "--contact", "eab@example.com")
    assert rc == 0, out
    assert out.startswith(f"account: registered {eab_lab.directory_url.removesuffix('/dir')}"
                          "/my-account/")
    assert record(cf)["eab_kid"] == "kid-1"
    assert "Successful newAccount Binding with CA using kid \"kid-1\"" in eab_lab.log_text()
    rc, out = cf.run("account", "register")
    assert (rc, out.split(":")[1].strip()) == (2, "already registered"), out
    # The account exists now: issuing needs no binding any more.
    monkeypatch.delenv("CERTFLEET_EAB_KID")
    monkeypatch.delenv("CERTFLEET_EAB_HMAC_KEY")
    rc, out = cf.issue("eab.example.com")
    assert rc == 0, out
    assert out.startswith("eab.example.com: issued (expires ")


def test_eab_wrong_key_is_one_clear_error_and_never_shown(
        eab_lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    cf = Certfleet(eab_lab, tmp_path / "state")
    monkeypatch.setenv("CERTFLEET_EAB_KID", "kid-1")
    monkeypatch.setenv("CERTFLEET_EAB_HMAC_KEY", WRONG_KEY_B64)
    caplog.set_level(logging.DEBUG)
    rc, out = cf.run("account", "register", "-vvv")
    assert rc == 1
    url = eab_lab.directory_url.removesuffix("/dir") + "/sign-me-up"
    assert out.startswith(f"certfleet: {url}: unauthorized: external account binding JWS "
                          "verification error"), out
    assert "eab_hmac_key" in out
    assert out.count("\n") == 1
    captured = capsys.readouterr()
    everything = out + captured.out + captured.err + caplog.text
    assert "POST" in caplog.text  # the debug log did see the requests
    for secret in (WRONG_KEY_B64, MAC_KEY_B64, WRONG_KEY.hex(), MAC_KEY.hex()):
        assert secret not in everything
    for raw in (WRONG_KEY, MAC_KEY):
        assert raw.decode("latin-1") not in everything
        assert raw not in everything.encode("utf-8", "surrogateescape")
    assert not list((tmp_path / "state" / "accounts").glob("*/account.json"))


def test_eab_unknown_kid(eab_lab: Any, tmp_path: Path) -> None:
    async def go(acme: AcmeClient) -> Session:
        return await open_account(acme, Store(tmp_path / "state"), KeyType.EC256, [],
                                  eab=("kid-nope", MAC_KEY, "HS256"))
    with pytest.raises(ConfigError, match=r"/sign-me-up: unauthorized: the field 'kid' "
                                          r"references a key that is not known"):
        on_ca(eab_lab, go)


def test_eab_missing_fails_before_any_request(eab_lab: Any, tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    seen: dict[str, int] = {}

    async def go(acme: AcmeClient) -> Session:
        try:
            return await open_account(acme, store, KeyType.EC256, [])
        finally:
            seen.update(acme.requests)
    with pytest.raises(ConfigError, match=(
            r"dir: this CA registers accounts only with an external account binding "
            r"\(RFC 8555 §7.3.4\): set \[ca\] eab_kid and eab_hmac_key")):
        on_ca(eab_lab, go)
    assert seen == {"GET": 1}  # the directory, and nothing else
    assert not store.account_key_path(eab_lab.directory_url).exists()
    # The command line says the same, in one line.
    rc, out = Certfleet(eab_lab, tmp_path / "state").run("account", "register")
    assert rc == 1
    assert "registers accounts only with an external account binding" in out


# -- §7.3.2 contact ------------------------------------------------------------------------

def test_contact_update_shows_in_account_object(pebble: Any, tmp_path: Path) -> None:
    cf = Certfleet(pebble, tmp_path / "state")
    assert cf.run("account", "register", "--contact", "one@example.com")[0] == 0
    kid = record(cf)["url"]
    key = AccountKey.load(key_dir(cf) / "account.key")
    assert key is not None
    assert account_object(pebble, key, kid)["contact"] == ["mailto:one@example.com"]
    rc, out = cf.run("account", "update", "--contact", "two@example.com",
                     "--contact", "three@example.com")
    assert rc == 0, out
    assert out == f"account: {kid}: contact now two@example.com, three@example.com\n"
    assert account_object(pebble, key, kid)["contact"] == ["mailto:two@example.com",
                                                           "mailto:three@example.com"]
    assert record(cf)["contact"] == ["two@example.com", "three@example.com"]
    rc, out = cf.run("account", "show")
    assert "contact:    two@example.com, three@example.com" in out


def test_update_needs_contact_and_an_account(pebble: Any, tmp_path: Path) -> None:
    cf = Certfleet(pebble, tmp_path / "state")
    rc, out = cf.run("account", "update")
    assert (rc, out) == (1, "certfleet: account update: give the new addresses with "
                            "--contact EMAIL (repeatable)\n")
    rc, out = cf.run("account", "update", "--contact", "x@example.com")
    assert rc == 1
    assert "no account for a key" in out
    assert "`certfleet account register`" in out


# -- §7.3.5 key rollover ---------------------------------------------------------------------

@pytest.mark.parametrize(("key_type", "refusal"), [
    # Pebble checks the JWS alg against the account's (new) key type first: an ES256
    # signature for an account whose key is now P-384 is "badSignatureAlgorithm" (with
    # the odd detail "'ES256' ... not supported, expected one of ... ES256 ..."); with the
    # same key type it is a failed verification, "malformed".
    ("ec384", ("badSignatureAlgorithm", "signature type 'ES256' in JWS header")),
    ("ec256", ("malformed", "JWS verification error")),
])
def test_rollover_then_issue_with_new_key(pebble: Any, tmp_path: Path, key_type: str,
                                          refusal: tuple[str, str]) -> None:
    cf = Certfleet(pebble, tmp_path / "state")
    assert cf.issue(f"before-rollover-{key_type}.example.com")[0] == 0
    kid = record(cf)["url"]
    folder = key_dir(cf)
    old = AccountKey.load(folder / "account.key")
    assert old is not None

    rc, out = cf.run("account", "rollover", "--key-type", key_type)
    assert rc == 0, out
    new = AccountKey.load(folder / "account.key")
    assert new is not None
    assert new.key_type is KeyType(key_type)
    assert new.thumbprint != old.thumbprint
    assert mode(folder / "account.key") == 0o600
    (kept,) = folder.glob("account.key.old-*")
    assert mode(kept) == 0o600
    assert AccountKey.load(kept).thumbprint == old.thumbprint  # type: ignore[union-attr]
    assert not (folder / "account.key.new").exists()
    assert record(cf)["url"] == kid
    assert record(cf)["thumbprint"] == new.thumbprint
    assert out == (f"account: {kid}: new {key_type} key, thumbprint {new.thumbprint}; the "
                   f"old key is kept in {kept}\n")

    # Issuance goes on with the new key, under the same account.
    rc, out = cf.issue(f"after-rollover-{key_type}.example.com")
    assert rc == 0, out
    assert record(cf)["url"] == kid
    assert account_object(pebble, new, kid)["status"] == "valid"

    # The CA refuses the old key now, by kid and by jwk alike.
    with pytest.raises(AcmeProblem) as by_kid:
        account_object(pebble, old, kid)
    assert (by_kid.value.short_type, by_kid.value.status) == (refusal[0], 400)
    assert refusal[1] in by_kid.value.detail

    async def lookup(acme: AcmeClient) -> Any:
        directory = await acme.directory()
        return await acme.post(directory.new_account, {"onlyReturnExisting": True},
                               old.sign)
    with pytest.raises(AcmeProblem) as by_jwk:
        on_ca(pebble, lookup)
    assert by_jwk.value.short_type == "accountDoesNotExist"


def test_rollover_needs_an_account(pebble: Any, tmp_path: Path) -> None:
    cf = Certfleet(pebble, tmp_path / "state")
    rc, out = cf.run("account", "rollover")
    assert rc == 1
    assert "no account for a key" in out
    assert not list((tmp_path / "state" / "accounts").glob("*/account.key*"))


# -- §7.3.6 deactivation ---------------------------------------------------------------------

def test_deactivate_then_clear_error_then_new_key(pebble: Any, tmp_path: Path) -> None:
    cf = Certfleet(pebble, tmp_path / "state")
    assert cf.issue("deactivate.example.com")[0] == 0
    kid = record(cf)["url"]
    key = AccountKey.load(key_dir(cf) / "account.key")
    assert key is not None

    rc, out = cf.run("account", "deactivate")
    assert rc == 1
    assert "pass --yes to proceed" in out
    assert account_object(pebble, key, kid)["status"] == "valid"

    rc, out = cf.run("account", "deactivate", "--yes")
    assert rc == 0, out
    assert record(cf)["status"] == "deactivated"
    with pytest.raises(AcmeProblem, match="unauthorized: Account has been deactivated"):
        account_object(pebble, key, kid)

    message = (f"account {kid} at {pebble.directory_url} is deactivated (RFC 8555 §7.3.6); "
               "register a new one with `certfleet account register --new-key`")
    rc, out = cf.issue("deactivate.example.com", "--force")
    assert (rc, out) == (1, f"deactivate.example.com: failed: {message}\n")
    rc, out = cf.run("account", "update", "--contact", "x@example.com")
    assert (rc, out) == (1, f"certfleet: {message}\n")
    # Without account.json, the CA's answer says the same.
    (key_dir(cf) / "account.json").unlink()
    rc, out = cf.issue("deactivate.example.com", "--force")
    assert rc == 1
    assert "is deactivated (RFC 8555 §7.3.6); register a new one" in out

    rc, out = cf.run("account", "register", "--new-key")
    assert rc == 0, out
    assert "old key moved aside to" in out
    assert record(cf)["url"] != kid
    assert record(cf)["status"] == "valid"
    # A new name: renewing deactivate.example.com would send ARI "replaces" for a
    # certificate the old account ordered, which Pebble refuses as "unauthorized" (and
    # issue._new_order does not yet retry that without "replaces").
    rc, out = cf.issue("new-account.example.com")
    assert rc == 0, out


# -- §7.6 revocation by the certificate's key -------------------------------------------------

def test_revoke_with_certificate_key(pebble: Any, tmp_path: Path) -> None:
    from cryptography import x509

    cf = Certfleet(pebble, tmp_path / "state")
    name = "revoke-by-key.example.com"
    assert cf.issue(name)[0] == 0
    base = cf.state / "certs" / name
    cert_pem, key_pem = (base / "cert.pem").read_bytes(), (base / "privkey.pem").read_bytes()
    serial = x509.load_pem_x509_certificate(cert_pem).serial_number
    assert pebble.cert_status(serial)["Status"] == "Valid"
    # No account at all: a bare client and the certificate's own key.
    other_key = (tmp_path / "other.pem")
    assert cf.issue("other-key.example.com")[0] == 0
    other_key.write_bytes((cf.state / "certs" / "other-key.example.com" /
                           "privkey.pem").read_bytes())
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        on_ca(pebble, lambda acme: revoke(acme, cert_pem, "keyCompromise",
                                          cert_key_pem=other_key.read_bytes()))
    on_ca(pebble, lambda acme: revoke(acme, cert_pem, "keyCompromise", cert_key_pem=key_pem))
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked"
    assert status["Reason"] == 1
    with pytest.raises(AcmeProblem, match="alreadyRevoked"):
        on_ca(pebble, lambda acme: revoke(acme, cert_pem, "keyCompromise",
                                          cert_key_pem=key_pem))


# -- §7.3.5 key change: a crash midway, and two at once ----------------------------------------

ROLLOVER_KILLED = """
import os, signal, sys
from certfleet import account_key
from certfleet.acme_client import AcmeClient
from certfleet.cli import main

when = sys.argv[1]
real_post = AcmeClient.post

async def post(self, url, payload, signer, accept=None):
    if when == "before-the-ca" and url == (await self.directory()).key_change:
        os.kill(os.getpid(), signal.SIGKILL)  # the new key is staged; the CA heard nothing
    return await real_post(self, url, payload, signer, accept)

def commit(self, now=None):  # the CA said yes; the key files were not switched yet
    os.kill(os.getpid(), signal.SIGKILL)

AcmeClient.post = post
account_key.Rollover.commit = commit
sys.exit(main(sys.argv[2:]))
"""

ROLLOVER_HELD = """
import asyncio, sys
from pathlib import Path
from certfleet.acme_client import AcmeClient
from certfleet.cli import main

waiting, go = Path(sys.argv[1]), Path(sys.argv[2])
real_post = AcmeClient.post

async def post(self, url, payload, signer, accept=None):
    if url == (await self.directory()).key_change:  # staged and locked: hold it there
        waiting.touch()
        while not go.exists():
            await asyncio.sleep(0.05)
    return await real_post(self, url, payload, signer, accept)

AcmeClient.post = post
sys.exit(main(sys.argv[3:]))
"""


def _account_exists(lab: Any, key: AccountKey) -> bool:
    """Whether the CA knows an account by ``key`` (newAccount, onlyReturnExisting)."""
    async def lookup(acme: AcmeClient) -> bool:
        directory = await acme.directory()
        try:
            await acme.post(directory.new_account, {"onlyReturnExisting": True}, key.sign)
        except AcmeProblem as exc:
            if exc.short_type == "accountDoesNotExist":
                return False
            raise
        return True
    found: bool = on_ca(lab, lookup)
    return found


@pytest.mark.parametrize("when", ["before-the-ca", "after-the-ca"])
def test_a_rollover_killed_midway_leaves_the_key_the_ca_holds(pebble: Any, tmp_path: Path,
                                                              when: str) -> None:
    """SIGKILL with the new key staged, before the CA hears of it or after it said yes but
    before the local switch: the next command finds which key the CA holds, makes it the
    account key (the other kept or dropped accordingly) and issues with it."""
    cf = Certfleet(pebble, tmp_path / "state")
    assert cf.issue(f"before-crash-{when}.example.com")[0] == 0
    kid = record(cf)["url"]
    folder = key_dir(cf)
    old = AccountKey.load(folder / "account.key")
    assert old is not None
    killed = subprocess.run(
        [sys.executable, "-c", ROLLOVER_KILLED, when, "account", "rollover", "--key-type",
         "ec384", *cf.common()], capture_output=True, text=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    staged = AccountKey.load(folder / "account.key.new")
    assert staged is not None
    assert mode(folder / "account.key.new") == 0o600
    assert _account_exists(pebble, staged) is (when == "after-the-ca")

    rc, out = cf.issue(f"after-crash-{when}.example.com")
    assert rc == 0, out
    assert record(cf)["url"] == kid                  # the same account, never a new one
    assert not (folder / "account.key.new").exists()
    now = AccountKey.load(folder / "account.key")
    assert now is not None
    kept = list(folder.glob("account.key.old-*"))
    if when == "after-the-ca":
        assert now.thumbprint == staged.thumbprint
        assert [AccountKey.load(p).thumbprint for p in kept] == [old.thumbprint]  # type: ignore[union-attr]
        assert not _account_exists(pebble, old)
    else:
        assert now.thumbprint == old.thumbprint
        assert kept == []
        assert not _account_exists(pebble, staged)
    assert record(cf)["thumbprint"] == now.thumbprint
    assert account_object(pebble, now, kid)["status"] == "valid"


def test_two_rollovers_at_once_the_second_refuses_and_no_key_is_lost(
        pebble: Any, tmp_path: Path) -> None:
    """One rollover is held between staging its key and asking the CA; meanwhile a second
    rollover, and an issuance, refuse cleanly (the account key is in flux); the first then
    finishes, and the account goes on with its key."""
    cf = Certfleet(pebble, tmp_path / "state")
    assert cf.issue("two-rollovers.example.com")[0] == 0
    kid = record(cf)["url"]
    folder = key_dir(cf)
    old = AccountKey.load(folder / "account.key")
    assert old is not None
    waiting, go = tmp_path / "waiting", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", ROLLOVER_HELD, str(waiting), str(go), "account", "rollover",
         "--key-type", "ec384", *cf.common()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # generous: only a stuck first run reaches it
        while not waiting.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first rollover never reached the CA"
            time.sleep(0.05)
        busy = (f"certfleet: {folder / 'account.key.new'}: another process is rolling the "
                "account key over right now; try again when it is done\n")
        assert cf.run("account", "rollover") == (1, busy)
        rc, out = cf.issue("during-rollover.example.com")
        assert rc == 1
        assert out.startswith("during-rollover.example.com: failed: "), out
        assert busy.removeprefix("certfleet: ") in out
        assert AccountKey.load(folder / "account.key").thumbprint == old.thumbprint  # type: ignore[union-attr]
    finally:
        go.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    new = AccountKey.load(folder / "account.key")
    assert new is not None
    assert new.key_type is KeyType.EC384
    (kept,) = folder.glob("account.key.old-*")
    assert AccountKey.load(kept).thumbprint == old.thumbprint  # type: ignore[union-attr]
    assert not (folder / "account.key.new").exists()
    assert out == (f"account: {kid}: new ec384 key, thumbprint {new.thumbprint}; the old key "
                   f"is kept in {kept}\n")
    rc, out = cf.issue("after-two-rollovers.example.com")
    assert rc == 0, out
    assert record(cf)["url"] == kid
    assert account_object(pebble, new, kid)["status"] == "valid"
