"""Pausing the cyclic garbage collector over work that makes no reference cycles. Touches
nothing.

Reading a domains file, the planning index and planning make one object after another for
each of up to 100,000 certificates and no reference cycle (nothing there refers back to
what holds it): the young-generation collections their allocations set off would find
nothing to free, yet cost a tenth of a no-op run. Reference counting frees everything as
usual meanwhile; only cycles wait, and there are none to wait.

Importing is the other such work: modules, classes and functions live as long as the
process. ``cli.entry`` keeps the collector off until a command's module is imported, then
freezes what is there (``gc.freeze``: out of every collection's sight); the imports a
command makes later, on first use (the ACME client, issuing, a solver), are made under
``importing()``, which does the same for what they made.
"""

from __future__ import annotations

import contextlib
import gc
import sys
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


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """``paused()`` over imports made on first use; when they imported anything, every object
    alive is then frozen (``gc.freeze``). Otherwise the next collections would go over each
    object the imports made, once a generation: the four after an ``issue``'s first-use
    imports took 4 to 8 ms. Frozen objects are still freed when no longer referenced; only a
    reference cycle among those alive now would wait for the process's end, and the imports
    run before a command's work (or with its first certificate), when little else lives."""
    modules = len(sys.modules)
    with paused():
        yield
        if len(sys.modules) != modules:
            gc.freeze()
