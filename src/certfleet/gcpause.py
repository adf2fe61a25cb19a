"""Pausing the cyclic garbage collector over work that makes no reference cycles. Touches
nothing.

Reading a domains file, the planning index and planning make one object after another for
each of up to 100,000 certificates and no reference cycle (nothing there refers back to
what holds it): the young-generation collections their allocations set off would find
nothing to free, yet cost a tenth of a no-op run. Reference counting frees everything as
usual meanwhile; only cycles wait, and there are none to wait.

Importing is the other such work: modules, classes and functions live as long as the
process. ``cli.entry`` keeps the collector off until a command's module is imported; the
imports a command makes later, on first use (the ACME client, issuing, a solver), are
made under ``paused()``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector off for the ``with`` block, then as it was (nested blocks too)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
