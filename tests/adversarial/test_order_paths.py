"""Order paths Pebble cannot be made to take, against the fake CA: a finalize answered with
``orderNotReady`` (RFC 8555 §7.4: the CA's order was not ready yet), an earlier order the CA
reports expired, and a CA whose directory offers no renewal information (RFC 9773): the
lifetime rule decides, no ARI request is made, no ``replaces`` is sent.

The same paths against Pebble where it can take them: tests/integration/test_resume.py (an
earlier order the CA no longer has, or that went invalid) and tests/integration/test_ari.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509

from tests.cli import run_shown

from .fakeca import FakeCA
from .harness import Harness

ERR = "urn:ietf:params:acme:error:"


def _not_ready_then(ca: FakeCA, *, order_status: str, times: int = 1,
                    error: dict[str, Any] | None = None) -> None:
    """Answer the first ``times`` finalize requests with ``orderNotReady``, the order now
    being ``order_status`` (with ``error``); later ones as usual."""
    answered = 0

    async def finalize(request: web.Request) -> web.StreamResponse:
        nonlocal answered
        if answered < times:
            answered += 1
            ca.order_status = order_status
            ca.order_error = error
            return ca.problem("orderNotReady", "the order is not ready for finalization")
        return await ca.default(request)

    ca.overrides["/finalize/1"] = finalize


def _order_with_error(ca: FakeCA) -> None:
    """``/order/1`` as usual, with ``ca.order_error`` in it when set."""
    async def order(request: web.Request) -> web.StreamResponse:
        obj = ca.order_json()
        if getattr(ca, "order_error", None):
            obj["error"] = ca.order_error
        return ca.json(obj)

    ca.overrides["/order/1"] = order


# -- finalize answered with orderNotReady -------------------------------------------------------

def test_order_not_ready_waits_for_the_order_and_finalizes_once_more(
        ca: FakeCA, h: Harness) -> None:
    _not_ready_then(ca, order_status="ready")
    rc, out = h.issue()
    assert rc == 0, out
    assert out.startswith(f"{h.name}: issued (expires ")
    assert ca.count("POST /finalize/1") == 2
    assert ca.count("POST /order") == 1               # the same order, not a new one
    assert ca.count("POST /order/1") >= 1             # looked at before finalizing again
    assert len(ca.csrs) == 1                          # the refused finalize made nothing
    assert h.current() == "versions/1"


def test_order_not_ready_and_then_invalid_is_one_line_naming_the_cause(
        ca: FakeCA, h: Harness) -> None:
    _order_with_error(ca)
    _not_ready_then(ca, order_status="invalid",
                    error={"type": f"{ERR}unauthorized", "detail": "authorization expired"})
    line = h.refused(*h.issue(), "order failed: unauthorized: authorization expired",
                     current=None)
    assert line == f"{h.name}: failed: {h.name}: order failed: unauthorized: authorization " \
                   "expired"
    assert ca.count("POST /finalize/1") == 1          # never finalized against an invalid one
    assert ca.count("POST /order") == 1


def test_order_not_ready_twice_gives_up_with_the_cas_reason(ca: FakeCA, h: Harness) -> None:
    _not_ready_then(ca, order_status="ready", times=2)
    line = h.refused(*h.issue(), "orderNotReady", "the order is not ready for finalization",
                     current=None)
    assert ca.url("/finalize/1") in line
    assert ca.count("POST /finalize/1") == 2          # once more, not a loop
    assert ca.count("POST /order") == 1


# -- an earlier order the CA says is expired ------------------------------------------------------

@pytest.mark.parametrize("expired", ["order", "authorization"])
def test_an_expired_earlier_order_is_replaced_by_one_new_order(ca: FakeCA, h: Harness,
                                                               expired: str) -> None:
    """The first attempt's finalize fails at the CA: the order is recorded for the next
    attempt. The CA then reports it expired: the order itself (invalid, ``expires``
    passed), or the order still pending but its authorization expired. One new order is
    placed, with the same pending key, and issued."""
    async def broken(request: web.Request) -> web.StreamResponse:
        return ca.problem("serverInternal", "the CA fell over", 500)

    ca.overrides["/finalize/1"] = broken
    rc, out = h.issue()
    assert rc == 1, out
    state = json.loads((h.cert_dir / "state.json").read_text())
    assert state["order"]["url"] == ca.url("/order/1")
    pending = (h.cert_dir / "pending" / "privkey.pem").read_bytes()

    del ca.overrides["/finalize/1"]
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    ca.authz_status[1] = "pending"  # the recorded order waits for its authorization again
    looked = 0

    async def expired_once(request: web.Request) -> web.StreamResponse:
        nonlocal looked
        looked += 1
        if looked > 1:  # the new order's (same path here) answers as usual
            return await ca.default(request)
        if expired == "order":
            return ca.json({**ca.order_json(), "status": "invalid", "expires": past})
        return ca.json({**ca.authz_json(1), "status": "expired", "expires": past})

    ca.overrides["/order/1" if expired == "order" else "/authz/1"] = expired_once
    orders = ca.count("POST /order")
    rc, out = h.issue("--force")
    assert rc == 0, out
    assert looked >= 1
    assert ca.count("POST /order") == orders + 1      # one new order, no more
    assert ca.count("POST /chall/1") == 2             # none for the expired one
    assert (h.cert_dir / "privkey.pem").read_bytes() == pending
    assert "order" not in json.loads((h.cert_dir / "state.json").read_text())
    assert not (h.cert_dir / "pending").exists()


# -- a CA without renewal information -------------------------------------------------------------

def _config(ca: FakeCA, tmp_path: Path, name: str) -> Path:
    (tmp_path / "domains.txt").write_text(f"{name}\n")
    (tmp_path / "webroot").mkdir(exist_ok=True)
    config = tmp_path / "certfleet.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\ndomains = "{tmp_path / "domains.txt"}"'
                      f'\n[ca]\ndirectory = "{ca.directory_url}"\nallow_http = true\n'
                      f'[challenge]\nwebroot = "{tmp_path / "webroot"}"\n')
    return config


def _run(*argv: str) -> tuple[int, str]:
    rc, out = run_shown(argv)
    print(f"$ certfleet {' '.join(argv)}\n{out}[exit {rc}]")
    return rc, out


def test_a_ca_without_renewal_information_leaves_the_lifetime_rule_in_charge(
        ca: FakeCA, tmp_path: Path) -> None:
    name = "no-ari.example"
    config = _config(ca, tmp_path, name)
    rc, out = _run("run", "--config", str(config))
    assert rc == 0, out
    cert = x509.load_pem_x509_certificate(
        (tmp_path / "state" / "certs" / name / "cert.pem").read_bytes())
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)  # ARI could
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc

    # The next run asks the directory, finds no renewalInfo, and plans by the lifetime.
    seen = len(ca.requests)
    rc, out = _run("run", "--config", str(config))
    assert rc == 2, out
    due = cert.not_valid_after_utc - lifetime / 3
    assert out.startswith(f"{name}: not due until {due:%Y-%m-%d}"), out
    assert ca.requests[seen:] == ["GET /dir"]        # no ARI request, nothing signed
    state = json.loads((tmp_path / "state" / "certs" / name / "state.json").read_text())
    assert state["ari"]["error"] == "the CA offers no ARI"
    assert state["ari"]["serial"] == f"{cert.serial_number:x}"
    assert datetime.fromisoformat(state["ari"]["next_fetch"]) > datetime.now(UTC) + \
        timedelta(hours=23)
    rc, out = _run("status", "--config", str(config), "--json")
    assert json.loads(out)[0]["renewal"]["source"] == "lifetime"

    # Asked again only tomorrow: this run sends nothing at all.
    seen = len(ca.requests)
    assert _run("run", "--config", str(config))[0] == 2
    assert ca.requests[seen:] == []

    # A renewal is ordered without ``replaces``: the CA has no ARI to take it.
    rc, out = _run("run", "--config", str(config), "--force")
    assert rc == 0, out
    assert out.startswith(f"{name}: renewed (expires ")
    new_orders = [payload for path, payload in ca.payloads if path == "/order"]
    assert len(new_orders) == 2
    assert all("replaces" not in payload for payload in new_orders), new_orders
