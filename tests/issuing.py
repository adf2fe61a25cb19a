"""Issuing one certificate in-process, the way the fleet runner does: under its lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from certfleet.issuance import issue
from certfleet.keytypes import KeyType
from certfleet.session import Session
from certfleet.solvers import Solver
from certfleet.spec import CertSpec
from certfleet.store import Store, StoredCert


async def issue_names(session: Session, store: Store, names: Sequence[str],
                      key_type: KeyType, solver: Solver, reuse_key: bool = False,
                      **options: Any) -> StoredCert:
    """``issuance.issue`` for ``names``; ``options``: profile, preferred_chain, replaces."""
    replaces = options.pop("replaces", None)
    spec = CertSpec(names=tuple(names), key_type=key_type, reuse_key=reuse_key,
                    challenge=solver.challenge_type, **options)
    async with store.locked(spec.name):
        return await issue(session, store, spec, solver, replaces=replaces)
