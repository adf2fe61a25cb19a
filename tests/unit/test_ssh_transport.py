"""The SSH connection of a target (``deploy/ssh.py``) against an SSH server in the test's own
process (``sshlab``): who is trusted, what is refused and how it is said, the commands
(reload and look-ups) as argv never read by a shell, and every exchange bounded.

``integration/test_deploy_ssh.py`` and ``adversarial/test_hostile_ssh.py`` check the same
against OpenSSH's sshd and scripted hostile servers through whole deploys; these run in
milliseconds, so that ``make mutate`` can run them for every mutant of the module.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest

from certfleet.deploy import ssh
from certfleet.errors import DeployError
from certfleet.layout import Placement
from certfleet.spec import HostSettings, Target

from .sshlab import STALL, Remote, _key, lab

T = TypeVar("T")




async def _connect_fails(transport: ssh.SshTransport) -> str:
    with pytest.raises(DeployError) as caught:
        async with transport:
            pass
    return str(caught.value)


async def _run_fails(remote: Remote, argv: list[str], **settings: Any) -> str:
    async with remote.transport(**settings) as transport:
        with pytest.raises(DeployError) as caught:
            await transport.run(argv)
    return str(caught.value)


def test_a_trusted_host_and_key_connect(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        transport = remote.transport()
        assert transport.label == "deployer@127.0.0.1"
        assert transport.peer_address() is None
        async with transport:
            assert transport.peer_address() == "127.0.0.1"
            await transport.run(["true"])
        assert remote.commands == ["true"]
        assert remote.transport(user=None).label == "127.0.0.1"
    lab(tmp_path, body)


def test_the_user_comes_from_the_target_or_the_host_settings(tmp_path: Path) -> None:
    settings = HostSettings(user="fallback")
    assert ssh.SshTransport(Target("/", host="h", user="given"), settings).label == "given@h"
    assert ssh.SshTransport(Target("/", host="h"), settings).label == "fallback@h"
    options = ssh.SshTransport(Target("/", host="h"), settings)._options()
    assert options["username"] == "fallback"
    bare = ssh.SshTransport(Target("/", host="h"), HostSettings())._options()
    assert bare == {"connect_timeout": ssh.CONNECT_TIMEOUT, "config": []}
    full = ssh.SshTransport(
        Target("/", host="h"), HostSettings(port=2222, identity=Path("/k")),
        ssh_config=[Path("/c1")], known_hosts=Path("/kh"))._options()
    assert full == {"connect_timeout": ssh.CONNECT_TIMEOUT, "config": ["/c1"], "port": 2222,
                    "client_keys": ["/k"], "known_hosts": "/kh"}


def test_an_unknown_host_key_is_refused_with_its_fingerprint(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        remote.known_hosts.write_text("")
        fingerprint = _key("host").get_fingerprint("sha256")
        assert await _connect_fails(remote.transport()) == \
            f"deployer@127.0.0.1: host key not trusted ({fingerprint}); add it to " \
            "known_hosts after checking it"
        assert remote.commands == []
    lab(tmp_path, body)


def test_a_refused_key_is_said_so(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        remote.accept = False
        assert await _connect_fails(remote.transport()) == \
            "deployer@127.0.0.1: SSH authentication refused"
    lab(tmp_path, body)


def test_a_port_nobody_listens_on(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            remote.port = probe.getsockname()[1]
        assert await _connect_fails(remote.transport()) == \
            "deployer@127.0.0.1: cannot connect: Connection refused"
    lab(tmp_path, body)


def test_the_fingerprint_of_a_host_that_cannot_be_reached(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            remote.port = probe.getsockname()[1]
        said = await remote.transport()._fingerprint()
        assert said == "fingerprint unavailable: Connection refused"
    lab(tmp_path, body)


def test_no_sftp_session_in_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh.files_, "OP_TIMEOUT", 0.2)

    async def never(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(STALL)
    monkeypatch.setattr(asyncssh.SSHClientConnection, "start_sftp_client", never)

    async def body(remote: Remote) -> None:
        assert await _connect_fails(remote.transport()) == \
            "deployer@127.0.0.1: no SFTP session within 0.2 s"
    lab(tmp_path, body)


def test_a_reload_is_argv_never_read_by_a_shell(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        marker = tmp_path / "pwned"
        async with remote.transport() as transport:
            await transport.run(["printf", "%s", f"x; touch {marker}", "$(id)"])
        assert remote.commands == [f"printf %s 'x; touch {marker}' '$(id)'"]
        assert not marker.exists()
    lab(tmp_path, body)


def test_a_failed_reload_says_its_status_and_the_tail_of_its_output(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        said = await _run_fails(remote, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert said == "deployer@127.0.0.1: sh exited 3: out\nerr".replace("\n", r"\n")
        long = await _run_fails(remote, ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x;"
                                         " printf '\\033[2J END'; exit 1"])
        assert long == "deployer@127.0.0.1: sh exited 1: ..." + "x" * 289 + r"\x1b[2J END"
        signalled = await _run_fails(remote, ["sh", "-c", "kill -TERM $PPID"])
        assert signalled == "deployer@127.0.0.1: sh exited signal TERM: "
        remote.no_status = True
        assert await _run_fails(remote, ["echo", "bye"]) == \
            "deployer@127.0.0.1: echo exited without a status: bye"
    lab(tmp_path, body)


def test_output_is_kept_to_its_tail() -> None:
    async def main() -> list[str]:
        kept = []
        for data in (b"", b"short", b"a" * 5000 + b"END", b"b" * 70000 + b"\xff"):
            kept.append(await ssh._tail(_Chunks(data)))  # type: ignore[arg-type]
        return kept
    empty, short, long, last = asyncio.run(main())
    assert (empty, short) == ("", "short")
    assert long == "a" * (ssh.OUTPUT_KEPT - 3) + "END"
    assert last == "b" * (ssh.OUTPUT_KEPT - 1) + "\ufffd"


class _Chunks:
    """A stream that hands out its data 1,000 bytes a read."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, size: int) -> bytes:
        assert size == 65536
        chunk, self.data = self.data[:1000], self.data[1000:]
        return chunk


def test_a_command_that_never_ends_is_bounded(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "COMMAND_TIMEOUT", 0.5)

    async def body(remote: Remote) -> None:
        assert await _run_fails(remote, ["sleep", "5"]) == \
            "deployer@127.0.0.1: sleep: timed out after 0.5 s"
    lab(tmp_path, body)


def test_a_connection_lost_during_a_command(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        async with remote.transport() as transport:
            assert transport._conn is not None
            transport._conn.abort()
            await asyncio.sleep(0.05)
            with pytest.raises(DeployError) as caught:
                await transport.run(["true"])
        assert str(caught.value).startswith("deployer@127.0.0.1: true: "), caught.value
    lab(tmp_path, body)


@pytest.mark.parametrize(("owner", "group", "said"), [
    ("no-such-user-here", None, "deployer@127.0.0.1: id -u -- no-such-user-here failed (1): "
                                "id: \u2018no-such-user-here\u2019: no such user"),
    (None, "no-such-group", "deployer@127.0.0.1: getent group -- no-such-group failed (2): "),
    ("bad;name", None, "deployer@127.0.0.1:/srv: invalid owner or group 'bad;name'"),
    (None, "$(id)", "deployer@127.0.0.1:/srv: invalid owner or group '$(id)'"),
])
def test_an_owner_or_group_the_host_does_not_know(tmp_path: Path, owner: str | None,
                                                  group: str | None, said: str) -> None:
    async def body(remote: Remote) -> None:
        (remote.root / "srv").mkdir()
        settings = HostSettings(owner=owner, group=group)
        async with remote.transport() as transport:
            with pytest.raises(DeployError) as caught:
                await transport.install(Placement("/srv", (), False), (), settings)
        assert str(caught.value) == said
        assert (remote.root / "srv").exists()
    lab(tmp_path, body)


def test_a_lookup_answered_with_something_else(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(remote: Remote) -> None:
        async with remote.transport() as transport:
            async def garbage(argv: Any) -> str:
                return "\x1b[2Jroot\n"
            monkeypatch.setattr(transport, "_output", garbage)
            with pytest.raises(DeployError) as caught:
                await transport.install(Placement("/", (), False), (), HostSettings())
        assert str(caught.value) == \
            r"deployer@127.0.0.1: cannot resolve id -u: got '\x1b[2Jroot'"
    lab(tmp_path, body)


def test_numbers_from_a_host() -> None:
    assert ssh._number(" 1000\n", "id -u", "h") == 1000
    assert ssh._number("4294967294", "id -u", "h") == 4294967294  # 2**32 - 1 is (uid_t) -1
    for bad in ("", "-1", "12345678901", "\u0661", "1 2", "0x10"):
        with pytest.raises(DeployError, match=r"^h: cannot resolve id -u: got '"):
            ssh._number(bad, "id -u", "h")
    with pytest.raises(DeployError) as caught:
        ssh._number("9" * 100, "user x\x1b", "h")
    assert str(caught.value) == r"h: cannot resolve user x\x1b: got '" + "9" * 60 + "...'"


def test_how_a_connection_error_is_described() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('1.2.3.4', 22)")
    assert ssh._describe(refused) == "Connection refused"
    assert ssh._describe(TimeoutError()) == "timed out"
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert ssh._describe(unknown) == "Name or service not known"
    assert ssh._describe(OSError(0, "odd")) == "odd"
    assert ssh._describe(OSError(-5, "negative")) == "negative"
    assert ssh._describe(OSError("no number")) == "no number"
    assert ssh._describe(asyncssh.ConnectionLost("lost \x1b")) == r"lost \x1b"
    assert ssh._describe(asyncssh.ConnectionLost("")) == "ConnectionLost"


def _program(remote: Remote, name: str, script: str) -> None:
    """A program the host's shell finds before the system's."""
    path = remote.bin / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


async def _install_fails(remote: Remote, **settings: Any) -> str:
    (remote.root / "srv").mkdir(exist_ok=True)
    async with remote.transport() as transport:
        with pytest.raises(DeployError) as caught:
            await transport.install(Placement("/srv", (), False), (), HostSettings(**settings))
    return str(caught.value)


def test_root_and_the_login_user_own_what_may_be_written_through(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _program(remote, "id", 'if [ "$*" = "-u" ]; then echo 1000; else exec /usr/bin/id "$@"; fi')
        srv = remote.root / "srv"
        srv.mkdir()
        async with remote.transport() as transport:
            await transport.install(Placement("/srv", (), False), (), HostSettings())
            os.chown(srv, 1000, 0)
            await transport.install(Placement("/srv", (), False), (), HostSettings())
            os.chown(srv, 1001, 0)
            with pytest.raises(DeployError, match="/srv is owned by uid 1001"):
                await transport.install(Placement("/srv", (), False), (), HostSettings())
            await transport.install(Placement("/srv", (), False), (),
                                    HostSettings(owner="1001"))
        assert remote.commands == ["id -u"]
    lab(tmp_path, body)


@pytest.mark.parametrize(("answer", "said"), [
    ("nogroup:x", "got ''"), ("", "got ''"), ("nogroup:x:abc:", "got 'abc'")])
# (the members after the third colon are optional: see test_a_group_by_name)
def test_a_group_the_host_answers_oddly(tmp_path: Path, answer: str, said: str) -> None:
    async def body(remote: Remote) -> str:
        _program(remote, "getent", f"echo '{answer}'")
        return await _install_fails(remote, group="nogroup")
    assert lab(tmp_path, body) == f"deployer@127.0.0.1: cannot resolve group nogroup: {said}"


def test_a_group_by_name(tmp_path: Path) -> None:
    async def body(remote: Remote) -> None:
        _program(remote, "getent", 'case "$3" in staff) echo staff:x:4321:alice,bob;; '
                                   "*) echo nomembers:x:4322;; esac")
        (remote.root / "srv").mkdir()
        async with remote.transport() as transport:
            for group in ("staff", "nomembers"):
                await transport.install(Placement("/srv", (), False), (),
                                        HostSettings(group=group))
            assert transport._ids == {("group", "staff"): 4321, ("group", "nomembers"): 4322}
    lab(tmp_path, body)


def test_a_lookup_that_never_ends_is_bounded(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "LOOKUP_TIMEOUT", 0.3)

    async def body(remote: Remote) -> str:
        _program(remote, "id", "exec sleep 5")
        return await _install_fails(remote)
    assert lab(tmp_path, body) == "deployer@127.0.0.1: id: timed out after 0.3 s"


def test_a_command_reads_no_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "COMMAND_TIMEOUT", 3.0)  # cat waits for an input never sent

    async def body(remote: Remote) -> str:
        return await _run_fails(remote, ["sh", "-c", "cat; exit 3"])
    assert lab(tmp_path, body) == "deployer@127.0.0.1: sh exited 3: "


def test_a_command_given_up_on_is_hung_up(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "COMMAND_TIMEOUT", 0.3)

    async def body(remote: Remote) -> None:
        assert await _run_fails(remote, ["sleep", "5"]) == \
            "deployer@127.0.0.1: sleep: timed out after 0.3 s"
        for _ in range(100):  # the hang-up travels to the server (a bound, not a wait)
            if remote.hung_up:
                break
            await asyncio.sleep(0.05)
        assert remote.hung_up == ["sleep 5"]
    lab(tmp_path, body)


def test_a_session_the_server_never_opens_is_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "COMMAND_TIMEOUT", 0.3)

    async def never(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(STALL)

    async def body(remote: Remote) -> str:
        async with remote.transport() as transport:
            monkeypatch.setattr(asyncssh.SSHClientConnection, "create_process", never)
            with pytest.raises(DeployError) as caught:
                await transport.run(["true"])
        return str(caught.value)
    assert lab(tmp_path, body) == "deployer@127.0.0.1: true: timed out after 0.3 s"


def test_a_connection_lost_in_the_middle(tmp_path: Path) -> None:
    async def body(remote: Remote) -> list[str | None]:
        said: list[str | None] = []
        (remote.root / "srv").mkdir()
        where = Placement("/srv", (("a", "a"),), False)
        files = (ssh.DeployFile("a", b"x", 0o644),)
        async with remote.transport() as transport:
            remote.hooks["lstat"] = lambda _path: remote.connections[-1].abort()
            with pytest.raises(DeployError) as caught:
                await transport.install(where, files, HostSettings())
            said.append(str(caught.value))
            with pytest.raises(DeployError) as caught:
                await transport.run(["true"])
            said.append(str(caught.value))
            said.append(transport.peer_address())
        return said
    install, run, peer = lab(tmp_path, body)
    assert peer is None  # the connection, gone, has no peer any more
    assert install == "deployer@127.0.0.1:/srv: Connection lost", install
    assert run.startswith("deployer@127.0.0.1: true: "), run
    assert run != "deployer@127.0.0.1: true: None", run


def test_the_connection_is_closed_at_the_end_and_after_a_failed_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(remote: Remote) -> None:
        async with remote.transport():
            pass
        await _until(lambda: remote.closed == 1)
        monkeypatch.setattr(ssh.files_, "OP_TIMEOUT", 0.2)

        async def never(*args: Any, **kwargs: Any) -> None:
            await asyncio.sleep(STALL)
        monkeypatch.setattr(asyncssh.SSHClientConnection, "start_sftp_client", never)
        await _connect_fails(remote.transport())
        await _until(lambda: remote.closed == 2)
    lab(tmp_path, body)


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(100):  # what the server sees arrives a little later
        if condition():
            return
        await asyncio.sleep(0.05)
    assert condition()


def test_closing_waits_for_the_connection_but_not_for_ever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[str] = []
    original = asyncssh.SSHClientConnection.wait_closed

    async def slow(self: asyncssh.SSHClientConnection) -> None:
        await original(self)
        await asyncio.sleep(0.05)
        waited.append("closed")

    async def never(self: asyncssh.SSHClientConnection) -> None:
        await asyncio.sleep(3600)

    async def body(remote: Remote) -> None:
        monkeypatch.setattr(asyncssh.SSHClientConnection, "wait_closed", slow)
        async with remote.transport():
            pass
        assert waited == ["closed"]
        monkeypatch.setattr(ssh, "CLOSE_TIMEOUT", 0.2)
        monkeypatch.setattr(asyncssh.SSHClientConnection, "wait_closed", never)
        # The guard only keeps a missing bound from hanging the suite.
        await asyncio.wait_for(remote.transport().__aenter__(), 10)
        transport = remote.transport()
        await transport.__aenter__()
        await asyncio.wait_for(transport.__aexit__(None, None, None), 10)
    lab(tmp_path, body)


def test_a_fresh_session_that_cannot_start_after_one_stopped_answering(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh.files_, "OP_TIMEOUT", 0.2)

    async def never(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(STALL)

    async def body(remote: Remote) -> list[str]:
        said = []
        (remote.root / "srv").mkdir()
        async with remote.transport() as transport:
            remote.stall.add("lstat")
            for _ in range(2):
                with pytest.raises(DeployError) as caught:
                    await transport.install(Placement("/srv", (), False), (), HostSettings())
                said.append(str(caught.value))
                monkeypatch.setattr(asyncssh.SSHClientConnection, "start_sftp_client", never)
        return said
    assert lab(tmp_path, body) == [
        "deployer@127.0.0.1:/: no answer from the SFTP server within 0.2 s",
        "deployer@127.0.0.1: no SFTP session within 0.2 s"]


def test_the_fingerprint_through_an_ssh_config_alias(tmp_path: Path) -> None:
    async def body(remote: Remote) -> str:
        config = tmp_path / "ssh_config"
        config.write_text(f"Host evil\n  HostName 127.0.0.1\n  Port {remote.port}\n")
        remote.known_hosts.write_text("")
        transport = ssh.SshTransport(
            Target("/", host="evil", user="deployer"),
            HostSettings(identity=remote.identity), ssh_config=[config],
            known_hosts=remote.known_hosts)
        return await _connect_fails(transport)
    fingerprint = _key("host").get_fingerprint("sha256")
    assert lab(tmp_path, body) == f"deployer@evil: host key not trusted ({fingerprint}); " \
        "add it to known_hosts after checking it"


def test_the_fingerprint_of_a_silent_host_is_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "CONNECT_TIMEOUT", 0.3)

    async def body(remote: Remote) -> str:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        remote.port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.wait_for(remote.transport()._fingerprint(), 10)
        finally:
            server.close()
    assert lab(tmp_path, body) == "fingerprint unavailable: timed out"


def test_a_host_that_offers_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GSS key exchange has no host key: asyncssh then gives none."""
    async def none(*args: Any, **kwargs: Any) -> None:
        return None
    monkeypatch.setattr(asyncssh, "get_server_host_key", none)

    async def body(remote: Remote) -> str:
        return await remote.transport()._fingerprint()
    assert lab(tmp_path, body) == "no host key offered"


def test_a_full_disk_on_a_server_that_reports_no_block_size(tmp_path: Path) -> None:
    async def body(remote: Remote) -> str:
        (remote.root / "srv").mkdir()
        remote.refuse["write"] = asyncssh.SFTPFailure("Failure")
        remote.vfs = (0, 0, 0)
        where = Placement("/srv", (("a", "a"),), False)
        async with remote.transport() as transport:
            with pytest.raises(DeployError) as caught:
                await transport.install(where, (ssh.DeployFile("a", b"x", 0o644),),
                                        HostSettings())
        return str(caught.value)
    assert lab(tmp_path, body) == "deployer@127.0.0.1:/srv: Failure"


def test_error_numbers_one_and_up_are_the_systems_words() -> None:
    assert ssh._describe(PermissionError(1, "Connect call failed")) == \
        "Operation not permitted"


def test_an_id_in_the_settings_is_taken_up_to_the_largest_one() -> None:
    """A numeric owner or group is used as it is, up to 2**32 - 2 ((uid_t) -1 aside)."""
    transport = object.__new__(ssh.SshTransport)
    transport.label = "h"  # type: ignore[misc]
    assert asyncio.run(transport._lookup("user", str(ssh.MAX_ID))) == ssh.MAX_ID
    with pytest.raises(DeployError) as caught:
        asyncio.run(transport._lookup("user", str(ssh.MAX_ID + 1)))
    assert str(caught.value) == f"h: user {ssh.MAX_ID + 1} is not a user ID (at most " \
        f"{ssh.MAX_ID})"
