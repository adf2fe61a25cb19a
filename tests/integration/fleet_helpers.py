"""Helpers for `certfleet run` tests: write a configuration, run the CLI, count orders."""

from __future__ import annotations

import re
from typing import Any

from labconfig import toml_value, write_config

from tests.cli import run_shown

__all__ = ["orders_seen", "run_cli", "toml_value", "write_config"]


def run_cli(*argv: str) -> tuple[int, str]:
    rc, out = run_shown(argv)
    print(f"$ certfleet {' '.join(argv)}\n{out}[exit {rc}]")  # shown on failure
    return rc, out


def orders_seen(lab: Any) -> int:
    """How many orders Pebble created (its log says 'Added order ... to the db')."""
    return len(re.findall(r'Added order "[^"]+" to the db', lab.log_text()))


def by_name(out: str) -> dict[str, str]:
    """Each certificate's line of a run's output, by certificate (lines come in the order
    the certificates finish, not in file order); the summary line under ``""``."""
    found = {}
    for line in out.splitlines():
        name, sep, _ = line.partition(": ")
        found[name if sep and " " not in name else ""] = line
    return found
