"""Hostile SSH servers: what they say reaches the operator escaped, and what they withhold
costs bounded time.

The certificate ``a`` goes to a target on ``evil``: an in-process asyncssh server scripted
per test (in its own thread), or, for a reload's output, web1b's real sshd under that
alias. ``a``'s other target (web1a) and ``b`` (web1b) must get their files, the victims
(``hostile_lab``) stay unchanged, and the failing target's reason is in ``a``'s line.
Every deploy runs at ``-vv`` and its whole stdout and stderr, log lines included, must hold
no control character: the text the servers send is full of escape sequences (a terminal
title, a screen clear, a colour) and newlines that would forge a line.

Servers: an authentication banner and a debug message (never shown), then a disconnect
with a hostile reason; an SFTP error with a hostile reason; ``id -u`` answering garbage;
a reload whose output is hostile (real sshd); an SFTP server that stops answering (each
request is bounded, ``OP_TIMEOUT`` shortened here); a TCP server that never speaks SSH
(the connection is bounded, ``CONNECT_TIMEOUT`` shortened).

The last two servers hold what they withhold for ``STALL`` seconds, then give up: a
missing bound makes the deploy last that long, past ``BOUND``, and the test fails instead
of hanging. What bounded the wait is also seen without a clock: the message names the
shortened timeout (or says the connection timed out), and the stalled SFTP session is
asked nothing after the request it left unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncssh
import pytest

from certfleet.deploy import sftp_files, ssh
from tests.cli import run_main
from tests.faults.hostile_lab import Lab, Layout, start

pytestmark = pytest.mark.integration

EVIL = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\nFAKE: forged line\r"
SHOWN = r"\x1b]0;owned\x07\x1b[2J\x1b[31mred\nFAKE: forged line\r"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A deploy here takes a few seconds (under 10 under load) plus the 2 s timeout under test;
# one that waited for the stalled server would take STALL.
STALL = 300.0
BOUND = 120.0


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from start()


class _Server(asyncssh.SSHServer):
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def begin_auth(self, username: str) -> bool:
        assert self.conn is not None
        self.conn.send_auth_banner(EVIL)
        self.conn.send_debug(EVIL, always_display=True)
        if self.mode == "disconnect":
            self.conn.disconnect(asyncssh.DISC_BY_APPLICATION, EVIL)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return True


class _Sftp(asyncssh.SFTPServer):
    mode = ""
    sessions: list[list[bytes]]  # per SFTP session, the path of each request

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        super().__init__(chan)
        self.asked: list[bytes] = []
        self.sessions.append(self.asked)

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        self.asked.append(path)
        if self.mode == "sftp-stall":
            await asyncio.sleep(STALL)
        raise asyncssh.SFTPFailure(EVIL)

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self.lstat(path)


class FakeSsh:
    """A scripted asyncssh server on 127.0.0.1 in its own thread and event loop."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sessions: list[list[bytes]] = []
        sftp = type("Sftp", (_Sftp,), {"mode": mode, "sessions": self.sessions})

        async def listen() -> asyncssh.SSHAcceptor:
            return await asyncssh.create_server(
                lambda: _Server(mode), "127.0.0.1", 0, server_host_keys=[self.key],
                process_factory=self._process, sftp_factory=sftp)

        self.server = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _process(self, process: asyncssh.SSHServerProcess[str]) -> None:
        if (process.command or "").startswith("id -u"):
            process.stdout.write(f"{EVIL}0\n" if self.mode == "bad-id" else "0\n")
            process.exit(0)
        else:
            process.stdout.write(EVIL)
            process.exit(3)

    def known_hosts_line(self) -> str:
        public = self.key.export_public_key().decode().strip()
        return f"[127.0.0.1]:{self.port} {public}\n"

    def close(self) -> None:
        """Stop the server and end every task it still runs (a session the test left
        stalled): a pending task left in a loop is destroyed whenever the garbage collector
        gets to it, and asyncio then logs an error in the middle of some later test."""
        async def shut() -> None:
            self.server.close()
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


def _alias(lab: Lab, address: str, port: int, known: str = "") -> str:
    """An ssh_config alias for ``address:port`` (and its known_hosts line)."""
    import web_lab

    alias = f"evil{uuid.uuid4().hex[:6]}"
    path = lab.base / f"ssh_config.{alias}"
    web_lab.write_ssh_config(path, {alias: SimpleNamespace(address=address, ssh_port=port)},
                             lab.identity, lab.known_hosts)
    if known:
        with lab.known_hosts.open("a") as handle:
            handle.write(known)
    lab.extra_ssh_config.append(path)
    return alias


@contextlib.contextmanager
def fake(lab: Lab, mode: str) -> Iterator[tuple[str, FakeSsh]]:
    server = FakeSsh(mode)
    try:
        yield _alias(lab, "127.0.0.1", server.port, server.known_hosts_line()), server
    finally:
        server.close()


def _layout(lab: Lab, tmp_path: Path, alias: str, **settings: Any) -> Layout:
    target = lab.base / f"s-{uuid.uuid4().hex[:8]}"
    target.mkdir(mode=0o755)
    return lab.layout(tmp_path, str(target), hostile_host=alias,
                      settings={"owner": "root", **settings})


def _fails(lab: Lab, layout: Layout, reason: str) -> str:
    """``deploy_and_check`` at -vv, then the raw output is searched for control
    characters (the escaped form of the hostile text is fine)."""
    cause = layout.deploy_and_check(reason, "-vv")
    rc, out, err = run_main(["deploy", "--config", str(layout.config), "-vv"])
    assert rc == 1
    assert "certfleet: DEBUG: " in err or "certfleet: INFO: " in err, err  # -vv took effect
    for text in (out, err):
        assert not CONTROL.search(text), repr(CONTROL.search(text))
        assert "FAKE: forged line" not in text.replace(r"\nFAKE: forged line", "")
    # The message itself is escaped, not only its print: the reason kept in the state
    # record is what `status`, the alerts and the mail show later.
    record = json.loads((lab.state / "certs" / lab.names[0] / "state.json").read_text())
    recorded = record["deploy"][layout.hostile_target]["error"]
    assert not CONTROL.search(recorded), repr(recorded)
    assert "\n" not in recorded, repr(recorded)
    assert cause in recorded, (cause, recorded)
    return cause


def test_banner_debug_and_disconnect_reason_are_escaped(lab: Lab, tmp_path: Path) -> None:
    with fake(lab, "disconnect") as (alias, _):
        cause = _fails(lab, _layout(lab, tmp_path, alias), f"{alias}: cannot connect: ")
    assert SHOWN in cause, cause
    assert "owned" in cause  # the disconnect reason, escaped; the banner is never shown


def test_sftp_error_reason_is_escaped(lab: Lab, tmp_path: Path) -> None:
    with fake(lab, "sftp-error") as (alias, _):
        cause = _fails(lab, _layout(lab, tmp_path, alias), SHOWN)
    assert cause.startswith(f"{alias}:/"), cause


def test_garbage_from_id_is_escaped(lab: Lab, tmp_path: Path) -> None:
    with fake(lab, "bad-id") as (alias, _):
        cause = _fails(lab, _layout(lab, tmp_path, alias), f"{alias}: cannot resolve user root")
    assert r"got '\x1b]0;owned\x07\x1b[2J" in cause, cause


def test_hostile_reload_output_is_escaped(lab: Lab, tmp_path: Path) -> None:
    """web1b's real sshd, under its own alias, runs a reload that prints the hostile text
    (the config holds it as printable backslash escapes; printf makes them real)."""
    web1b = lab.web["web1b"]
    alias = _alias(lab, web1b.address, web1b.ssh_port)
    printf = EVIL.replace("\x1b", "\\033").replace("\x07", "\\007").replace("\n", "\\n") \
        .replace("\r", "\\r")
    layout = _layout(lab, tmp_path, alias,
                     reload=["/bin/sh", "-c", f"printf '{printf}'; exit 3"])
    cause = _fails(lab, layout, f"files in place, reload failed: {alias}: /bin/sh exited 3: ")
    assert r"\x1b]0;owned\x07\x1b[2J\x1b[31mred\nFAKE: forged line" in cause, cause


def test_sftp_server_that_stops_answering(lab: Lab, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sftp_files, "OP_TIMEOUT", 2.0)
    with fake(lab, "sftp-stall") as (alias, server):
        started = time.monotonic()
        _fails(lab, _layout(lab, tmp_path, alias), "no answer from the SFTP server within 2 s")
        assert time.monotonic() - started < BOUND
    # Each session was asked once: once a request went unanswered, nothing else waited.
    assert server.sessions
    assert all(len(asked) == 1 for asked in server.sessions), server.sessions


def test_server_that_never_speaks_ssh(lab: Lab, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "CONNECT_TIMEOUT", 2.0)
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    def give_up() -> None:  # what a client without a bound would finally see
        for conn in held:
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    timer = threading.Timer(STALL, give_up)
    timer.start()
    try:
        alias = _alias(lab, "127.0.0.1", listener.getsockname()[1])
        started = time.monotonic()
        cause = _fails(lab, _layout(lab, tmp_path, alias), f"{alias}: cannot connect: ")
        assert time.monotonic() - started < BOUND
        assert cause.endswith(": timed out"), cause  # the bound ended it, not the server
        assert held, "certfleet never connected"
    finally:
        timer.cancel()
        stop.set()
        listener.close()
        give_up()


def test_log_records_are_escaped() -> None:
    """The CLI's log handler: one record is one line, whatever its message or exception
    holds (the last line of defence at -v and -vv)."""
    import logging
    import sys

    from certfleet.cli.output import SafeFormatter

    formatter = SafeFormatter("certfleet: %(levelname)s: %(message)s")
    try:
        raise RuntimeError(EVIL)
    except RuntimeError:
        info = sys.exc_info()
    record = logging.LogRecord("certfleet.deploy", logging.INFO, __file__, 1,
                               "server said %s", (EVIL,), info)
    text = formatter.format(record)
    first, *rest = text.split("\n")
    assert first == f"certfleet: INFO: server said {SHOWN}"
    assert rest[0] == "    Traceback (most recent call last):"
    assert not CONTROL.search(text)
    assert all(line.startswith("    ") for line in rest), rest  # nothing passes for a record
    record.exc_text = f"Traceback (most recent call last):\n{EVIL}"  # another handler's
    assert formatter.format(record) == text
    assert record.exc_text.endswith(EVIL)  # left as that handler made it
