"""What a run did, per certificate: outcomes, their lines, the summary and the exit code.

Touches nothing; the caller decides where lines go (``emit``). The exit codes are
acme-client's, and exist here only: 0 something changed and nothing failed, 1 something
failed, 2 nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import visible
from .protocol.frozen import frozen

if TYPE_CHECKING:
    from .deploy.batch import DeployResult
    from .store import StoredCert

EXIT_CHANGED, EXIT_FAILED, EXIT_NOTHING = 0, 1, 2
CHANGED = ("issued", "renewed")


@dataclass
class Outcome:
    """What happened to one certificate in this run."""

    name: str
    result: str = "not due"          # issued | renewed | not due | deferred | failed
    error: str | None = None
    stored: StoredCert | None = None
    renew_at: datetime | None = None
    deployed: list[DeployResult] = field(default_factory=list)
    targets: int = 0
    attempted: bool = False          # the CA was (or would have been) asked this run
    waiting: bool = False            # left alone: an earlier failure's backoff runs
    retry_after: float | None = None  # the CA's Retry-After on the failure, if any
    note: str | None = None          # why it was deferred

    # Asked of every certificate of a run, most of them with nothing deployed: the common
    # case answers without making a generator.
    @property
    def failed(self) -> bool:
        return self.error is not None or (bool(self.deployed)
                                          and any(not d.ok for d in self.deployed))

    @property
    def changed(self) -> bool:
        return self.result in CHANGED or (bool(self.deployed)
                                          and any(d.ok for d in self.deployed))

    def line(self) -> str:
        if self.error is not None:
            text = f"{self.name}: failed: {visible(self.error)}"
        elif self.result in CHANGED and self.stored is not None:
            text = f"{self.name}: {self.result} (expires {self.stored.meta.not_after[:10]})"
        elif self.note is not None:
            text = f"{self.name}: {self.note}"
        elif self.renew_at is not None:
            text = f"{self.name}: not due until {_day(self.renew_at)}"
        else:
            text = f"{self.name}: {self.result}"
        if self.deployed:
            ok = sum(d.ok for d in self.deployed)
            text += f", deployed to {ok}/{len(self.deployed)} targets"
            for bad in (d for d in self.deployed if not d.ok):
                text += f"; {bad.target.key}: {visible(bad.error or '')}"
        return text


def _day(when: datetime) -> str:
    """``f"{when:%Y-%m-%d}"``, five times faster (a line per certificate of a run)."""
    return when.date().isoformat() if when.year >= 1000 else f"{when:%Y-%m-%d}"


@frozen
class Progress:
    """Where a run stands: certificates done, being ordered, failed, in all."""

    done: int
    working: int
    failed: int
    total: int


@frozen
class Expiring:
    """A certificate near its end whose renewal keeps failing (the expiry alarm)."""

    name: str
    not_after: datetime
    failures: int
    last_error: str


class Report:
    """The outcomes of a run in file order; each certificate's line is emitted as soon as
    that certificate is done (issued, deployed everywhere, or found with nothing to do)."""

    def __init__(self, names: Sequence[str], emit: Callable[[Outcome], None] | None = None,
                 progress: Callable[[Progress], None] | None = None):
        self.outcomes = {name: Outcome(name) for name in names}
        self._emit, self._progress = emit, progress
        self._done: set[str] = set()
        self._working: set[str] = set()
        self._failed = 0

    def __getitem__(self, name: str) -> Outcome:
        return self.outcomes[name]

    def working(self, name: str) -> None:
        """The certificate is being ordered now (for the progress line)."""
        self._working.add(name)
        self._tell()

    def done(self, name: str) -> None:
        if name not in self._done:
            self._done.add(name)
            self._working.discard(name)
            self._failed += self.outcomes[name].failed
            if self._emit is not None:
                self._emit(self.outcomes[name])
            self._tell()

    def _tell(self) -> None:
        if self._progress is not None:  # counted as they come: a line per certificate
            self._progress(Progress(len(self._done), len(self._working), self._failed,
                                    len(self.outcomes)))

    def finish(self) -> list[Outcome]:
        """Every outcome, in file order, after emitting any not emitted yet."""
        for name in self.outcomes:
            self.done(name)
        return list(self.outcomes.values())


def summary(outcomes: Sequence[Outcome]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = "failed" if outcome.error else outcome.result
        counts[key] = counts.get(key, 0) + 1
    parts = [f"{n} {k}" for k, n in sorted(counts.items())]
    deployed = [d for o in outcomes for d in o.deployed]
    if deployed:
        parts.append(f"deployed {sum(d.ok for d in deployed)}/{len(deployed)} targets")
    return f"{certificates(len(outcomes))}: " + ", ".join(parts)


def certificates(count: int) -> str:
    """"1 certificate", "2 certificates": how a line counts them."""
    return f"{count} certificate" if count == 1 else f"{count} certificates"


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """acme-client's: 1 if anything failed, 0 if anything changed, 2 if nothing to do."""
    if any(o.failed for o in outcomes):
        return EXIT_FAILED
    return EXIT_CHANGED if any(o.changed for o in outcomes) else EXIT_NOTHING
