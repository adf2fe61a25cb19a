"""Actions in a child process, for what a test must not do to pytest's own process: take
another user's identity, change its root directory, run work that cannot be interrupted."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
from collections.abc import Callable


def in_child(action: Callable[[], None]) -> str:
    """Run ``action`` in a forked child; what it raised, or 'no error'. The child never
    returns into pytest, so what it changes about itself (user, root directory) stays there."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: try, report, exit
        message = b"no error"
        try:
            action()
        except BaseException as exc:  # the parent asserts on the message
            message = f"{type(exc).__name__}: {exc}".encode()
        finally:
            os.write(write, message)
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        return pipe.read().decode()


def as_nobody(action: Callable[[], None]) -> str:
    """``action`` as 'nobody': root ignores modes, so only another user shows what modes
    refuse."""
    def dropped() -> None:
        os.setgroups([])
        os.setgid(grp.getgrnam("nogroup").gr_gid)
        os.setuid(pwd.getpwnam("nobody").pw_uid)
        action()

    return in_child(dropped)


def python_within(code: str, seconds: float = 30.0) -> str:
    """The standard output of ``code`` run by a new Python process given ``seconds``
    (``subprocess.TimeoutExpired`` after them): for work that, gone wrong, would hold
    pytest's own process where nothing can interrupt it (a regular expression that
    backtracks runs in C, between two of the interpreter's checks for signals)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=seconds, check=True).stdout
