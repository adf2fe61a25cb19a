"""A certificate's line in a run's output: each failed target once, named once."""

from __future__ import annotations

from certfleet.deploy.batch import DeployResult
from certfleet.report import Outcome
from certfleet.spec import Target


def test_a_target_already_named_by_its_error_is_named_once() -> None:
    local, remote = Target(path="/srv/tls"), Target(path="/etc/ssl", host="web1")
    outcome = Outcome("a.example", deployed=[
        DeployResult("a.example", local, "/srv/tls: target directory missing"),
        DeployResult("a.example", remote, "cannot connect: Connection refused")])
    assert outcome.line() == (
        "a.example: not due, deployed to 0/2 targets; /srv/tls: target directory missing; "
        f"{remote.key}: cannot connect: Connection refused")
