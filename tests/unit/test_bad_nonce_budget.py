"""badNonce retries are bounded in time as well as in number: a CA that answers every try
with badNonce, each just under the request timeout, held one POST ~50 minutes (101 tries
of ~30 s). No retry starts once ``bad_nonce_budget`` seconds (60 by default) have passed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from certfleet.acme_client import AcmeClient
from certfleet.errors import ProtocolError

from ..adversarial.fakeca import FakeCA


@pytest.fixture
def ca() -> Iterator[FakeCA]:
    fake = FakeCA().start()
    yield fake
    fake.stop()


def _signer(url: str, nonce: str, payload: Any) -> dict[str, Any]:
    return {"protected": nonce, "payload": "", "signature": "sig"}


def test_slow_bad_nonces_give_up_after_the_budget(ca: FakeCA) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.2)
        return ca.problem("badNonce", "stale", 400)

    ca.overrides["/account"] = slow

    async def go() -> None:
        async with AcmeClient(ca.directory_url, allow_http=True,
                              bad_nonce_budget=0.5) as client:
            await client.post(ca.url("/account"), {}, _signer)

    started = time.monotonic()
    with pytest.raises(ProtocolError) as caught:
        asyncio.run(go())
    took = time.monotonic() - started
    tries = ca.count("POST /account")
    assert str(caught.value) == (f"{ca.url('/account')}: badNonce {tries} times in a row, "
                                 "retried for 0.5 s; giving up")
    assert 3 <= tries <= 5, tries  # retries start until 0.5 s; the last one ends by 0.7 s
    assert took < 2.0


def test_the_budget_is_a_minute_by_default() -> None:
    client = AcmeClient("https://ca.example/dir")
    assert client.bad_nonce_budget == 60.0  # twice the 30 s request timeout
    assert client.max_bad_nonce == 100      # the count is unchanged: see BAD_NONCE_BUDGET


def test_fast_bad_nonces_are_still_retried(ca: FakeCA) -> None:
    """A few badNonce answered at once: retried within the budget, and the POST succeeds."""
    seen = {"n": 0}

    async def flaky(request: web.Request) -> web.StreamResponse:
        seen["n"] += 1
        if seen["n"] <= 3:
            return ca.problem("badNonce", "stale", 400)
        return await ca.default(request)

    ca.overrides["/account"] = flaky

    async def go() -> int:
        async with AcmeClient(ca.directory_url, allow_http=True,
                              bad_nonce_budget=0.5) as client:
            return (await client.post(ca.url("/account"), {}, _signer)).status

    assert asyncio.run(go()) == 200
    assert seen["n"] == 4
