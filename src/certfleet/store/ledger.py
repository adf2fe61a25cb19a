"""The new orders an account placed: ``STATE/accounts/<ca-id>/orders.json``.

Touches that file and its lock (``orders.lock``) only. Runs that overlap (each over other
certificates) change the ledger in turn under an ``flock`` held for the read and the
write, never longer, so both of their reservations count.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import fsutil
from ..errors import StoreError
from ..ratelimits import Ledger, ledger_from_json, ledger_to_json

MAX_FILE = 8 << 20


def read(account_dir: Path) -> Ledger:
    """The ledger, or an empty one if there is none or it cannot be read (the CA enforces
    its limit anyway; the ledger only keeps runs from running into it)."""
    try:
        return ledger_from_json(json.loads(fsutil.read_small(account_dir / "orders.json",
                                                             MAX_FILE)))
    except (OSError, ValueError, RecursionError, StoreError):
        return Ledger()


def change(account_dir: Path, how: Callable[[Ledger], Ledger]) -> Ledger:
    """Apply ``how`` to the ledger under its lock and write the result atomically."""
    with _locked(account_dir / "orders.lock"):
        ledger = how(read(account_dir))
        data = json.dumps(ledger_to_json(ledger), separators=(",", ":")).encode() + b"\n"
        fsutil.write_atomic(account_dir / "orders.json", data, mode=0o600)
    return ledger


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"{path}: cannot lock: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
