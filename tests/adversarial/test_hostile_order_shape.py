"""An order whose shape would have certfleet work for the CA: more authorizations than
identifiers, or one URL listed again and again; and an alternate chain that fails while
the default one is good."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from .fakeca import FakeCA, pem
from .harness import Harness


@pytest.fixture
def before(h: Harness) -> dict[str, str]:
    return h.issue_good()


@pytest.mark.parametrize("authorizations", [
    lambda urls: urls + [f"{urls[0]}-{i}" for i in range(999)],   # a thousand for one name
    lambda urls: urls * 3,                                          # one listed three times
])
def test_more_authorizations_than_identifiers_are_refused_before_any_is_fetched(
        ca: FakeCA, h: Harness, before: dict[str, str], authorizations: Any) -> None:
    def shaped(order: dict[str, Any]) -> dict[str, Any]:
        return {**order, "authorizations": authorizations(order["authorizations"])}

    ca.tweak("/order", shaped)
    fetched = ca.count("POST /authz/*")
    h.refused(*h.issue("--force"), "the order lists", "authorizations",
              "for 1 identifiers", before=before)
    assert ca.count("POST /authz/*") == fetched
    assert ca.count("POST /chall/*") == 1   # the first, good issue's only


@pytest.mark.parametrize("failure", ["500", "text/html"])
def test_a_failing_alternate_chain_leaves_the_default_one(
        ca: FakeCA, h: Harness, before: dict[str, str], failure: str) -> None:
    """--preferred-chain asks for alternates; one that fails to download is passed over
    with a warning, and the good default chain is kept."""
    ca.alternates = [pem(ca.pki.cert)]

    async def broken(request: web.Request) -> web.Response:
        if failure == "500":
            return ca.problem("serverInternal", "alternate gone", 500)
        return ca.raw(b"<html>", "text/html")

    ca.prefixes["/cert/1/alt/"] = broken
    rc, out = h.issue("--force", "--preferred-chain", "No Such Root")
    assert rc == 0, out
    assert h.current() == "versions/2"
    assert "alternate chain" in h.stderr
