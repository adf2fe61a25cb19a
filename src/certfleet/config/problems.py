"""Collecting configuration faults: every one found, each ``file:line: reason``, raised together.

Touches nothing. A hostile 16 MiB file cannot fill memory with messages: the first
``MAX_REPORTED`` are kept and the rest only counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError

MAX_REPORTED = 100
CMDLINE = "command line"  # where a value given on the command line or in the environment is


class ConfigErrors(ConfigError):
    """Every problem found in the configuration, each ``file:line: reason``.

    ``problems`` holds the first ``MAX_REPORTED``; ``more`` counts the others. ``str()`` is
    one problem per line, then ``... and N more``.
    """

    def __init__(self, problems: Sequence[str], more: int = 0) -> None:
        self.problems = list(problems[:MAX_REPORTED])
        self.more = more + max(0, len(problems) - MAX_REPORTED)
        tail = [f"... and {self.more} more"] if self.more else []
        super().__init__("\n".join(self.problems + tail))


class Problems:
    """A collector: add every fault found, raise them all together at the end."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.more = 0

    def add(self, where: str, reason: str) -> None:
        if len(self.shown) < MAX_REPORTED:
            self.shown.append(f"{where}: {reason}")
        else:
            self.more += 1

    def raise_if_any(self) -> None:
        if self.shown:
            raise ConfigErrors(self.shown, self.more)
