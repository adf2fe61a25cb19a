"""After a run, tell a person what needs one: the events, the report, the hook and the mail.

Touches one child process per hook call (an argv, never a shell string; the report as JSON
on its stdin; killed with its process group after ``hook_timeout``) and, through ``mail``,
the local sendmail or an SMTP server. The events of a run:

    failure          a certificate failed (to be ordered, or before: damaged, no solver)
    renewal          a certificate was issued or renewed
    deploy_failure   a target did not get its files (or its reload or probe failed)
    expiring         a certificate whose renewal keeps failing has less than
                     ``expiry_alarm`` of its lifetime left (at most once a day each)

A channel (hook or mail) is used only when one of the events it listens for happened, so a
quiet run sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import safe_text
from .report import Expiring, Outcome, summary
from .spec import NotifySettings

log = logging.getLogger(__name__)
EVENTS = ("failure", "renewal", "deploy_failure", "expiring")
MAX_OUTPUT = 4000


def events_of(outcome: Outcome) -> list[str]:
    found = []
    if outcome.error is not None and not outcome.waiting:
        found.append("failure")
    if outcome.result in ("issued", "renewed") and outcome.error is None:
        found.append("renewal")
    if any(not d.ok for d in outcome.deployed):
        found.append("deploy_failure")
    return found


def document(outcomes: Sequence[Outcome], expiring: Sequence[Expiring], started: datetime,
             finished: datetime) -> dict[str, Any]:
    """The report every channel gets: what happened, per certificate, with reasons."""
    certificates = []
    events: set[str] = {"expiring"} if expiring else set()
    for outcome in outcomes:
        mine = events_of(outcome)
        events.update(mine)
        certificates.append({
            "name": outcome.name, "result": "failed" if outcome.error else outcome.result,
            "error": outcome.error, "events": mine,
            "expires": outcome.stored.meta.not_after if outcome.stored else None,
            "deployed": [{"target": d.target.key, "ok": d.ok, "error": d.error}
                         for d in outcome.deployed],
        })
    return {
        "host": socket.gethostname(), "started": started.isoformat(),
        "finished": finished.isoformat(), "events": sorted(events),
        "summary": summary(outcomes), "certificates": certificates,
        "expiring": [{"name": e.name, "not_after": e.not_after.isoformat(),
                      "failures": e.failures, "last_error": e.last_error} for e in expiring],
    }


def wanted(listens: Sequence[str], report: dict[str, Any]) -> bool:
    return bool(set(listens) & set(report["events"]))


async def tell(settings: NotifySettings, report: dict[str, Any]) -> list[str]:
    """Every configured channel that listens for one of the report's events; returns what
    went wrong (one line each), so the run can say it."""
    problems = []
    if settings.hook and wanted(settings.hook_events, report):
        try:
            await run_hook(settings.hook, report, settings.hook_timeout)
        except OSError as exc:
            problems.append(f"notify hook {safe_text(settings.hook[0])}: {exc}")
    if settings.mail and wanted(settings.mail_events, report):
        from .mail import MailError, send  # noqa: PLC0415 - smtplib only to send a mail

        try:
            await asyncio.to_thread(send, settings, report)
        except MailError as exc:
            problems.append(str(exc))
    return problems


async def run_hook(argv: Sequence[str], report: dict[str, Any], timeout: float) -> None:
    """``argv`` with the report on stdin; ``OSError`` with the reason if it fails."""
    what = safe_text(argv[0])
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    data = json.dumps(report, indent=2).encode() + b"\n"
    try:
        async with asyncio.timeout(timeout):
            output, _ = await proc.communicate(data)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise OSError(f"still running after {timeout:g} s; killed") from None
    if proc.returncode != 0:
        tail = safe_text(output.decode("utf-8", "replace").strip()[-MAX_OUTPUT:], 400)
        raise OSError(f"{what} exited {proc.returncode}: {tail or 'no output'}")
    log.info("notify hook %s told of %s", what, ", ".join(report["events"]))
