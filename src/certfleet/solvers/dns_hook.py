"""dns-01 (RFC 8555 §8.4) through a program the operator provides (any DNS provider).

Touches one child process per call, run as an argv (never through a shell)::

    PROGRAM... present -- NAME RECORD VALUE
    PROGRAM... cleanup -- NAME RECORD VALUE

``--`` ends the options, so no value can be taken for one by a program that parses its
arguments the usual way (argparse, getopt, getopts): VALUE comes from the CA's token and
begins with ``-`` about once in 64 challenges, or whenever a hostile CA likes. The same
values are also in the environment: CERTFLEET_DNS_ACTION, CERTFLEET_DNS_NAME,
CERTFLEET_DNS_RECORD and CERTFLEET_DNS_VALUE.

NAME is the name being validated as it will be in the certificate (``*.example.com`` for
a wildcard), RECORD the owner of the TXT record without the final dot
(``_acme-challenge.example.com``), VALUE the TXT value. The program must add (not
replace: a wildcard and its base name put two values at one RECORD) or delete that one
value and exit 0. Its output is kept, bounded, for the error message; it runs with a
timeout and is killed with its process group when the timeout passes. If ``nameservers``
are given, ``ready`` reads (never writes) the TXT records there until every value is
visible; otherwise it waits a fixed ``delay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence

from ..errors import ChallengeError, ConfigError, safe_text
from ..protocol.challenges import DNS_01, dns01_record_name, dns01_txt_value
from . import Solver
from .dns_common import Clock, PerTask, Sleep, TxtCheck, to_name, wait_for_txt
from .dns_server import Server

log = logging.getLogger(__name__)

MAX_OUTPUT = 64 * 1024  # what is kept of a hook's output (its end)
SHOWN_OUTPUT = 400  # what of that an error message shows
_READ_CHUNK = 4096


def hook_argv(command: Sequence[str], action: str, name: str, key_auth: str) -> list[str]:
    """``[*command, action, "--", NAME, RECORD, VALUE]`` for one challenge."""
    return [*command, action, "--", name, dns01_record_name(name), dns01_txt_value(key_auth)]


def hook_env(action: str, name: str, key_auth: str) -> dict[str, str]:
    """The same values as environment variables, for programs that prefer them."""
    return {"CERTFLEET_DNS_ACTION": action, "CERTFLEET_DNS_NAME": name,
            "CERTFLEET_DNS_RECORD": dns01_record_name(name),
            "CERTFLEET_DNS_VALUE": dns01_txt_value(key_auth)}


def _exit_text(status: int) -> str:
    if status < 0:
        try:
            return f"killed by signal {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _tail(output: bytes) -> str:
    text = output.decode("utf-8", "replace").strip()
    if not text:
        return "no output"
    if len(text) > SHOWN_OUTPUT:
        text = "..." + text[-SHOWN_OUTPUT:]
    return "output: " + safe_text(text, SHOWN_OUTPUT + 100)


async def _read_bounded(stream: asyncio.StreamReader, keep: bytearray) -> None:
    """Read to EOF, keeping only the last ``MAX_OUTPUT`` bytes."""
    while chunk := await stream.read(_READ_CHUNK):
        keep += chunk
        if len(keep) > MAX_OUTPUT:
            del keep[:-MAX_OUTPUT]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class HookSolver(Solver):
    """dns-01 by running ``command`` for each record to add and to delete."""

    challenge_type = DNS_01

    def __init__(
        self, command: Sequence[str], *, timeout: float = 60.0,
        nameservers: Sequence[Server] | None = None, delay: float = 0.0,
        propagation_timeout: float = 120.0, poll_interval: float = 2.0,
        query_timeout: float = 5.0, env: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep, clock: Clock | None = None,
    ) -> None:
        if not command or not command[0]:
            raise ConfigError("dns hook: no program given")
        self.command = list(command)
        self.timeout, self.delay = timeout, delay
        self.nameservers = tuple(nameservers) if nameservers else None
        self.propagation_timeout, self.poll_interval = propagation_timeout, poll_interval
        self.query_timeout = query_timeout
        self.env = dict(env) if env is not None else None
        self._sleep, self._clock = sleep, clock
        self._unchecked: PerTask[tuple[str, str]] = PerTask()  # (name, value) of this order

    async def present(self, name: str, token: str, key_auth: str) -> None:
        await self._run("present", name, key_auth)
        self._unchecked.add((name, dns01_txt_value(key_auth)))

    async def ready(self) -> None:
        pending = self._unchecked.take()
        if not pending:
            return
        if self.nameservers is None:
            if self.delay > 0:
                log.info("waiting %g s for the DNS hook's records to propagate", self.delay)
                await self._sleep(self.delay)
            return
        values: dict[str, tuple[str, set[str]]] = {}
        for name, value in pending:
            record = dns01_record_name(name)
            values.setdefault(record, (name, set()))[1].add(value)
        checks = [TxtCheck(name, to_name(record), frozenset(vals), self.nameservers)
                  for record, (name, vals) in values.items()]
        await wait_for_txt(checks, timeout=self.propagation_timeout,
                           interval=self.poll_interval, query_timeout=self.query_timeout,
                           sleep=self._sleep, clock=self._clock)

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        self._unchecked.discard((name, dns01_txt_value(key_auth)))
        await self._run("cleanup", name, key_auth)

    async def _run(self, action: str, name: str, key_auth: str) -> None:
        argv = hook_argv(self.command, action, name, key_auth)
        what = f"{name}: DNS hook {safe_text(self.command[0], 120)} {action}"
        env = {**os.environ, **(self.env or {}), **hook_env(action, name, key_auth)}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
        except OSError as exc:
            raise ChallengeError(f"{what}: cannot run it: {exc.strerror or exc}") from None
        output = bytearray()
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(self.timeout):
                await _read_bounded(proc.stdout, output)
                status = await proc.wait()
        except TimeoutError:
            _kill_group(proc.pid)  # children too, even if the hook itself is gone
            raise ChallengeError(f"{what}: still running after {self.timeout:g} s; killed "
                                 f"({_tail(bytes(output))})") from None
        finally:
            if proc.returncode is None:  # timed out or cancelled
                _kill_group(proc.pid)
                await proc.wait()
        if status != 0:
            raise ChallengeError(f"{what} failed: {_exit_text(status)} ({_tail(bytes(output))})")
        log.info("%s: DNS hook %s done for %s", name, action, dns01_record_name(name))
