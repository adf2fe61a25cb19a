"""Helpers for `certfleet run` tests: write a configuration, run the CLI, count orders."""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

from labconfig import toml_value, write_config

from certfleet.cli import main

__all__ = ["orders_seen", "run_cli", "toml_value", "write_config"]


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(list(argv))
    print(f"$ certfleet {' '.join(argv)}\n{out.getvalue()}[exit {rc}]")  # shown on failure
    return rc, out.getvalue()


def orders_seen(lab: Any) -> int:
    """How many orders Pebble created (its log says 'Added order ... to the db')."""
    return len(re.findall(r'Added order "[^"]+" to the db', lab.log_text()))
