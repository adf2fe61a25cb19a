"""A CA's text and its Retry-After, bounded: a problem with 1,000 subproblems, a terms of
service URL of 900 KB, and "Retry-After: 0" on an authorization that stays pending.

Each printed line stays short and escaped, and certfleet's polls slow down on their own
schedule however often the CA says it may ask.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .fakeca import FakeCA
from .harness import CONTROL, Harness

ERR = "urn:ietf:params:acme:error:"


def test_a_thousand_subproblems_make_one_short_line(ca: FakeCA, h: Harness) -> None:
    before = h.issue_good()
    sub = {"type": ERR + "caa", "detail": "D" * 290,
           "identifier": {"type": "dns", "value": "N" * 290}}

    async def refused(request: web.Request) -> web.Response:
        return ca.json({"type": ERR + "rejectedIdentifier", "detail": "refused",
                        "subproblems": [sub] * 1000}, 400)

    ca.overrides["/order"] = refused
    line = h.refused(*h.issue("--force"), "rejectedIdentifier: refused", before=before)
    assert len(line) < 2100, len(line)  # errors.MAX_PROBLEM, and the count
    shown = line.count("D" * 290)
    assert 1 <= shown <= 5  # errors.MAX_SUBPROBLEMS
    assert line.endswith(f"; and {1000 - shown} more")


def test_a_huge_terms_of_service_url_is_logged_cut_and_escaped(ca: FakeCA,
                                                                h: Harness) -> None:
    terms = "https://ca/\x1b]0;pwn\x07\x1b[2J" + "T" * 900_000
    ca.tweak("/dir", lambda d: {**d, "meta": {"termsOfService": terms}})
    rc, out = h.issue("-v")
    assert rc == 0, out
    [said] = [line for line in h.stderr.splitlines() if "terms of service" in line]
    assert said.endswith("https://ca/\\x1b]0;pwn\\x07\\x1b[2J" + "T" * 268 + "...")
    assert not CONTROL.search(h.stderr.replace("\n", ""))
    assert max(map(len, h.stderr.splitlines())) < 1000


def test_retry_after_zero_does_not_make_polls_fast(ca: FakeCA, h: Harness) -> None:
    """The authorization stays pending for 1.5 s with "Retry-After: 0" on every answer:
    certfleet's own growing intervals are the floor (5 ms, 50 ms, 0.1 s, ...), so it asks
    a handful of times, not every 50 ms (30 times) as before."""
    ca.validate = False
    valid_at = time.monotonic() + 1.5

    def authz(a: dict[str, Any]) -> dict[str, Any]:
        return {**a, "status": "valid"} if time.monotonic() > valid_at else a

    ca.tweak("/authz/1", authz, **{"Retry-After": "0"})
    ca.tweak("/chall/1", lambda c: c, **{"Retry-After": "0"})
    rc, out = h.issue()
    assert rc == 0, out
    polls = ca.count("POST /authz/1") - 1  # the first fetch is no poll
    assert 3 <= polls <= 10, polls
