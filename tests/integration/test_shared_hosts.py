"""Several Work hosts (separate local dirs and processes) on one PostgreSQL and one Pebble:
every certificate ordered once and deployed once; a paused host's late writes refused."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .fleet_helpers import orders_seen
from .shared_helpers import Host, Serve

pytestmark = pytest.mark.integration
HOSTS = 3
CERTS = int(os.environ.get("CERTFLEET_SHARED_CERTS", "200"))


def _fleet(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    target = tmp_path / "target"
    target.mkdir()
    domains = tmp_path / "domains.txt"
    domains.write_text("".join(f"{n}|{target}\n" for n in names))
    return domains, target


def _wait_all(procs: list[subprocess.Popen[str]], timeout: float = 600) -> list[str]:
    return [p.communicate(timeout=timeout)[0] for p in procs]


def test_three_hosts_order_and_deploy_each_certificate_once(
        pebble_lab_factory: Any, postgres: Any, tmp_path: Path) -> None:
    lab = pebble_lab_factory()
    names = [f"c{i:03d}.shared.example" for i in range(CERTS)]
    domains, target = _fleet(tmp_path, names)
    hosts = [Host(tmp_path, f"w{i}", lab, postgres, domains, concurrency=8)
             for i in range(HOSTS)]
    assert hosts[0].cli("store", "migrate")[0] == 0
    with Serve(hosts[0], lab.http_port):
        outs = _wait_all([h.start("run") for h in hosts])
    both = "\n".join(outs)
    print(both)
    assert orders_seen(lab) == CERTS, both
    for name in names:
        assert both.count(f"{name}: issued") == 1, name
        assert (target / name / "fullchain.pem").exists()
    # Every target's record names the active version's serial.
    deploys = postgres.psql(
        "SELECT count(*) FROM certfleet_certs c JOIN certfleet_versions v "
        "ON v.name = c.name AND v.version = c.active, "
        "jsonb_each(c.state::jsonb -> 'deploy') AS d(target, record) "
        "WHERE d.record ->> 'serial' = v.meta::jsonb ->> 'serial'")
    assert int(deploys) == CERTS
    # Each target deployed once: only the host that issued it sent it (its line says so).
    assert sum(o.count("deployed to 1/1") for o in outs) == CERTS, both
    assert postgres.psql("SELECT count(*) FROM certfleet_leases WHERE expires > now()"
                         ).strip() == "0"
    # Spread without a coordinator: more than one host issued something.
    assert sum(1 for o in outs if ": issued" in o) > 1, both
    rc, out = hosts[1].cli("run")
    assert rc == 2, out
    assert orders_seen(lab) == CERTS


def _lease_of(postgres: Any, name: str) -> str:
    return postgres.psql(f"SELECT holder FROM certfleet_leases WHERE name = '{name}' "
                         "AND expires > now()").strip()


def test_a_paused_host_past_its_lease_is_fenced_off(
        pebble_lab_factory: Any, postgres: Any, tmp_path: Path) -> None:
    """Host a is stopped (SIGSTOP) while it holds the lease, with its order recorded; b
    takes the certificate over after the lease runs out and finishes it; a resumed has
    every write refused, and nothing of it reaches the store or the target."""
    lab = pebble_lab_factory(env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "4"})
    name = "paused.shared.example"
    domains, target = _fleet(tmp_path, [name])
    a, b = (Host(tmp_path, h, lab, postgres, domains, lease=5) for h in ("a", "b"))
    assert a.cli("store", "migrate")[0] == 0
    with Serve(b, lab.http_port):
        proc = a.start("run", "-v")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recorded = postgres.psql(f"SELECT state LIKE '%order%' FROM certfleet_certs "
                                     f"WHERE name = '{name}'").strip()
            if recorded == "t" and _lease_of(postgres, name).startswith("a/"):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"a never recorded its order: {proc.communicate(timeout=60)[0]}")
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            time.sleep(6)  # past the lease of 5 s
            rc, out = b.cli("run")
            assert rc == 0, out
            assert f"{name}: issued" in out
            assert _lease_of(postgres, name) == ""
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        late, _ = proc.communicate(timeout=120)
    print(late)
    assert proc.returncode == 1, late
    # Its record of the attempt was refused too: the state is b's.
    assert "lease lost to another Work host" in late, late
    last = postgres.psql(f"SELECT state::jsonb -> 'last' ->> 'result' FROM certfleet_certs "
                         f"WHERE name = '{name}'").strip()
    assert last == "issued", last
    assert postgres.psql("SELECT count(*) FROM certfleet_versions").strip() == "1"
    assert postgres.psql(f"SELECT active FROM certfleet_certs WHERE name = '{name}'"
                         ).strip() == "1"
    holder = postgres.psql("SELECT holder FROM certfleet_leases").strip()
    assert holder.startswith("b/"), holder
    # b resumed a's order rather than placing another (or, if the CA would not let it,
    # placed one more): never more than one order beyond the one in flight.
    assert orders_seen(lab) in (1, 2)
    print(f"orders: {orders_seen(lab)}")
    deployed = (target / name / "cert.pem").read_bytes()
    stored = postgres.psql(f"SELECT encode(cert, 'escape') FROM certfleet_versions "
                           f"WHERE name = '{name}'")
    assert deployed.decode().strip() == stored.strip()


@pytest.mark.parametrize("fault", ["restart", "drop"])
def test_a_database_restart_mid_run_fails_cleanly_and_the_next_run_completes(
        pebble_lab_factory: Any, postgres: Any, tmp_path: Path, fault: str) -> None:
    """PostgreSQL stops and starts again (``restart``), or the host's connections are cut
    by the server in whatever transaction they are in (``drop``), while a host is issuing:
    what fails, fails cleanly (no traceback, nothing half-written) and the next run issues
    the rest."""
    lab = pebble_lab_factory(env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "2"})
    names = [f"r{i:02d}.shared.example" for i in range(12)]
    domains, target = _fleet(tmp_path, names)
    host = Host(tmp_path, "w", lab, postgres, domains, lease=5, concurrency=4)
    assert host.cli("store", "migrate")[0] == 0
    with Serve(host, lab.http_port):
        proc = host.start("run")
        started = time.monotonic()
        while time.monotonic() < started + 120 and proc.poll() is None:
            active = postgres.psql("SELECT count(active) FROM certfleet_certs").strip()
            if int(active or 0) >= 2:
                break
            time.sleep(0.1)
        print(f"restart after {time.monotonic() - started:.1f}s, {active} active")
        assert proc.poll() is None
        if fault == "restart":
            postgres.lab.stop_server("fast")
            time.sleep(1)
            postgres.lab.start_server()
        else:
            for _ in range(5):  # the run's connections, then those it opens again
                postgres.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              f"WHERE application_name = 'certfleet' AND pid <> "
                              f"pg_backend_pid() AND datname = '{postgres.name}'")
                time.sleep(0.3)
        first, _ = proc.communicate(timeout=300)
        print(first)
        assert "Traceback" not in first
        if fault == "restart":
            assert proc.returncode == 1, first
            assert "connection lost" in first or "cannot connect" in first, first
        versions = postgres.psql("SELECT count(*) FROM certfleet_versions").strip()
        actives = postgres.psql("SELECT count(active) FROM certfleet_certs").strip()
        assert versions == actives      # every version stored is whole and active
        assert int(actives) >= 2        # those activated before the restart are kept
        time.sleep(6)                   # leases the broken run could not release run out
        rc, second = host.cli("run")
        # A certificate whose validation failed while the database was away (its
        # token could not be read) waits out its back-off, as after any failure; the
        # operator's `run --force NAME` (or the next run after the back-off) takes it.
        waiting = [line.split(":")[0] for line in second.splitlines()
                   if ": failed: next attempt after" in line]
        if waiting:
            rc, second = host.cli("run", "--force", *waiting)
    assert rc == 0, second
    assert postgres.psql("SELECT count(active) FROM certfleet_certs").strip() == str(len(names))
    for name in names:
        assert (target / name / "fullchain.pem").exists()
    orders = orders_seen(lab)
    print(f"orders: {orders} for {len(names)} certificates; {actives} stored by the run hit by the "
          f"{fault}; first run exit {proc.returncode}")
    # At most the orders in flight at the restart (concurrency 4) were placed again.
    assert len(names) <= orders <= len(names) + 4


def _waiting_at(postgres: Any, statement: str, timeout: float = 120) -> int:
    """The pid of the certfleet backend that waits on a lock at ``statement``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = postgres.psql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'certfleet' AND "
            f"datname = '{postgres.name}' AND wait_event_type = 'Lock' AND state = 'active' "
            f"AND query LIKE '%{statement}%'").strip()
        if pid:
            return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"no certfleet session reached {statement!r} in {timeout} s")


# Where a connection is cut: the statement a host's session is held at (by a lock the
# test holds in a session of its own), and how it is held there.
HELD_AT = {
    # the insert of the new version: the first write of the activation, after its fence
    "insert": ("INSERT INTO certfleet_versions", None,
               "BEGIN; LOCK TABLE certfleet_versions IN SHARE MODE; SELECT pg_sleep(300)"),
    # the switch of the active version: the version row is already written in the same
    # transaction (a trigger waits there on an advisory lock the test holds)
    "switch": ("UPDATE certfleet_certs SET active",
               "CREATE FUNCTION held() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$; "
               "CREATE TRIGGER held BEFORE UPDATE OF active ON certfleet_certs FOR EACH ROW "
               "WHEN (NEW.active IS NOT NULL) EXECUTE FUNCTION held()",
               "SELECT pg_advisory_lock(4242), pg_sleep(300)"),
}


@pytest.mark.parametrize("where", sorted(HELD_AT))
def test_a_connection_dropped_inside_the_activation_transaction_loses_nothing(
        pebble_lab_factory: Any, postgres: Any, tmp_path: Path, where: str) -> None:
    """The host's connection is cut at a chosen statement inside the one transaction that
    stores a new version and makes it active, after its fencing check: at the insert of
    the version, or at the switch of the active version once the version row is written.
    The server rolls the transaction back whole: no version row, nothing active. The run
    fails that certificate with its line (no traceback), and the next run completes the
    same order: one order at the CA."""
    statement, setup, hold = HELD_AT[where]
    lab = pebble_lab_factory()
    name = "drop.shared.example"
    domains, target = _fleet(tmp_path, [name])
    host = Host(tmp_path, "w", lab, postgres, domains, lease=30, concurrency=1)
    assert host.cli("store", "migrate")[0] == 0
    if setup is not None:
        postgres.psql(setup)
    holder = postgres.psql_session(hold)
    try:
        with Serve(host, lab.http_port):
            proc = host.start("run")
            pid = _waiting_at(postgres, statement)
            # held there inside the transaction, after the version's insert for "switch"
            inserted = postgres.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                f"WHERE l.pid = {pid} AND c.relname = 'certfleet_versions' "
                "AND l.mode = 'RowExclusiveLock' AND l.granted").strip()
            assert inserted == ("1" if where == "switch" else "0")
            assert postgres.psql("SELECT count(*) FROM certfleet_leases "
                                 "WHERE expires > now()").strip() == "1"   # fenced, held
            postgres.psql(f"SELECT pg_terminate_backend({pid})")
            first, _ = proc.communicate(timeout=120)
    finally:
        holder.kill()
        holder.wait()
        postgres.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      f"application_name = 'psql' AND datname = '{postgres.name}' "
                      "AND pid <> pg_backend_pid()")
    print(first)
    assert proc.returncode == 1, first
    assert "Traceback" not in first
    assert f"{name}: failed: " in first, first
    assert "connection lost" in first, first
    assert postgres.psql("SELECT count(*) FROM certfleet_versions").strip() == "0"
    assert postgres.psql(f"SELECT active IS NULL FROM certfleet_certs WHERE name = '{name}'"
                         ).strip() == "t"
    assert not (target / name).exists()
    if setup is not None:
        postgres.psql("DROP TRIGGER held ON certfleet_certs")
    with Serve(host, lab.http_port):
        rc, second = host.cli("run", "--force", name)   # the failure's back-off waived
    assert rc == 0, second
    assert f"{name}: issued" in second
    assert postgres.psql(f"SELECT active FROM certfleet_certs WHERE name = '{name}'"
                         ).strip() == "1"
    assert (target / name / "fullchain.pem").exists()
    assert orders_seen(lab) == 1   # the order placed before the drop, finished


def test_kill_9_rounds_order_each_certificate_at_most_once_beyond_those_in_flight(
        pebble_lab_factory: Any, postgres: Any, tmp_path: Path) -> None:
    """20 rounds, each over six new certificates: three hosts run at once and one of them,
    at random, is killed with SIGKILL at a random moment. Then one more run issues what is
    left: orders beyond one a certificate are at most those the killed hosts had in
    flight, and no lease is left claimed."""
    import random

    rng = random.Random(14)
    lab = pebble_lab_factory(env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "1"})
    rounds, per_round = 20, 6
    names = [f"k{i:03d}.shared.example" for i in range(rounds * per_round)]
    domains, target = _fleet(tmp_path, names)
    hosts = [Host(tmp_path, f"w{i}", lab, postgres, domains, lease=5, concurrency=2)
             for i in range(HOSTS)]
    assert hosts[0].cli("store", "migrate")[0] == 0
    in_flight = killed = 0
    with Serve(hosts[0], lab.http_port):
        for r in range(rounds):
            these = names[r * per_round:(r + 1) * per_round]
            procs = [h.start("run", *these) for h in hosts]
            victim = rng.randrange(HOSTS)
            mine = f"holder LIKE 'w{victim}/{procs[victim].pid}/%'"
            # A random moment once the victim is at work (it claimed something).
            deadline = time.monotonic() + 30
            while procs[victim].poll() is None and time.monotonic() < deadline and \
                    postgres.psql(f"SELECT count(*) FROM certfleet_leases WHERE {mine}"
                                  ).strip() == "0":
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 1.5))
            if procs[victim].poll() is None:
                held = postgres.psql("SELECT count(*) FROM certfleet_leases WHERE "
                                     f"expires > now() AND {mine}").strip()
                procs[victim].kill()
                procs[victim].wait()
                killed += 1
                in_flight += int(held)  # claimed just before the kill: at most these
            for proc in procs:
                out, _ = proc.communicate(timeout=300)
                assert "Traceback" not in (out or ""), out
        time.sleep(6)  # the killed hosts' leases run out
        rc, out = hosts[1].cli("run")
    assert rc in (0, 2), out
    active = postgres.psql("SELECT count(active) FROM certfleet_certs").strip()
    assert active == str(len(names)), out
    assert postgres.psql("SELECT count(*) FROM certfleet_leases WHERE expires > now()"
                         ).strip() == "0"
    assert postgres.psql("SELECT count(*) FROM certfleet_versions").strip() == str(len(names))
    orders = orders_seen(lab)
    print(f"orders: {orders} for {len(names)} certificates; {killed} hosts killed holding "
          f"{in_flight} leases; the last run: {out.splitlines()[-1]}")
    assert killed >= 10
    assert in_flight > 0  # the kills hit work in flight
    assert len(names) <= orders <= len(names) + in_flight
    for name in names:
        assert (target / name / "fullchain.pem").exists()


def test_two_load_balancers_reach_whichever_work_host_is_up(
        pebble_lab_factory: Any, postgres: Any, tmp_path: Path) -> None:
    """Both load balancers (real nginx) run what `nginx-config --work A --work B` prints;
    two Work hosts run `serve` from the shared tokens. A token any host presented is
    answered through both load balancers, and still when one Work host is stopped."""
    import socket

    import web_lab

    from ..conftest import require

    require(web_lab.find_binaries, web_lab.WebLabUnavailable)
    from lb_lab import LoadBalancer

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    lab = pebble_lab_factory()
    domains, _ = _fleet(tmp_path, ["lb.shared.example"])
    hosts = [Host(tmp_path, f"w{i}", lab, postgres, domains) for i in range(2)]
    assert hosts[0].cli("store", "migrate")[0] == 0
    ports = [free_port() for _ in hosts]
    rc, text = hosts[0].cli("nginx-config", *(a for p in ports
                                             for a in ("--work", f"127.0.0.1:{p}")))
    assert rc == 0, text
    http_part, _, server_part = text.partition("# Inside every server block")
    server_part = server_part.partition("\n")[2].split("# On the Work host")[0]
    assert "upstream certfleet_acme {" in http_part
    token, key_auth = "tok-" + "A" * 40, "tok-" + "A" * 40 + ".thumb"
    postgres.psql("INSERT INTO certfleet_tokens (token, name, key_authorization) "
                  f"VALUES ('{token}', 'lb.shared.example', '{key_auth}')")
    path = f"/.well-known/acme-challenge/{token}"
    serves = [Serve(h, p) for h, p in zip(hosts, ports, strict=True)]
    lbs = [LoadBalancer(tmp_path / f"lb{i}", "127.0.0.1", free_port(), name=f"lb{i}")
           for i in range(2)]
    try:
        for lb in lbs:
            lb.start(server_part, http_part)
        for lb in lbs:
            assert lb.get(path, "lb.shared.example") == (200, key_auth), lb.name
            assert lb.get(path, "other.example")[0] == 404  # only for the name validated
        serves[0].stop()
        for lb in lbs:
            for _ in range(3):  # whichever host nginx tries first, the answer comes
                assert lb.get(path, "lb.shared.example") == (200, key_auth), lb.name
    finally:
        for lb in lbs:
            lb.stop()
        for serve in serves:
            if serve.proc.poll() is None:
                serve.stop()
