"""Where the command line's output goes. Touches stdout and stderr.

A reader that goes away (``certfleet status --json | head -1``) must not turn into a
traceback, nor stop a run halfway: after a broken pipe the rest of stdout is dropped and
the work goes on. Errors go to stderr; with ``--json`` stdout still gets valid JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from typing import TextIO

from ..errors import visible
from ..report import Progress

_broken: set[int] = set()
_lost: dict[int, str] = {}   # streams that failed otherwise (a full disk): why


def _write(stream: TextIO, text: str, flush: bool = True) -> None:
    if id(stream) in _broken:
        return
    try:
        stream.write(text)
        if flush:
            stream.flush()
    except OSError as exc:
        _give_up(stream, exc)


def _give_up(stream: TextIO, exc: OSError) -> None:
    """Nothing more goes to ``stream``. A reader that left (EPIPE) is no fault; anything
    else (cron's log on a full disk, an I/O error) is, and ``lost`` says so at the end."""
    _broken.add(id(stream))
    if not isinstance(exc, BrokenPipeError):
        _lost[id(stream)] = exc.strerror or str(exc)
    # Python flushes stdout once more at exit; point it at /dev/null so that cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def lost() -> str | None:
    """Why the command's output could not be written (not a reader that left), if so."""
    return _lost.get(id(sys.stdout))


_held: list[str] = []


def say(line: str, *, flush: bool = True) -> None:
    """One line of the command's output on stdout; with ``flush=False`` held until the
    next ``flush()`` (or line said with flush), so that a burst of lines is one write even
    on an unbuffered stdout."""
    _held.append(line + "\n")
    if flush:
        _write(sys.stdout, "".join(_held))
        _held.clear()


def error(text: str, *, json_mode: bool = False) -> None:
    """An error on stderr: ``certfleet: <text>``, or, for the ``file:line: reason`` lines of a
    configuration, each line as it is. With ``json_mode``, stdout gets ``{"error": ...}``."""
    flush()  # the lines held so far come first
    lines = [visible(line) for line in text.split("\n")]
    shown = lines if len(lines) > 1 else [f"certfleet: {lines[0]}"]
    _write(sys.stderr, "".join(line + "\n" for line in shown))
    if json_mode:
        _write(sys.stdout, json.dumps({"error": text}) + "\n")


class ProgressLine:
    """One line on a terminal's stderr, rewritten as a run goes: done of total, being
    ordered, failed. Nothing at all when stderr is not a terminal (cron, pipes)."""

    def __init__(self) -> None:
        self.shown = False

    @staticmethod
    def wanted() -> bool:
        return sys.stderr.isatty()

    def __call__(self, progress: Progress) -> None:
        text = (f"certfleet: {progress.done}/{progress.total} done, {progress.working} "
                f"being ordered, {progress.failed} failed")
        _write(sys.stderr, f"\r{text}\x1b[K")
        self.shown = True

    def clear(self) -> None:
        """Before a certificate's line, and at the end: the line is gone."""
        if self.shown:
            _write(sys.stderr, "\r\x1b[K")
            self.shown = False


def flush() -> None:
    if _held:
        _write(sys.stdout, "".join(_held), False)
        _held.clear()
    for stream in (sys.stdout, sys.stderr):
        if id(stream) not in _broken:
            try:
                stream.flush()
            except OSError as exc:
                _give_up(stream, exc)
            except ValueError:  # closed
                _broken.add(id(stream))


class SafeStream:
    """A stream for ``logging``: whatever ``sys.stderr`` is when a record is written, and
    nothing for it once its reader has gone."""

    def write(self, text: str) -> None:
        _write(sys.stderr, text)

    def flush(self) -> None:
        return None


class SafeFormatter(logging.Formatter):
    """Log lines with every control character made visible: a message may quote what a CA,
    an SSH server or a file said, and one record's message must stay one line on the
    terminal. A traceback (``-vv``) keeps its lines, each indented, so that no text in an
    exception's message can start a line that looks like a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        # logging keeps the first handler's rendering of a traceback on the record and every
        # later formatter reuses it: another handler's would reach the terminal unescaped
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))

    def formatException(self, ei: object) -> str:
        text = super().formatException(ei)  # type: ignore[arg-type]
        return "\n".join(f"    {visible(line)}" for line in text.split("\n"))


def more_open_files(wanted: int = 8192) -> None:
    """Raise the soft open-file limit towards the hard one (at most ``wanted``) for a run:
    hundreds of orders in flight hold the CA's connections, the responder's and the
    deploys' at once, and a default soft limit of 1,024 leaves the responder only 384
    (``solvers.http_limits``). The hard limit, the administrator's, is never touched."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
