"""Crash safety of `certfleet run` under SIGKILL at random moments (tools/kill9.py).

24 rounds over one state directory and 20 certificates, killed at a moment drawn uniformly
from the measured run time; then the invariants, one normal run, the invariants again.
The campaign's seed comes from the session seed (tests/conftest.py) and is printed, and
named in the failure messages; reproduce with
``CERTFLEET_TEST_SEED=<session seed> pytest tests/faults/test_kill9.py`` or
``.venv/bin/python tools/kill9.py --seed <campaign seed> --rounds 24 --certs 20``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_pebble

pytestmark = pytest.mark.integration

ROUNDS = 24
CERTS = 20


def test_kill9_rounds_keep_the_state_whole(tmp_path: Path, rng_seed: int) -> None:
    require_pebble()
    import kill9

    seed = rng_seed
    print(f"kill9 seed: {seed} (tools/kill9.py --seed {seed} reproduces the kill moments)")
    report = kill9.campaign(tmp_path, rounds=ROUNDS, certs=CERTS, seed=seed)
    print(report.summary())  # shown by pytest on failure

    assert len(report.rounds) == ROUNDS
    assert report.killed >= ROUNDS // 3, f"seed {seed}: too few runs were killed"
    assert report.forced >= 3, f"seed {seed}: too few renewals were killed midway"
    assert report.final_rc in (0, 1, 2)
    # The bound asserted: every order ends in a stored version or was in flight in a killed
    # run (at most `concurrency` = 4 each), and there is one first issuance per certificate
    # and at most one renewal per certificate per --force round.
    assert report.bound_low <= report.orders <= report.bound_high, report.summary()
    assert report.orders <= report.bound_coarse, report.summary()
    assert not report.violations, (
        f"seed {seed}: {len(report.violations)} violation(s):\n" + "\n".join(report.violations))
