"""A CA that puts huge or strange values where certfleet keeps or prints them: every value
from the network is bounded before it is kept, escaped before it is printed, and one
certificate's record never makes the fleet unusable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from tests.cli import run_main

from .fakeca import FakeCA
from .harness import CONTROL

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x9b31m\nFAKE: line\r"
STATE_BOUND = 16 * 1024  # what one certificate's record may grow to, whatever the CA says


def _fleet(ca: FakeCA, root: Path, names: list[str]) -> list[str]:
    domains = root / "domains.txt"
    domains.write_text("".join(f"{n}\n" for n in names))
    (root / "webroot").mkdir(exist_ok=True)
    return ["--domains", str(domains), "--state-dir", str(root / "state"), "--directory",
            ca.directory_url, "--insecure-http", "--webroot", str(root / "webroot")]


def _run(common: list[str], *extra: str) -> tuple[int, str, str]:
    """``certfleet run``, one order at a time: the fake CA keeps one order in flight."""
    return run_main(["run", "--concurrency", "1", *extra, *common])


def _with_ari(ca: FakeCA, answer: dict[str, object]) -> None:
    ca.tweak("/dir", lambda d: {**d, "renewalInfo": ca.url("/ari")})

    async def renewal_info(request: web.Request) -> web.Response:
        return ca.json(answer, 200, **{"Retry-After": "3600"})

    ca.prefixes["/ari/"] = renewal_info


def _record(root: Path, name: str) -> bytes:
    return (root / "state" / "certs" / name / "state.json").read_bytes()


@pytest.mark.parametrize("explanation", [
    "https://ca.example/why/" + "x" * 900_000,   # near the 1 MiB body cap
    f"https://ca.example/{ESCAPES}",             # control characters
    "x" * 2000,                                  # longer than any URL kept
])
def test_renewal_explanations_are_bounded_and_never_printed_raw(
        ca: FakeCA, tmp_path: Path, explanation: str) -> None:
    names = ["a.example", "b.example"]
    common = _fleet(ca, tmp_path, names)
    rc, out, err = _run(common)
    assert rc == 0, out + err
    now = datetime.now(UTC)
    _with_ari(ca, {"suggestedWindow": {"start": (now + timedelta(days=20)).isoformat(),
                                       "end": (now + timedelta(days=21)).isoformat()},
                   "explanationURL": explanation})
    # The windows are asked for at the next run (the first had none to ask about yet).
    rc, out, err = _run(common, "-v")
    assert rc == 2, out + err
    assert ca.count("GET /ari/*") == 2
    for name in names:
        record = _record(tmp_path, name)
        assert len(record) < STATE_BOUND, len(record)
        ari = json.loads(record)["ari"]
        assert ari["chosen"]  # the window itself was kept; the strange explanation was not
        assert "explanation" not in ari
    for argv in (["status", "--state-dir", str(tmp_path / "state")],
                 ["status", "--json", "--state-dir", str(tmp_path / "state")]):
        rc, out, err = run_main(argv)
        assert rc == 0, err
        assert not CONTROL.search(out.replace("\n", "")), out[:200]
        assert len(out) < 20_000
    assert not CONTROL.search(err.replace("\n", ""))


def test_a_huge_problem_detail_is_bounded_everywhere(ca: FakeCA, tmp_path: Path) -> None:
    names = ["a.example", "b.example"]
    common = _fleet(ca, tmp_path, names)

    async def refuse(request: web.Request) -> web.Response:
        return ca.problem("rejectedIdentifier", ESCAPES * 100 + "y" * 800_000, 400)

    ca.overrides["/order"] = refuse
    rc, out, err = _run(common, "-vv")
    assert rc == 1
    for line in out.splitlines():
        assert len(line) < 2000
        assert not CONTROL.search(line)
    assert not CONTROL.search(err.replace("\n", ""))
    for name in names:
        record = _record(tmp_path, name)
        assert len(record) < STATE_BOUND
        assert "\x1b" not in record.decode()
    # The fleet stays usable: the next commands read every record.
    rc, out, _ = run_main(["status", *common[:4]])
    assert rc == 0
    assert out.count("next attempt after") == 2


def test_one_oversized_record_fails_only_its_certificate(ca: FakeCA, tmp_path: Path) -> None:
    names = ["a.example", "b.example", "c.example"]
    common = _fleet(ca, tmp_path, names)
    assert _run(common)[0] == 0
    big = tmp_path / "state" / "certs" / "b.example" / "state.json"
    big.write_text(json.dumps({"junk": "z" * (2 << 20)}))  # past the 1 MiB read limit
    rc, out, _ = _run(common, "--force")
    assert rc == 1
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert lines["b.example"].startswith(f"b.example: failed: {big}: larger than ")
    assert lines["a.example"].startswith("a.example: renewed")
    assert lines["c.example"].startswith("c.example: renewed")
    rc, out, _ = run_main(["status", "--state-dir", str(tmp_path / "state")])
    assert rc == 1
    assert f"b.example: DAMAGED: {big}: larger than " in out
    assert "a.example: a.example; expires " in out


def test_a_window_that_is_no_time_in_utc_never_stops_the_fleet(
        ca: FakeCA, tmp_path: Path) -> None:
    """Year 1 at +14:00 is valid RFC 3339 and the year 0 in UTC. Kept, it made every later
    run, status and monitor of the whole fleet end in a traceback, after the CA had long
    answered normally again."""
    names = ["a.example", "b.example"]
    common = _fleet(ca, tmp_path, names)
    assert _run(common)[0] == 0
    _with_ari(ca, {"suggestedWindow": {"start": "0001-01-01T00:00:00+14:00",
                                       "end": "0001-01-01T00:00:01+14:00"}})
    rc, out, err = _run(common, "-v")
    assert rc == 2, out + err
    assert "renewal information unavailable, using the lifetime rule: renewalInfo: start " \
        "is out of range" in err
    assert all("0001-" not in _record(tmp_path, n).decode() for n in names)
    # A record that a release before this one kept: the schedule is dropped, asked again.
    record = tmp_path / "state" / "certs" / "a.example" / "state.json"
    data = json.loads(record.read_bytes())
    data["ari"] = {"serial": "ab", "next_fetch": "0001-01-01T00:00:00+14:00",
                   "start": "0001-01-01T00:00:00+14:00", "end": "0001-01-01T00:00:01+14:00",
                   "chosen": "0001-01-01T00:00:00+14:00"}
    record.write_text(json.dumps(data))
    (tmp_path / "state" / "index.json").unlink(missing_ok=True)
    now = datetime.now(UTC)
    _with_ari(ca, {"suggestedWindow": {"start": (now + timedelta(days=20)).isoformat(),
                                       "end": (now + timedelta(days=21)).isoformat()}})
    for argv in (["run", "--concurrency", "1", *common], ["status", *common[:4]],
                 ["monitor", *common]):
        rc, out, err = run_main(argv)
        assert "Traceback" not in err
        assert rc in (0, 2), (argv[0], out, err)
    assert json.loads(record.read_bytes())["ari"]["chosen"].startswith(
        str((now + timedelta(days=20)).year))
