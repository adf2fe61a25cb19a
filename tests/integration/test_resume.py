"""A finalize whose answer is lost: the next attempt resumes the recorded order and
downloads the certificate, instead of ordering again."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certfleet.acme_client import AcmeClient
from certfleet.errors import ChallengeError, TransportError
from certfleet.keytypes import KeyType
from certfleet.registration import open_account
from certfleet.solvers.http_server import HttpServerSolver
from certfleet.store import Store
from tests.issuing import issue_names as issue

from .fleet_helpers import orders_seen

pytestmark = pytest.mark.integration
NAME = "resume.example.com"


class LosingClient(AcmeClient):
    """Sends the finalize request, then loses its answer."""

    async def post(self, url: str, payload: Any, signer: Any,
                   accept: str | None = None) -> Any:
        response = await super().post(url, payload, signer, accept)
        if "/finalize-order/" in url:
            raise TransportError(f"{url}: connection reset (the answer was lost)")
        return response


async def _attempt(lab: Any, store: Store, client_class: type[AcmeClient]) -> Any:
    async with client_class(lab.directory_url, ca_bundle=lab.ca_bundle) as client, \
            HttpServerSolver("127.0.0.1", lab.http_port) as solver:
        session = await open_account(client, store, KeyType.EC256, [])
        return await issue(session, store, [NAME], KeyType.EC256, solver)


def test_lost_finalize_answer_is_resumed(pebble_lab_factory: Any, tmp_path: Path) -> None:
    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    store = Store(tmp_path / "state")
    with pytest.raises(TransportError, match="the answer was lost"):
        asyncio.run(_attempt(lab, store, LosingClient))
    assert orders_seen(lab) == 1
    state = json.loads((tmp_path / "state" / "certs" / NAME / "state.json").read_text())
    assert state["order"]["names"] == [NAME]
    pending = (tmp_path / "state" / "certs" / NAME / "pending" / "privkey.pem").read_bytes()
    assert store.current(NAME) is None

    stored = asyncio.run(_attempt(lab, store, AcmeClient))
    assert orders_seen(lab) == 1                     # no second order
    assert stored.meta.order_url == state["order"]["url"]
    cert = x509.load_pem_x509_certificate(store.read_file(stored, "cert.pem"))
    key = serialization.load_pem_private_key(pending, None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert store.read_file(stored, "privkey.pem") == pending
    assert "order" not in json.loads(
        (tmp_path / "state" / "certs" / NAME / "state.json").read_text())
    assert not (tmp_path / "state" / "certs" / NAME / "pending").exists()


class _Killed(BaseException):
    """Stands for SIGKILL at one moment: nothing after it runs."""


def test_an_activation_cut_short_is_finished_without_a_new_order(
        pebble_lab_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after the new version is written, before ``current`` moves to it: the next
    attempt switches to that version instead of ordering (or storing) it again."""
    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    store = Store(tmp_path / "state")
    first = asyncio.run(_attempt(lab, store, AcmeClient))
    assert first.meta.version == 1

    def killed(self: Store, base: Path, version: int, has_key: bool) -> None:
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(Store, "_switch", killed)
        with pytest.raises(_Killed):
            asyncio.run(_attempt(lab, Store(tmp_path / "state"), AcmeClient))
    assert orders_seen(lab) == 2
    cert_dir = tmp_path / "state" / "certs" / NAME
    assert (cert_dir / "current").readlink() == Path("versions/1")
    assert not (cert_dir / "pending").exists()     # never both pending and written

    stored = asyncio.run(_attempt(lab, Store(tmp_path / "state"), AcmeClient))
    assert orders_seen(lab) == 2                   # no third order
    assert stored.meta.version == 2
    assert (cert_dir / "current").readlink() == Path("versions/2")
    assert sorted(p.name for p in (cert_dir / "versions").iterdir()) == ["1", "2"]
    assert "order" not in json.loads((cert_dir / "state.json").read_text())


# -- an earlier order that cannot be resumed: one new order ----------------------------------

def _recorded(tmp_path: Path) -> dict[str, Any]:
    state = json.loads((tmp_path / "state" / "certs" / NAME / "state.json").read_text())
    order: dict[str, Any] = state["order"]
    return order


def test_an_order_the_ca_no_longer_has_is_replaced_by_one_new_order(
        pebble_lab_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The recorded order is one the CA does not know (404): as after a CA lost its orders.
    The next attempt places exactly one new order, with the pending key, and issues."""
    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    store = Store(tmp_path / "state")
    with pytest.raises(TransportError, match="the answer was lost"):
        asyncio.run(_attempt(lab, store, LosingClient))
    real = _recorded(tmp_path)["url"]
    gone = real.rsplit("/", 1)[0] + "/no-such-order"
    state_path = tmp_path / "state" / "certs" / NAME / "state.json"
    state_path.write_text(state_path.read_text().replace(real, gone))
    pending = (tmp_path / "state" / "certs" / NAME / "pending" / "privkey.pem").read_bytes()

    with caplog.at_level(logging.INFO, logger="certfleet"):
        stored = asyncio.run(_attempt(lab, Store(tmp_path / "state"), AcmeClient))
    assert orders_seen(lab) == 2                     # the lost one, and one new
    assert stored.meta.order_url not in (real, gone)
    assert store.read_file(stored, "privkey.pem") == pending
    assert any(f"earlier order {gone} not usable" in m and "404" in m
               for m in caplog.messages), caplog.messages
    assert "order" not in json.loads(state_path.read_text())


def test_an_invalid_earlier_order_is_replaced_by_one_new_order(
        pebble_lab_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The first attempt's validation fails for real (nothing answers where Pebble asks),
    so its order goes invalid at the CA. The next attempt does not resume it: one new
    order, issued."""
    lab = pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})
    store = Store(tmp_path / "state")

    async def nowhere() -> Any:
        async with AcmeClient(lab.directory_url, ca_bundle=lab.ca_bundle) as client, \
                HttpServerSolver("127.0.0.1", _free_port()) as solver:
            session = await open_account(client, store, KeyType.EC256, [])
            return await issue(session, store, [NAME], KeyType.EC256, solver)

    with pytest.raises(ChallengeError, match=f"{NAME}: validation failed: connection"):
        asyncio.run(nowhere())
    first = _recorded(tmp_path)["url"]
    assert orders_seen(lab) == 1

    with caplog.at_level(logging.INFO, logger="certfleet"):
        stored = asyncio.run(_attempt(lab, Store(tmp_path / "state"), AcmeClient))
    assert orders_seen(lab) == 2
    assert stored.meta.order_url != first
    assert not any("resuming order" in m for m in caplog.messages), caplog.messages


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
