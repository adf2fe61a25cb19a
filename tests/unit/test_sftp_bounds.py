"""What a target that answers, but slowly or without end, may cost: the sweep of leftovers
reads and removes a bounded number of names (``sftp_sweep``), a host's whole deploy ends
by its deadline (``batch.host_deadline``) as that host's targets' one-line failure, and an
ID too large for 32 bits is refused where the host says it (``ssh._number``).

Against the in-process SSH server (``sshlab``), scripted here to list more names than the
directory holds, or to answer some requests late (each well inside ``OP_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from certfleet.deploy import TMP_PREFIX, DeployFile, batch
from certfleet.deploy.batch import DeployJob, DeployResult, deploy_all
from certfleet.layout import Placement
from certfleet.spec import HostSettings, Target

from . import sshlab
from .sshlab import Remote, lab

FILES = (DeployFile("site.crt", b"certificate\n", 0o644),
         DeployFile("site.key", b"private key\n", 0o600))
OLD = time.time() - 3 * 86400   # another Work host's leftover is anyone's after a day


def _plant(local: Path, count: int) -> None:
    """``count`` day-old leftovers of another Work host."""
    for i in range(count):
        path = local / f"{TMP_PREFIX}00000000-1-{i:012x}-site.key"
        path.write_text("left")
        os.utime(path, (OLD, OLD))


def _slow(monkeypatch: pytest.MonkeyPatch, ops: set[str], delay: float) -> None:
    """The server answers the requests named ``ops`` ``delay`` seconds late."""
    original = sshlab._Sftp._do

    async def late(self: Any, op: str, what: Any, call: Callable[[], Any]) -> Any:
        if op in ops:
            await asyncio.sleep(delay)
        return await original(self, op, what, call)
    monkeypatch.setattr(sshlab._Sftp, "_do", late)


def _job(remote: Remote, directory: str, **settings: Any) -> DeployJob:
    where = Placement(directory, tuple((f.name, f.name) for f in FILES), False)
    return DeployJob(f"{directory.rpartition('/')[2]}.test",
                     Target(directory, host="127.0.0.1", user="deployer"), FILES, 1,
                     HostSettings(**settings), 1, where)


async def _deploy(remote: Remote, jobs: list[DeployJob], within: float) -> list[DeployResult]:
    """``deploy_all``, or a failure if it takes longer than ``within`` seconds."""
    return await asyncio.wait_for(deploy_all(jobs, lambda job: remote.transport()), within)


async def _install(remote: Remote, directory: str) -> None:
    async with remote.transport() as transport:
        await transport.install(_job(remote, directory).placement, FILES, HostSettings())


def test_the_sweep_removes_a_bounded_number_of_leftovers(tmp_path: Path) -> None:
    from certfleet.deploy.sftp_sweep import MAX_SWEPT

    async def body(remote: Remote) -> list[str]:
        local = remote.at("/srv")
        local.mkdir()
        _plant(local, MAX_SWEPT + 36)
        await _install(remote, "/srv")
        assert [op for op, _ in remote.asked].count("remove") == MAX_SWEPT
        await _install(remote, "/srv")  # the rest go on the next deploy
        return os.listdir(local)
    assert sorted(lab(tmp_path, body)) == ["site.crt", "site.key"]


def test_the_sweep_reads_a_bounded_number_of_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server listing names without end: the listing is read up to ``MAX_LISTED`` names
    (and the reply in flight), then closed; the deploy goes on."""
    from certfleet.deploy.sftp_sweep import MAX_LISTED
    listed = [0]

    async def endless(self: Any, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        attrs = asyncssh.SFTPAttrs(permissions=0o100644)
        for i in range(3 * MAX_LISTED):
            listed[0] += 1
            yield asyncssh.SFTPName(b"x" * 200 + str(i).encode(), longname=b"-", attrs=attrs)
    monkeypatch.setattr(sshlab._Sftp, "scandir", endless)

    async def body(remote: Remote) -> None:
        remote.at("/srv").mkdir()
        await _install(remote, "/srv")
        assert sorted(os.listdir(remote.at("/srv"))) == ["site.crt", "site.key"]
    lab(tmp_path, body)
    assert MAX_LISTED <= listed[0] <= MAX_LISTED + 256, listed  # a reply is 128 names here


def test_a_hosts_deploy_ends_by_its_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each REMOVE of the second target's sweep answered 0.3 s late (60 of them: 18 s,
    each well inside OP_TIMEOUT): the host's deadline (1 s here) ends its deploy; the
    first target's files were in place and say so."""
    monkeypatch.setattr(batch, "HOST_TIME", 1.0, raising=False)
    monkeypatch.setattr(batch, "CERT_TIME", 0.0, raising=False)
    _slow(monkeypatch, {"remove"}, 0.3)

    async def body(remote: Remote) -> tuple[list[DeployResult], float]:
        remote.at("/srv").mkdir()
        remote.at("/srv/a").mkdir()
        remote.at("/srv/b").mkdir()
        _plant(remote.at("/srv/b"), 60)
        began = time.monotonic()
        results = await _deploy(remote, [_job(remote, "/srv/a"), _job(remote, "/srv/b")], 8)
        return results, time.monotonic() - began
    (first, second), took = lab(tmp_path, body)
    late = "deployer@127.0.0.1: the deploy to this host did not end within 1 s; stopped"
    assert first.error == f"files in place, then {late}"
    assert second.error == late
    assert took < 3, took


def test_past_the_deadline_nothing_more_is_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline falls while the files are written: the temporary files are left for a
    later run's sweep, not closed and removed one late request at a time."""
    monkeypatch.setattr(batch, "HOST_TIME", 0.6, raising=False)
    monkeypatch.setattr(batch, "CERT_TIME", 0.0, raising=False)
    _slow(monkeypatch, {"write"}, 0.4)

    async def body(remote: Remote) -> tuple[list[DeployResult], set[str]]:
        remote.at("/srv").mkdir()
        results = await _deploy(remote, [_job(remote, "/srv")], 8)
        return results, {op for op, _ in remote.asked}

    results, asked = lab(tmp_path, body)
    assert results[0].error == \
        "deployer@127.0.0.1: the deploy to this host did not end within 0.6 s; stopped"
    assert "write" in asked
    assert not asked & {"close", "remove", "rename"}, asked
    left = os.listdir(tmp_path / "root" / "srv")
    assert left, "the temporary file being written is left"
    assert all(name.startswith(TMP_PREFIX) for name in left), left


@pytest.mark.parametrize(("owner", "said"), [
    ("www", "cannot resolve user www: got 9999999999, not an ID (at most 4294967294)"),
    (None, "cannot resolve id -u: got 9999999999, not an ID (at most 4294967294)"),
    ("9999999999", "user 9999999999 is not a user ID (at most 4294967294)"),
    ("4294967295", "user 4294967295 is not a user ID (at most 4294967294)"),
])
def test_an_id_too_large_for_32_bits_is_refused(
        tmp_path: Path, owner: str | None, said: str) -> None:
    """The host answers ``id -u`` with 9999999999 (or the settings give it): a one-line
    failure of that host's targets, not an error SFTP meets when it encodes the number.
    2**32 - 1 is (uid_t) -1, "leave the owner as it is" to chown."""
    async def body(remote: Remote) -> list[DeployResult]:
        (remote.bin / "id").write_text("#!/bin/sh\necho 9999999999\n")
        (remote.bin / "id").chmod(0o755)
        remote.at("/srv").mkdir()
        return await _deploy(remote, [_job(remote, "/srv", owner=owner)], 8)
    results = lab(tmp_path, body)
    assert results[0].error == f"deployer@127.0.0.1: {said}"


def test_a_host_s_deadline_grows_with_its_targets() -> None:
    assert batch.host_deadline(1) == batch.HOST_TIME + batch.CERT_TIME
    assert batch.host_deadline(4) == batch.HOST_TIME + 4 * batch.CERT_TIME
