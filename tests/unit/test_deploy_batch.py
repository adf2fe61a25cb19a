"""``deploy_all``: a fault in one host's deploy fails that host's targets only.

Hosts are deployed in parallel; an exception of a kind no transport is meant to raise (a
fault of certfleet's own, as the hostile-target rounds once found: a ``StoreError`` from
the local transport, ``InvalidVersion`` from the probe) must become that host's result and
never end ``deploy_all`` while other hosts are in flight. The healthy host here is a real
local target directory; the faulty one stands in for the bug.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pytest

from certfleet.deploy import DeployFile, Transport
from certfleet.deploy.batch import DeployJob, deploy_all
from certfleet.deploy.local import LocalTransport
from certfleet.layout import Placement
from certfleet.spec import HostSettings, Target

FILES = (DeployFile("cert.pem", b"cert\n", 0o644), DeployFile("privkey.pem", b"key\n", 0o600))


class Faulty:
    """A host whose install fails with an exception no transport should let out."""

    label = "faulty"

    def __init__(self, fault: BaseException) -> None:
        self.fault = fault

    async def __aenter__(self) -> Faulty:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    async def install(self, where: Placement, files: Sequence[DeployFile],
                      settings: HostSettings) -> None:
        await asyncio.sleep(0)   # the other host is in flight meanwhile
        raise self.fault

    async def run(self, argv: Sequence[str]) -> None:
        raise AssertionError("no reload after a failed install")

    def peer_address(self) -> str | None:
        return None


def _job(target: Target) -> DeployJob:
    placement = Placement(target.path, tuple((f.name, f.name) for f in FILES), False)
    return DeployJob("a.example", target, FILES, 0x1234, HostSettings(trust_target_dir=True),
                     1, placement)


@pytest.mark.parametrize("fault", [RuntimeError("a bug\x1b[2J"), KeyError("cert.pem"),
                                   ValueError("x")])
def test_a_fault_of_one_host_fails_its_targets_only(tmp_path: Path,
                                                    fault: BaseException) -> None:
    good = tmp_path / "good"
    good.mkdir()
    jobs = [_job(Target(str(good))), _job(Target("/srv/tls", host="bad.example")),
            _job(Target("/srv/other", host="bad.example"))]

    def transport(job: DeployJob) -> Transport:
        return LocalTransport() if job.target.is_local else Faulty(fault)

    heard: list[str] = []
    results = asyncio.run(deploy_all(jobs, transport, lambda r: heard.append(r.target.key)))
    by_target = {result.target.key: result for result in results}
    assert by_target[str(good)].ok
    assert (good / "cert.pem").read_bytes() == b"cert\n"
    for key in ("bad.example:/srv/tls", "bad.example:/srv/other"):
        error = by_target[key].error
        assert error is not None
        assert error.startswith(f"unexpected error: {type(fault).__name__}: "), error
        assert "\x1b" not in error
    assert sorted(heard) == sorted(by_target)   # every result was reported as it came
