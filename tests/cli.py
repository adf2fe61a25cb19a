"""Running the command line in-process, as an operator's terminal would show it."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Sequence

from certfleet.cli import main

LOG_LINE = re.compile(r"certfleet: (DEBUG|INFO|WARNING|ERROR|CRITICAL): ")


def run_main(argv: Sequence[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def run_shown(argv: Sequence[str]) -> tuple[int, str]:
    """(exit code, what the operator reads): stdout, then the errors on stderr, without the
    log lines that -v adds there."""
    rc, out, err = run_main(argv)
    errors = "".join(line for line in err.splitlines(keepends=True) if not LOG_LINE.match(line))
    return rc, out + errors
