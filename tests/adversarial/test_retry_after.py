"""Absurd Retry-After values: certfleet neither sleeps absurdly long nor crashes.

Library level (``issue.obtain``), with the session's clock and sleep injected: the clock
moves only when certfleet sleeps, so the poll deadline is reached at once whatever the
machine's load. The CA never finishes, and keeps asking for waits of 10^12 seconds,
negative ones, garbage, or until the year 9999. Every wait certfleet takes is at most
``timing.MAX_POLL``, the waits add up to no more than the deadline, and the deadline ends
the attempt with one clear ``ChallengeError`` naming the domain.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from certfleet import keys
from certfleet.account_key import AccountKey
from certfleet.acme_client import AcmeClient
from certfleet.errors import ChallengeError
from certfleet.keytypes import KeyType
from certfleet.order import obtain
from certfleet.protocol.timing import MAX_POLL
from certfleet.session import Session
from certfleet.solvers.webroot import WebrootSolver

from .fakeca import FakeCA

DEADLINE = 1.5
ABSURD = {
    "10^12 seconds": "1000000000000",
    "20 digits": "9" * 20,
    "negative": "-30",
    "garbage": "soon, maybe",
    "year 9999": "Fri, 31 Dec 9999 23:59:59 GMT",
    "year 1900": "Mon, 01 Jan 1900 00:00:00 GMT",
    "impossible date": "Fri, 31 Feb 2025 25:61:61 GMT",
    "fraction": "0.000001",
}


def _obtain(ca: FakeCA, webroot: Path, sleeps: list[float]) -> BaseException | None:
    """The attempt, on a clock that only the session's sleep moves (by what it was asked
    to wait): ``sleeps`` is every wait, and their sum is the time the attempt took."""
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if sum(sleeps) > DEADLINE:  # a failure, where a missed deadline would poll forever
            raise AssertionError(f"waited past the deadline: {sleeps}")
        await asyncio.sleep(0)

    async def go() -> None:
        async with AcmeClient(ca.directory_url, allow_http=True) as client:
            session = Session(client, AccountKey.generate(KeyType.EC256), ca.url("/acct/1"),
                              sleep=sleep, validation_timeout=DEADLINE,
                              clock=lambda: sum(sleeps))
            await obtain(session, ["x.example"], keys.new_domain_key(KeyType.EC256),
                         WebrootSolver(webroot))

    try:
        asyncio.run(go())
    except BaseException as exc:  # the test asserts what it was
        return exc
    return None


@pytest.mark.parametrize("value", ABSURD.values(), ids=ABSURD.keys())
def test_validation_that_never_ends(ca: FakeCA, tmp_path: Path, value: str) -> None:
    ca.validate = False  # the authorization stays pending forever
    for path in ("/authz/1", "/chall/1"):
        ca.tweak(path, lambda obj: obj, **{"Retry-After": value})
    sleeps: list[float] = []
    error = _obtain(ca, tmp_path, sleeps)
    assert isinstance(error, ChallengeError), repr(error)
    assert str(error).startswith("x.example: validation: still not done after the deadline"
                                 " (CA asks to wait ")
    assert all(0 < s <= MAX_POLL for s in sleeps), sleeps
    assert sum(sleeps) <= DEADLINE
    assert list(tmp_path.iterdir()) == []  # the token file was cleaned up


@pytest.mark.parametrize("value", ABSURD.values(), ids=ABSURD.keys())
def test_finalize_that_never_ends(ca: FakeCA, tmp_path: Path, value: str) -> None:
    """The order stays ``processing`` after finalize, with the same Retry-After."""
    ca.tweak("/finalize/1", lambda order: {**order, "status": "processing"},
             **{"Retry-After": value})
    ca.tweak("/order/1", lambda order: {**order, "status": "processing"},
             **{"Retry-After": value})
    sleeps: list[float] = []
    error = _obtain(ca, tmp_path, sleeps)
    assert isinstance(error, ChallengeError), repr(error)
    assert str(error).startswith("x.example: still not done after the deadline")
    assert all(0 < s <= MAX_POLL for s in sleeps), sleeps
    assert sum(sleeps) <= DEADLINE


def test_a_huge_retry_after_on_a_problem_is_only_carried(ca: FakeCA, tmp_path: Path) -> None:
    """A rate-limit problem with Retry-After 10^12: the error carries it, nothing waits."""
    async def limited(request: Any) -> Any:
        return ca.json({"type": "urn:ietf:params:acme:error:rateLimited",
                        "detail": "slow down"}, 429, **{"Retry-After": "1000000000000"})

    ca.overrides["/order"] = limited
    sleeps: list[float] = []
    error = _obtain(ca, tmp_path, sleeps)
    assert str(error) == f"{ca.url('/order')}: rateLimited: slow down"
    assert getattr(error, "retry_after", None) == 1e11  # 12 digits read, the rest ignored
    assert sleeps == []  # the session's sleep is the only way certfleet waits
