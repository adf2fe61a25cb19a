"""`certfleet run` over a domains file against a real Pebble, deploying to local targets."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certfleet.ca import CaSessions
from certfleet.store.files import Store

from .conftest import webroot_server
from .fleet_helpers import by_name, orders_seen, run_cli, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(pebble_lab_factory: Any) -> Any:
    return pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})


def _setup(tmp_path: Path, lab: Any, domains_text: str, **kw: Any) -> Path:
    domains = tmp_path / "domains.txt"
    domains.write_text(domains_text)
    return write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains, **kw)


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_run_full_cycle(lab: Any, tmp_path: Path) -> None:
    dirs = {n: tmp_path / n for n in ("com1", "com2", "net1")}
    for d in dirs.values():
        d.mkdir()
    config = _setup(tmp_path, lab, f"""\
www.example.com example.com|{dirs['com1']} {dirs['com2']}
www.example.net|{dirs['net1']}
solo.example.org
""")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    lines = by_name(out)
    assert lines["www.example.com"].startswith("www.example.com: issued (expires 20")
    assert lines["www.example.com"].endswith("deployed to 2/2 targets")
    assert lines["www.example.net"].startswith("www.example.net: issued (expires 20")
    assert lines["www.example.net"].endswith("deployed to 1/1 targets")
    assert lines["solo.example.org"].startswith("solo.example.org: issued (expires 20")
    assert "deployed" not in lines["solo.example.org"]
    assert out.splitlines()[-1] == "3 certificates: 3 issued, deployed 3/3 targets"
    state = tmp_path / "state"
    for d in ("com1", "com2"):
        own = dirs[d] / "www.example.com"  # each certificate gets a directory of its own
        assert _serial(own / "cert.pem") == _serial(
            state / "certs" / "www.example.com" / "cert.pem")
        assert stat.S_IMODE(os.stat(own / "privkey.pem").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(own / "fullchain.pem").st_mode) == 0o644
        assert not [p for p in os.listdir(own) if p.startswith(".certfleet-tmp")]
    orders = orders_seen(lab)
    assert orders == 3

    rc, out = run_cli("run", "--config", str(config))
    assert rc == 2, out
    assert by_name(out)["www.example.com"].startswith("www.example.com: not due until 20")
    assert orders_seen(lab) == orders

    rc, out = run_cli("status", "--config", str(config), "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    com = rows["www.example.com"]
    assert com["names"] == ["www.example.com", "example.com"]
    assert set(com["targets"]) == {str(dirs["com1"]), str(dirs["com2"])}
    assert all(t["version"] == 1 for t in com["targets"].values())
    assert com["targets"][str(dirs["com1"])]["paths"] == (
        f"{dirs['com1']}/www.example.com/{{cert,chain,fullchain,privkey}}.pem")
    assert com["last"]["result"] == "issued"

    rc, out = run_cli("run", "--config", str(config), "--force", "www.example.net")
    assert rc == 0, out
    assert out.splitlines() == [out.splitlines()[0], "1 certificate: 1 renewed, "
                                "deployed 1/1 targets"]
    assert orders_seen(lab) == orders + 1


def test_failed_target_is_retried_without_reissuing(lab: Any, tmp_path: Path) -> None:
    good = tmp_path / "good" / "site.example.com"
    missing = tmp_path / "missing"
    good.mkdir(parents=True)
    config = _setup(tmp_path, lab, f"site.example.com|{good} {missing}\n")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    assert out.splitlines()[0].startswith("site.example.com: issued (expires ")
    assert f"deployed to 1/2 targets; {missing}: {missing}: target directory missing" in out
    orders = orders_seen(lab)
    before = (good / "cert.pem").stat().st_mtime_ns
    missing.mkdir()
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert out.splitlines()[0].startswith("site.example.com: not due until ")
    assert out.splitlines()[0].endswith("deployed to 1/1 targets")
    assert orders_seen(lab) == orders
    assert (good / "cert.pem").stat().st_mtime_ns == before  # not re-uploaded
    assert (missing / "site.example.com" / "fullchain.pem").exists()


def test_one_failure_does_not_stop_the_others(lab: Any, tmp_path: Path) -> None:
    lab.add_a("broken.example.com", "127.0.0.2")
    config = _setup(tmp_path, lab, "ok1.example.com\nbroken.example.com\nok2.example.com\n")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    lines = by_name(out)
    assert lines["ok1.example.com"].startswith("ok1.example.com: issued")
    assert lines["broken.example.com"].startswith(
        "broken.example.com: failed: broken.example.com: validation failed: connection")
    assert lines["ok2.example.com"].startswith("ok2.example.com: issued")
    assert lines[""] == "3 certificates: 1 failed, 2 issued"


def test_the_account_is_open_before_any_certificate_starts(
        lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answers that open the account are the first timings of the CA's round trip,
    which sizes the nonces in flight: no certificate takes its lock (and holds the event
    loop with its start-up) before the account is open."""
    events: list[str] = []
    session, locked = CaSessions.session, Store.locked

    async def opened(cas: CaSessions, url: str) -> Any:
        found = await session(cas, url)
        events.append("account")
        return found

    def lock(store: Store, name: str, *args: Any, **kwargs: Any) -> Any:
        events.append(name)
        return locked(store, name, *args, **kwargs)

    monkeypatch.setattr(CaSessions, "session", opened)
    monkeypatch.setattr(Store, "locked", lock)
    config = _setup(tmp_path, lab, "a.example.com\nb.example.com\nc.example.com\n")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert events[0] == "account"  # and then each certificate's lock, and its account
    assert sorted(e for e in events if e != "account") == [
        "a.example.com", "b.example.com", "c.example.com"]


def test_an_issued_certificate_s_record_is_written_twice(
        lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each write of the record is a file and two fsyncs: the order when the CA gives it
    (so that a stopped run resumes it), then its end and the result, in one write."""
    written: list[str] = []
    update = Store.update_state

    def counted(store: Store, name: str, change: Any) -> Any:
        written.append(name)
        return update(store, name, change)

    monkeypatch.setattr(Store, "update_state", counted)
    config = _setup(tmp_path, lab, "once.example.com\n")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert written == ["once.example.com"] * 2
    record = json.loads((tmp_path / "state" / "certs" / "once.example.com" /
                         "state.json").read_text())
    assert record["last"]["result"] == "issued"
    assert "order" not in record
    assert "backoff" not in record


def test_dry_run_and_name_filter(lab: Any, tmp_path: Path) -> None:
    config = _setup(tmp_path, lab, "a.example.com\nb.example.com\n")
    rc, out = run_cli("run", "--config", str(config), "--dry-run")
    assert rc == 0
    assert out.splitlines() == ["a.example.com: will be ordered (new; http-01)",
                                "b.example.com: will be ordered (new; http-01)"]
    assert orders_seen(lab) == 0
    rc, out = run_cli("run", "--config", str(config), "b.example.com")
    assert rc == 0, out
    assert out.startswith("b.example.com: issued")
    assert "a.example.com" not in out
    rc, out = run_cli("run", "--config", str(config), "c.example.com")
    assert rc == 1
    assert "not in the domains file: c.example.com" in out


def test_deploy_on_demand(lab: Any, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    config = _setup(tmp_path, lab, f"push.example.com|{target}\n")
    assert run_cli("run", "--config", str(config))[0] == 0
    (target / "push.example.com" / "cert.pem").unlink()
    rc, out = run_cli("deploy", "--config", str(config))
    assert rc == 0, out
    assert out.splitlines()[0].endswith("deployed to 1/1 targets")
    assert (target / "push.example.com" / "cert.pem").exists()


def test_bad_domains_file_runs_nothing(lab: Any, tmp_path: Path) -> None:
    config = _setup(tmp_path, lab, "good.example.com\nbad..example.com\n"
                    "x.example.com|relative/dir\n")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 1
    domains = tmp_path / "domains.txt"
    assert f"{domains}:2: " in out
    assert f"{domains}:3: " in out
    assert orders_seen(lab) == 0
    assert not (tmp_path / "state").exists()


def test_two_runs_at_once_order_each_certificate_once(lab: Any, tmp_path: Path) -> None:
    """A run over the whole fleet and a run naming every certificate, at once: the second
    does not take the fleet (it names its certificates), so the two really overlap, and
    the certificates' own locks keep each from being ordered twice."""
    names = [f"race{i}.example.com" for i in range(6)]
    webroot = tmp_path / "webroot"
    webroot.mkdir()
    config = _setup(tmp_path, lab, "\n".join(names) + "\n", concurrency=2,
                    sections={"challenge": {"webroot": str(webroot)}})
    cmd = [sys.executable, "-m", "certfleet", "run", "--config", str(config)]
    with webroot_server(webroot, lab.http_port):
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        second = subprocess.Popen([*cmd, *reversed(names)], stdout=subprocess.PIPE, text=True)
        out1, _ = first.communicate(timeout=120)
        out2, _ = second.communicate(timeout=120)
    assert orders_seen(lab) == len(names), (out1, out2)
    assert {first.returncode, second.returncode} <= {0, 2}, (out1, out2)
    both = out1 + out2
    for name in names:
        assert (tmp_path / "state" / "certs" / name / "current").exists()
        assert both.count(f"{name}: issued") == 1, both
        assert both.count(f"{name}: not due until") == 1, both


def test_run_with_tls_alpn01(lab: Any, tmp_path: Path) -> None:
    # The [challenge] section replaces the default one: no http-01 responder exists, so
    # only tls-alpn-01 can validate these names.
    config = _setup(tmp_path, lab, "alpn.example.com www.alpn.example.com\n", sections={
        "challenge": {"tls_alpn_listen": f"127.0.0.1:{lab.tls_port}"},
        "defaults": {"challenge": "tls-alpn-01"}})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert out.startswith("alpn.example.com: issued (expires ")
    assert "http_listen" not in config.read_text()


def test_one_certificate_with_two_key_types(lab: Any, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    target = tmp_path / "dual.example.com"  # named after the certificate: its own directory
    target.mkdir()
    config = _setup(tmp_path, lab, f"dual.example.com www.dual.example.com|{target}\n",
                    sections={'certs."dual.example.com"': {"key_type": ["ec256", "rsa2048"]}})
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    lines = by_name(out)
    assert lines["dual.example.com"].startswith("dual.example.com: issued (expires ")
    assert lines["dual.example.com+rsa2048"].startswith(
        "dual.example.com+rsa2048: issued (expires ")
    assert sorted(os.listdir(target)) == [
        "cert.pem", "cert.rsa2048.pem", "chain.pem", "chain.rsa2048.pem", "fullchain.pem",
        "fullchain.rsa2048.pem", "privkey.pem", "privkey.rsa2048.pem"]
    for suffix, kind in (("", ec.EllipticCurvePrivateKey), (".rsa2048", rsa.RSAPrivateKey)):
        key = serialization.load_pem_private_key(
            (target / f"privkey{suffix}.pem").read_bytes(), None)
        assert isinstance(key, kind)
        cert = x509.load_pem_x509_certificate((target / f"cert{suffix}.pem").read_bytes())
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    # One key type becomes due (its version is gone): both are renewed together.
    (tmp_path / "state" / "certs" / "dual.example.com+rsa2048" / "current").unlink()
    rc, out = run_cli("run", "--config", str(config), "--dry-run")
    assert out.splitlines()[0] == (
        "dual.example.com: will be ordered (renewed with dual.example.com+rsa2048; http-01)")
    rc, out = run_cli("run", "--config", str(config))
    assert rc == 0, out
    assert by_name(out)["dual.example.com"].startswith("dual.example.com: renewed")
    assert by_name(out)["dual.example.com+rsa2048"].startswith("dual.example.com+rsa2048: issued")
    # The other way round: the first key type due, the second follows it.
    (tmp_path / "state" / "certs" / "dual.example.com" / "current").unlink()
    rc, out = run_cli("run", "--config", str(config), "--concurrency", "1")
    assert rc == 0, out
    assert by_name(out)["dual.example.com"].startswith("dual.example.com: issued")
    assert by_name(out)["dual.example.com+rsa2048"].startswith("dual.example.com+rsa2048: renewed")
