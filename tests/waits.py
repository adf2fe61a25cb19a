"""How long a test waits for another process to do something (start listening, exit after
SIGTERM, drop a session).

The suite runs on a shared machine (2 cores, other suites running at once): a process
that is ready in a second on an idle machine can take many seconds under load. These
bounds only end a hang; no test checks how long the wait took, so they are long: a
healthy process is never near them, and a broken one costs a minute, not a false failure.
"""

from __future__ import annotations

PROCESS = 60.0  # seconds; about 1 s is typical here, under 10 s under load
