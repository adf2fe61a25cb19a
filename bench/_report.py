"""The figures as results: one line each, the table, a section of bench/FIGURES.md and
JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

UNITS = {"s": "{:.3f} s", "x": "{:.2f}x", "ms": "{:.0f} ms", "MB": "{:.1f} MB",
         "req": "{:.2f}", "n": "{:.0f}"}


@dataclass
class Result:
    """One figure: ``value`` against ``target`` (``op``: "<" or "<="); no target: info."""

    key: str
    label: str
    unit: str
    target: float | None = None
    op: str = "<="
    value: float | None = None
    detail: str = ""
    timed_out: float | None = None   # seconds measured when the budget ran out
    error: str | None = None
    samples: list[float] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "ERROR"
        if self.timed_out is not None:
            return "MISS (timed out)"
        if self.value is None:
            return "n/a"
        if self.target is None:
            return "info"
        ok = self.value < self.target if self.op == "<" else self.value <= self.target
        return "PASS" if ok else "MISS"

    @property
    def shown(self) -> str:
        if self.error is not None:
            return "error"
        if self.timed_out is not None:
            return f"> {self.timed_out:.0f} s (timed out)"
        if self.value is None:
            return "n/a"
        return UNITS[self.unit].format(self.value)

    @property
    def goal(self) -> str:
        if self.target is None:
            return "-"
        return f"{self.op} " + UNITS[self.unit].format(self.target).replace(".00x", "x")

    @property
    def ratio(self) -> str:
        if self.target is None or self.value is None or self.timed_out is not None:
            return "-"
        return f"{self.value / self.target:.2f}"

    def line(self) -> str:
        text = f"{self.key:<4} {self.label:<46} {self.shown:>12}  {self.goal:>9}  " \
               f"{self.ratio:>5}  {self.status}"
        more = self.error or self.detail
        return f"{text}  [{more}]" if more else text

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data.update(status=self.status, ratio=None if self.ratio == "-" else float(self.ratio))
        return data


HEADER = f"{'#':<4} {'figure':<46} {'value':>12}  {'target':>9}  {'ratio':>5}  result"


def table(results: list[Result]) -> str:
    return "\n".join([HEADER, *(r.line() for r in results)])


INTRO = """# certfleet benchmark figures (issue 13)

Produced by `bench/figures.py` (`make bench`). Each figure is a whole `python -m certfleet`
process of the measured tree (`PYTHONPATH=TREE/src`) against a local Pebble on 127.0.0.1
(`PEBBLE_VA_NOSLEEP=1`, `PEBBLE_WFE_NONCEREJECT=0`, `PEBBLE_AUTHZREUSE=0`), certfleet's own
http-01 responder, and the config defaults of the tree (no `concurrency` set). Times are
wall clock, medians where several runs are made; CPU and peak RSS are the certfleet
child's own (`wait4`). The machine is shared, so figures are noisy; compare medians, and
rerun before drawing fine conclusions.

Each section below is rewritten by the command written in it, between its markers; the
rest of this file is kept.
"""


def markers(section: str) -> tuple[str, str]:
    return f"<!-- figures:{section} -->", f"<!-- /figures:{section} -->"


def markdown(results: list[Result], about: dict[str, str], command: str) -> str:
    """One section: what was measured, the command, the table."""
    rows = ["| # | figure | value | target | value/target | result | how |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        how = (r.error or r.detail).replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {r.key} | {r.label} | {r.shown} | {r.goal} | {r.ratio} | "
                    f"{r.status} | {how} |")
    facts = "\n".join(f"- {k}: {v}" for k, v in about.items())
    return f"""{facts}

Command:

    {command}

{chr(10).join(rows)}
"""


def write_markdown(path: Path, results: list[Result], about: dict[str, str],
                   command: str, section: str) -> None:
    """Put the figures in ``section`` of the file at ``path`` (made if missing), between
    its markers; everything else in the file stays as it is."""
    text = path.read_text() if path.exists() else INTRO
    start, end = markers(section)
    if start not in text or end not in text.split(start, 1)[1]:
        text = text.rstrip("\n") + f"\n\n## {section}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{start}\n{markdown(results, about, command)}{end}{tail}")


def write_json(path: Path, results: list[Result], about: dict[str, str], command: str) -> None:
    path.write_text(json.dumps({"about": about, "command": command,
                                "figures": [r.as_json() for r in results]}, indent=2) + "\n")
