"""A local authoritative DNS server for dns-01 tests: a real BIND 9 ``named`` on loopback.

Used by the integration tests and the demo. Needs ``dnspython`` (a certfleet dependency)
but not certfleet itself; the process handling is shared with ``tools/pebble_lab.py``.

``DnsLab(workdir).start()`` runs ``named -g`` (foreground, logging to ``named.log`` in the
work directory) on ``127.0.0.1:<free port>``, UDP and TCP, with everything it writes
(configuration, zone files, journals, pid file) in ``workdir``. It is authoritative for:

* ``example.com``: ``example.com`` and ``*.example.com`` have A 127.0.0.1;
* ``example.org``: the same, and ``_acme-challenge.www.example.org`` is a CNAME to
  ``www-example-org.acme-delegate.example.net`` (delegated validation);
* ``acme-delegate.example.net``: the zone the delegated TXT records go to;
* the root zone ``.``, nearly empty: every other name is NXDOMAIN, answered locally.

It also answers recursive queries from 127.0.0.1 (Pebble's VA sends those and does not
follow a CNAME itself), which, owning the root, it resolves without asking anyone: no
query ever leaves the machine (its own queries would come from 127.0.0.1 anyway).

Each zone's NS is ``ns1.<zone>`` with A 127.0.0.1, so an NS lookup of any zone leads back
to this server (at ``port``, not 53). Dynamic updates of TXT records anywhere in these zones
are allowed for one TSIG key generated per lab (``key_name``, ``key_secret``, base64,
``key_algorithm`` hmac-sha256); ``key_file`` holds it in BIND's syntax for ``nsupdate -k``.
A second key, ``readonly_key_name``/``readonly_key_secret``, is known to named but may
update nothing (for REFUSED).

Pebble validates against this server when started as ``PebbleWithDns(workdir, lab)``.

Binaries: ``/usr/sbin/named`` (Debian package bind9; ``nsupdate`` and ``dig`` come from
bind9-utils/bind9-dnsutils), installed by ``scripts/install-test-components``. named runs
as the calling user (root in the test machines: ``-u`` is not given, so it keeps its
uid; it needs no privilege for a port above 1023).

CLI: ``python tools/dns_lab.py serve --workdir DIR`` prints ``KEY=VALUE`` lines and serves
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import shutil
import sys
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
from pebble_lab import (
    PebbleLab,
    _free_ports,
    _Processes,
    _stop_signals,
    _tail,
)

__all__ = [
    "NAMED",
    "ZONES",
    "DnsLab",
    "DnsLabError",
    "DnsLabStartError",
    "DnsLabUnavailable",
    "PebbleWithDns",
    "find_named",
]

NAMED = Path("/usr/sbin/named")
INSTALL_SCRIPT = "scripts/install-test-components"
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 20.0
START_ATTEMPTS = 3
QUERY_TIMEOUT = 2.0

ZONES = ("example.com", "example.org", "acme-delegate.example.net")
DELEGATED = {  # CNAME owner -> target, for delegated validation
    "_acme-challenge.www.example.org": "www-example-org.acme-delegate.example.net",
}


ROOT_ZONE = """$TTL 60
@ IN SOA a.root.lab. hostmaster.root.lab. 1 3600 600 86400 60
@ IN NS a.root.lab.
a.root.lab. IN A 127.0.0.1
"""


class DnsLabError(Exception):
    """Base class of the errors raised by this module (except DnsLabUnavailable)."""


class DnsLabUnavailable(Exception):
    """named is not installed."""


class DnsLabStartError(DnsLabError):
    """named did not come up; the message has the tail of its log."""


def find_named() -> Path:
    """The named binary, or DnsLabUnavailable."""
    if NAMED.is_file():
        return NAMED
    found = shutil.which("named")
    if found:
        return Path(found)
    raise DnsLabUnavailable(f"BIND 9 not available: {NAMED} missing. "
                            f"Run {INSTALL_SCRIPT} (installs bind9, bind9-utils).")


def _zone_text(zone: str, extra: Mapping[str, str]) -> str:
    lines = [
        "$TTL 60",
        f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60",
        f"@ IN NS ns1.{zone}.",
        f"ns1 IN A {LOOPBACK}",
        f"@ IN A {LOOPBACK}",
        f"* IN A {LOOPBACK}",
    ]
    for owner, target in extra.items():
        if owner.endswith("." + zone):
            lines.append(f"{owner}. IN CNAME {target}.")
    return "\n".join(lines) + "\n"


class DnsLab:
    """A running named on loopback. Use as a context manager or call start()/stop()."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir).resolve()
        self.port = 0
        self.key_name = "certfleet-lab"
        self.key_algorithm = "hmac-sha256"
        self.key_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.readonly_key_name = "certfleet-lab-readonly"
        self.readonly_key_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.config_path = self.workdir / "named.conf"
        self.key_file = self.workdir / "tsig.key"
        self.readonly_key_file = self.workdir / "tsig-readonly.key"
        self.log_path = self.workdir / "named.log"
        self._procs: _Processes | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    @property
    def running(self) -> bool:
        return self._procs is not None and all(p.poll() is None for p in self._procs.procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.procs] if self._procs else []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------

    def _write_config(self) -> None:
        d = self.workdir
        for path, name, secret in (
                (self.key_file, self.key_name, self.key_secret),
                (self.readonly_key_file, self.readonly_key_name, self.readonly_key_secret)):
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(f'key "{name}" {{\n  algorithm {self.key_algorithm};\n'
                            f'  secret "{secret}";\n}};\n')
        zones = []
        (d / "root.zone").write_text(ROOT_ZONE)
        zones.append(f'zone "." {{\n  type primary;\n  file "{d}/root.zone";\n}};\n')
        for zone in ZONES:
            zone_file = d / f"{zone}.zone"
            zone_file.write_text(_zone_text(zone, DELEGATED))
            (d / f"{zone}.zone.jnl").unlink(missing_ok=True)  # a fresh start each time
            zones.append(
                f'zone "{zone}" {{\n  type primary;\n  file "{zone_file}";\n'
                f"  update-policy {{ grant {self.key_name} zonesub TXT; }};\n}};\n")
        self.config_path.write_text(
            "options {\n"
            f'  directory "{d}";\n'
            f'  pid-file "{d}/named.pid";\n'
            f'  session-keyfile "{d}/session.key";\n'
            f'  managed-keys-directory "{d}";\n'
            f"  listen-on port {self.port} {{ {LOOPBACK}; }};\n"
            "  listen-on-v6 { none; };\n"
            # Recursion for Pebble's VA (see the module docstring); with the root zone
            # served here it never needs to ask anyone, and could only from 127.0.0.1.
            f"  query-source address {LOOPBACK};\n"
            f"  notify-source {LOOPBACK};\n"
            f"  transfer-source {LOOPBACK};\n"
            "  recursion yes;\n"
            f"  allow-recursion {{ {LOOPBACK}; }};\n"
            "  allow-query { any; };\n"
            "  dnssec-validation no;\n"
            "  notify no;\n"
            "  minimal-responses no;\n"
            "  max-cache-size 16m;\n"
            "};\n"
            "controls { };\n"
            f'include "{self.key_file}";\n'
            f'include "{self.readonly_key_file}";\n'
            + "".join(zones))

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start named and wait until every zone answers over UDP and TCP."""
        if self._procs is not None:
            raise DnsLabError("lab already started")
        named = find_named()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once(named)
                return self
            except DnsLabStartError as exc:
                self.stop()
                if "address in use" not in str(exc).lower() or attempt == START_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self, named: Path) -> None:
        _, (self.port,) = _free_ports(0, 1)
        self._write_config()
        procs = self._procs = _Processes()
        self._finalizer = weakref.finalize(self, procs.stop)
        # -g: foreground, log to stderr; -4: IPv4 only; -n 1: one worker thread.
        argv = [str(named), "-g", "-4", "-n", "1", "-c", str(self.config_path)]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        proc = procs.spawn(argv, env, self.log_path, self.workdir)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise self._start_error(f"named exited with status {proc.returncode}")
            log = self.log_path.read_text(errors="replace")
            if "address in use" in log.lower():
                raise self._start_error("named could not bind its port")
            if all(self._answers(zone, tcp) for zone in ZONES for tcp in (False, True)):
                return
            if time.monotonic() > deadline:
                raise self._start_error(f"no answer for every zone within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)

    def _answers(self, zone: str, tcp: bool) -> bool:
        try:
            response = self._ask(zone, "SOA", tcp=tcp, timeout=0.5)
        except (OSError, dns.exception.DNSException):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.flags & dns.flags.AA)

    def _start_error(self, reason: str) -> DnsLabStartError:
        return DnsLabStartError(f"DNS lab in {self.workdir} failed to start: {reason}\n"
                                f"--- {self.log_path} (tail) ---\n{_tail(self.log_path)}")

    def stop(self) -> None:
        """Stop the named this lab started (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._procs = None

    # -- looking at it -------------------------------------------------------------------

    def _ask(self, name: str, rdtype: str, *, tcp: bool = False,
             timeout: float = QUERY_TIMEOUT) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        if tcp:
            return dns.query.tcp(query, LOOPBACK, timeout=timeout, port=self.port)
        response, _ = dns.query.udp_with_fallback(query, LOOPBACK, timeout=timeout,
                                                  port=self.port)
        return response

    def query(self, name: str, rdtype: str = "TXT") -> list[str]:
        """The records of ``name`` straight from named, sorted; TXT as plain strings.

        Only the RRset of ``name`` itself (a CNAME there is not followed); NXDOMAIN and
        NODATA give ``[]``.
        """
        if self._procs is None:
            raise DnsLabError("lab is not running")
        response = self._ask(name, rdtype)
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DnsLabError(f"{name} {rdtype}: {dns.rcode.to_text(response.rcode())}")
        owner = dns.name.from_text(name)
        wanted = dns.rdatatype.from_text(rdtype)
        out: list[str] = []
        for rrset in response.answer:
            if rrset.name != owner or rrset.rdtype != wanted:
                continue
            for rdata in rrset:
                if wanted == dns.rdatatype.TXT:
                    out.append(b"".join(rdata.strings).decode())
                else:
                    out.append(rdata.to_text())
        return sorted(out)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def info(self) -> dict[str, str]:
        """The lab's coordinates (the secret too: it is a throwaway test key)."""
        return {
            "address": f"{LOOPBACK}:{self.port}",
            "key_name": self.key_name,
            "key_algorithm": self.key_algorithm,
            "key_secret": self.key_secret,
            "key_file": str(self.key_file),
            "zones": ",".join(ZONES),
            "workdir": str(self.workdir),
        }


class PebbleWithDns(PebbleLab):
    """A PebbleLab whose Pebble resolves through ``dns`` (e.g. a DnsLab) instead of its
    pebble-challtestsrv (which still runs, for its management API).

    PebbleLab builds Pebble's command line inside ``_start_once``; rather than copying
    that, the process list it creates gets a ``spawn`` that rewrites Pebble's
    ``-dnsserver`` value. (A ``dns_server`` argument to PebbleLab would make this moot.)
    """

    def __init__(self, workdir: Path, dns: DnsLab | tuple[str, int], **kwargs: Any) -> None:
        self._dns = dns
        super().__init__(workdir, **kwargs)

    @property
    def dns_server(self) -> str:
        host, port = self._dns.address if isinstance(self._dns, DnsLab) else self._dns
        return f"{host}:{port}"

    @property
    def _procs(self) -> _Processes | None:
        procs: _Processes | None = self.__dict__.get("_dns_procs")
        return procs

    @_procs.setter
    def _procs(self, procs: _Processes | None) -> None:
        if procs is not None:
            spawn = procs.spawn

            def spawn_with_dns(argv: list[str], *args: Any, **kwargs: Any) -> Any:
                if Path(argv[0]).name == "pebble" and "-dnsserver" in argv:
                    argv = list(argv)
                    argv[argv.index("-dnsserver") + 1] = self.dns_server
                return spawn(argv, *args, **kwargs)

            procs.spawn = spawn_with_dns  # type: ignore[method-assign]
        self.__dict__["_dns_procs"] = procs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local BIND 9 for dns-01 tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start a lab and run until SIGTERM/SIGINT")
    serve.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    with _stop_signals() as stop_requested:
        try:
            lab = DnsLab(args.workdir).start()
        except (DnsLabUnavailable, DnsLabError) as exc:
            print(f"dns_lab: {exc}", file=sys.stderr)
            return 1
        try:
            for key, value in lab.info().items():
                print(f"{key}={value}")
            sys.stdout.flush()
            while not stop_requested.wait(0.5):
                if not lab.running:
                    print("dns_lab: named exited unexpectedly", file=sys.stderr)
                    return 1
        finally:
            lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
