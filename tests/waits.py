"""How long a test waits for another process to do something (start listening, exit after
SIGTERM, drop a session).

The suite runs on a shared machine (2 cores, other suites running at once): a process
that is ready in a second on an idle machine can take many seconds under load. These
bounds only end a hang; no test checks how long the wait took, so they are long: a
healthy process is never near them, and a broken one costs a minute, not a false failure.
"""

from __future__ import annotations

import os

PROCESS = 60.0  # seconds; about 1 s is typical here, under 10 s under load

# A scenario on one event loop (a client and a fake CA) that hangs: it takes well under a
# second, a few seconds under load. ``make mutate`` (which sets CERTFLEET_MUTATING) bounds
# it tighter: a mutant that breaks the nonce hand-off holds each test it reaches for the
# whole bound, and there are hundreds of those.
SCENARIO = 5.0 if os.environ.get("CERTFLEET_MUTATING") else 20.0
