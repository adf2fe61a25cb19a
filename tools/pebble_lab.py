"""A local ACME test CA: Pebble plus pebble-challtestsrv, started and stopped on demand.

Used by the integration tests, the demo and the benchmarks. Standalone on purpose
(stdlib + ``cryptography`` only) so it can run without certfleet being importable.

Everything listens on 127.0.0.1 only, on free ports chosen at start:

* Pebble's ACME API (``directory_url``) and management API (``management_url``),
  both HTTPS with a leaf for ``localhost``/``127.0.0.1`` issued by a throwaway
  TLS CA generated per lab (``ca_bundle``);
* pebble-challtestsrv's DNS server (``dns_address``), which Pebble uses as its
  resolver, and its plain-HTTP management API (``challtestsrv_url``). Its own
  challenge responders are disabled: the code under test answers challenges.
  Unknown names resolve to 127.0.0.1 (A) and to nothing (AAAA), so Pebble
  validates http-01 on ``127.0.0.1:http_port`` and tls-alpn-01 on
  ``127.0.0.1:tls_port``.

Binaries come from ``$CERTFLEET_PEBBLE_BIN_DIR`` or ``<repo>/.cache/pebble/root/usr/bin``
(installed by ``scripts/install-test-components``).

CLI: ``python tools/pebble_lab.py serve --workdir DIR`` prints ``KEY=VALUE`` lines
(``directory_url``, ``ca_bundle``, ``http_port``, ...) and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "BIN_DIR_ENV",
    "DEFAULT_PEBBLE_CONFIG",
    "CertificateNotFound",
    "LabError",
    "LabStartError",
    "LabUnavailable",
    "PebbleLab",
    "find_binaries",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR_ENV = "CERTFLEET_PEBBLE_BIN_DIR"
DEFAULT_BIN_DIR = REPO_ROOT / ".cache" / "pebble" / "root" / "usr" / "bin"
INSTALL_SCRIPT = "scripts/install-test-components"

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
HTTP_TIMEOUT = 10.0
START_ATTEMPTS = 3  # free ports are chosen then released: retry if one was taken meanwhile

#: Defaults for the "pebble" section of the config; ``PebbleLab(config=...)`` is merged
#: over this (shallowly, key by key). Addresses, ports and the TLS files are filled in
#: by the lab and can be overridden too (at your own risk).
DEFAULT_PEBBLE_CONFIG: dict[str, Any] = {
    "ocspResponderURL": "",
    "externalAccountBindingRequired": False,
    "domainBlocklist": ["blocked-domain.example"],
    "retryAfter": {"authz": 1, "order": 1},
    "profiles": {
        "default": {
            "description": "The default profile (90 days)",
            "validityPeriod": 7776000,
        },
        "shortlived": {
            "description": "A short-lived certificate profile (6 days)",
            "validityPeriod": 518400,
        },
    },
}

DEFAULT_ENV: dict[str, str] = {"PEBBLE_VA_NOSLEEP": "1"}


class LabError(Exception):
    """Base class of the errors raised by this module (except LabUnavailable)."""


class LabUnavailable(Exception):
    """The Pebble binaries are not installed."""


class LabStartError(LabError):
    """Pebble or pebble-challtestsrv did not come up; the message has the log tails."""


class CertificateNotFound(LabError, LookupError):
    """Pebble knows no certificate with the given serial (in this run)."""


def find_binaries() -> tuple[Path, Path]:
    """Return the paths of ``pebble`` and ``pebble-challtestsrv``.

    Looks in ``$CERTFLEET_PEBBLE_BIN_DIR`` if set, else in the repo's
    ``.cache/pebble/root/usr/bin``. Raises LabUnavailable if either is missing.
    """
    env_dir = os.environ.get(BIN_DIR_ENV)
    bin_dir = Path(env_dir) if env_dir else DEFAULT_BIN_DIR
    found: list[Path] = []
    missing: list[str] = []
    for name in ("pebble", "pebble-challtestsrv"):
        path = bin_dir / name
        if path.is_file() and os.access(path, os.X_OK):
            found.append(path)
        else:
            missing.append(str(path))
    if missing:
        origin = f"${BIN_DIR_ENV}" if env_dir else "the repo cache"
        raise LabUnavailable(
            f"Pebble test CA not available: missing {', '.join(missing)} (from {origin}). "
            f"Run {INSTALL_SCRIPT} to install Pebble >= 2.10 into .cache/pebble/, "
            f"or point ${BIN_DIR_ENV} at a directory holding pebble and pebble-challtestsrv."
        )
    return found[0], found[1]


# --------------------------------------------------------------------------- TLS material


def _write_tls_material(workdir: Path) -> tuple[Path, Path, Path]:
    """Create a throwaway ECDSA P-256 CA and a leaf for localhost/127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    not_before = now - dt.timedelta(minutes=5)
    not_after = now + dt.timedelta(days=7)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certfleet test lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, "certfleet pebble-lab TLS CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_path = workdir / "tls-ca.pem"
    cert_path = workdir / "tls-cert.pem"
    key_path = workdir / "tls-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    return ca_path, cert_path, key_path


# --------------------------------------------------------------------------- ports


def _free_ports(tcp: int, tcp_udp: int) -> tuple[list[int], list[int]]:
    """Pick distinct free loopback ports: ``tcp`` TCP-only ones and ``tcp_udp`` ones free
    for both TCP and UDP (for DNS). All sockets are held until every port is chosen."""
    held: list[socket.socket] = []
    try:
        tcp_ports: list[int] = []
        while len(tcp_ports) < tcp:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind((LOOPBACK, 0))
            tcp_ports.append(s.getsockname()[1])
        both: list[int] = []
        while len(both) < tcp_udp:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(t)
            t.bind((LOOPBACK, 0))
            port = t.getsockname()[1]
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(u)
            try:
                u.bind((LOOPBACK, port))
            except OSError:
                continue
            both.append(port)
        return tcp_ports, both
    finally:
        for s in held:
            s.close()


# --------------------------------------------------------------------------- processes


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Child side: get SIGTERM when the parent dies (Linux), so nothing outlives a
    killed test run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


class _Processes:
    """The processes of one lab run. Kept apart from PebbleLab so a weakref finalizer
    (also run at interpreter exit) can stop them without keeping the lab alive."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: dict[int, str] = {}
        self.logs: list[IO[bytes]] = []
        self._lock = threading.Lock()

    def spawn(
        self, argv: list[str], env: Mapping[str, str], log_path: Path, cwd: Path
    ) -> subprocess.Popen[bytes]:
        log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.logs.append(log)
        use_pdeathsig = sys.platform.startswith("linux") and (
            threading.current_thread() is threading.main_thread()
        )
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C in the terminal goes to us, not to them
            preexec_fn=_set_pdeathsig if use_pdeathsig else None,  # noqa: PLW1509
        )
        self.procs.append(proc)
        self.names[proc.pid] = Path(argv[0]).name
        return proc

    def stop(self) -> None:
        with self._lock:
            procs, self.procs = self.procs, []
            logs, self.logs = self.logs, []
        # Pebble first (it uses challtestsrv), then challtestsrv.
        for proc in reversed(procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in reversed(procs):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"    (cannot read {path}: {exc})"
    tail = text.splitlines()[-lines:]
    if not tail:
        return "    (empty)"
    return "\n".join("    " + line for line in tail)


# --------------------------------------------------------------------------- the lab


class PebbleLab:
    """A running Pebble + pebble-challtestsrv pair on loopback. Use as a context manager
    or call start()/stop(). ``workdir`` receives the TLS files, the config and the logs.

    ``env`` adds environment variables for Pebble (PEBBLE_VA_NOSLEEP=1 by default; e.g.
    PEBBLE_WFE_NONCEREJECT, PEBBLE_AUTHZREUSE, PEBBLE_VA_ALWAYS_VALID, PEBBLE_CHAIN_LENGTH,
    PEBBLE_ALTERNATE_ROOTS). PEBBLE_* variables of the calling environment are not passed
    on. ``config`` is merged key by key over DEFAULT_PEBBLE_CONFIG (the "pebble" section).
    ``strict`` runs Pebble with ``-strict``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
        strict: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.env: dict[str, str] = {**DEFAULT_ENV, **(env or {})}
        self.config_overrides: dict[str, Any] = dict(config or {})
        self.strict = strict

        self.ca_bundle: Path = self.workdir / "tls-ca.pem"
        self.tls_cert: Path = self.workdir / "tls-cert.pem"
        self.tls_key: Path = self.workdir / "tls-key.pem"
        self.config_path: Path = self.workdir / "pebble-config.json"
        self.pebble_log: Path = self.workdir / "pebble.log"
        self.challtestsrv_log: Path = self.workdir / "challtestsrv.log"

        self.acme_port = 0
        self.management_port = 0
        self.http_port = 0
        self.tls_port = 0
        self.dns_port = 0
        self.challtestsrv_port = 0
        self.pebble_config: dict[str, Any] = {}

        self._procs: _Processes | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._ssl_context: ssl.SSLContext | None = None

    # -- addresses ---------------------------------------------------------------------

    @property
    def directory_url(self) -> str:
        return f"https://{LOOPBACK}:{self.acme_port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://{LOOPBACK}:{self.management_port}"

    @property
    def challtestsrv_url(self) -> str:
        return f"http://{LOOPBACK}:{self.challtestsrv_port}"

    @property
    def dns_address(self) -> tuple[str, int]:
        return (LOOPBACK, self.dns_port)

    @property
    def running(self) -> bool:
        return self._procs is not None and all(p.poll() is None for p in self._procs.procs)

    @property
    def pids(self) -> list[int]:
        """PIDs of the processes this lab started (empty when stopped)."""
        return [p.pid for p in self._procs.procs] if self._procs else []

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start challtestsrv and Pebble and wait until the ACME directory answers."""
        if self._procs is not None:
            raise LabError("lab already started")
        pebble_bin, challtestsrv_bin = find_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        _write_tls_material(self.workdir)
        self._ssl_context = ssl.create_default_context(cafile=str(self.ca_bundle))

        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once(pebble_bin, challtestsrv_bin)
                return self
            except LabStartError as exc:
                self.stop()
                in_use = "address already in use" in str(exc).lower()
                if not in_use or attempt == START_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self, pebble_bin: Path, challtestsrv_bin: Path) -> None:
        tcp_ports, (self.dns_port,) = _free_ports(5, 1)
        self.acme_port, self.management_port, self.http_port, self.tls_port = tcp_ports[:4]
        self.challtestsrv_port = tcp_ports[4]

        self.pebble_config = _merge_config(
            {
                "listenAddress": f"{LOOPBACK}:{self.acme_port}",
                "managementListenAddress": f"{LOOPBACK}:{self.management_port}",
                "certificate": str(self.tls_cert),
                "privateKey": str(self.tls_key),
                "httpPort": self.http_port,
                "tlsPort": self.tls_port,
                **DEFAULT_PEBBLE_CONFIG,
            },
            self.config_overrides,
        )
        self.config_path.write_text(json.dumps({"pebble": self.pebble_config}, indent=2) + "\n")

        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        procs = self._procs = _Processes()
        self._finalizer = weakref.finalize(self, procs.stop)

        dns = f"{LOOPBACK}:{self.dns_port}"
        challtestsrv = procs.spawn(
            [
                str(challtestsrv_bin),
                "-dnsserver", dns,
                "-management", f"{LOOPBACK}:{self.challtestsrv_port}",
                "-http01", "",
                "-https01", "",
                "-tlsalpn01", "",
                "-doh", "",
                "-defaultIPv4", LOOPBACK,
                "-defaultIPv6", "",
            ],
            base_env,
            self.challtestsrv_log,
            self.workdir,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        self._wait_until(
            "pebble-challtestsrv management API",
            lambda: self._http_ok(self.challtestsrv_url + "/", any_status=True),
            deadline,
        )

        argv = [str(pebble_bin), "-config", str(self.config_path), "-dnsserver", dns]
        if self.strict:
            argv.append("-strict")
        procs.spawn(argv, {**base_env, **self.env}, self.pebble_log, self.workdir)
        self._wait_until(
            "Pebble ACME directory", lambda: self._http_ok(self.directory_url), deadline
        )
        self._wait_until(
            "Pebble management API",
            lambda: self._http_ok(self.management_url + "/roots/0"),
            deadline,
        )
        if challtestsrv.poll() is not None:
            raise self._start_error("pebble-challtestsrv exited during startup")

    def _http_ok(self, url: str, *, any_status: bool = False) -> bool:
        try:
            with self._open(url, timeout=2.0) as resp:
                return bool(200 <= resp.status < 300)
        except urllib.error.HTTPError:
            return any_status
        except (OSError, ssl.SSLError):
            return False

    def _wait_until(self, what: str, probe: Callable[[], bool], deadline: float) -> None:
        assert self._procs is not None
        while True:
            for proc in self._procs.procs:
                if proc.poll() is not None:
                    raise self._start_error(
                        f"{self._procs.names[proc.pid]} exited with status {proc.returncode} "
                        f"while waiting for the {what}"
                    )
            if probe():
                return
            if time.monotonic() > deadline:
                raise self._start_error(
                    f"timed out after {START_TIMEOUT:.0f} s waiting for the {what}"
                )
            time.sleep(0.05)

    def _start_error(self, reason: str) -> LabStartError:
        return LabStartError(
            f"Pebble lab in {self.workdir} failed to start: {reason}\n"
            f"--- {self.pebble_log} (tail) ---\n{_tail(self.pebble_log)}\n"
            f"--- {self.challtestsrv_log} (tail) ---\n{_tail(self.challtestsrv_log)}"
        )

    def stop(self) -> None:
        """Stop the processes this lab started (SIGTERM, then SIGKILL after 5 s).
        Idempotent."""
        if self._finalizer is not None:
            self._finalizer()  # runs _Processes.stop at most once
        self._finalizer = None
        self._procs = None

    # -- HTTP helpers ------------------------------------------------------------------

    def _open(self, url: str, data: bytes | None = None, *, timeout: float = HTTP_TIMEOUT) -> Any:
        headers = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(url, data=data, headers=headers)
        ctx = self._ssl_context if url.startswith("https:") else None
        # urllib's default opener honours *_proxy env vars; the lab is loopback-only.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
        )
        return opener.open(req, timeout=timeout)

    def _request(self, url: str, payload: Any = None) -> tuple[int, bytes]:
        if self._procs is None or self._ssl_context is None:
            raise LabError("lab is not running")
        data = None if payload is None else json.dumps(payload).encode()
        try:
            with self._open(url, data) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return int(exc.code), bytes(body)

    def _post_ok(self, url: str, payload: Any) -> None:
        status, body = self._request(url, payload)
        if not 200 <= status < 300:
            raise LabError(
                f"POST {url} {json.dumps(payload)[:200]} -> HTTP {status}: "
                f"{body.decode(errors='replace')[:500]}"
            )

    def _get_ok(self, url: str) -> bytes:
        status, body = self._request(url)
        if status != 200:
            raise LabError(f"GET {url} -> HTTP {status}: {body.decode(errors='replace')[:500]}")
        return body

    # -- pebble-challtestsrv (mock DNS) ------------------------------------------------

    def add_a(self, host: str, ip: str | list[str]) -> None:
        """Answer A queries for ``host`` with ``ip`` (one address or a list)."""
        addresses = [ip] if isinstance(ip, str) else list(ip)
        self._post_ok(self.challtestsrv_url + "/add-a", {"host": host, "addresses": addresses})

    def clear_a(self, host: str) -> None:
        self._post_ok(self.challtestsrv_url + "/clear-a", {"host": host})

    def set_default_ipv4(self, ip: str) -> None:
        """A-record answer for names without an explicit mock ("" for none)."""
        self._post_ok(self.challtestsrv_url + "/set-default-ipv4", {"ip": ip})

    def add_txt(self, host: str, value: str) -> None:
        """Add a TXT record, e.g. ``add_txt("_acme-challenge.example.com", digest)``."""
        self._post_ok(self.challtestsrv_url + "/set-txt", {"host": host, "value": value})

    def clear_txt(self, host: str) -> None:
        self._post_ok(self.challtestsrv_url + "/clear-txt", {"host": host})

    # -- Pebble management API ---------------------------------------------------------

    def cert_status(self, serial: int) -> dict[str, Any]:
        """Pebble's view of a certificate it issued, as parsed JSON, e.g.
        ``{"Status": "Valid", "Serial": "21fe0843f47890f0", "Certificate": "<PEM leaf>"}``;
        once revoked ``"Status": "Revoked"`` plus ``"RevokedAt"`` (Go's time format,
        ``"2026-11-28 04:48:42.60072939 +0000 UTC"``, not RFC 3339) and ``"Reason"`` (an
        int; absent when the reason was 0/unspecified).
        Raises CertificateNotFound for a serial Pebble did not issue in this run."""
        url = f"{self.management_url}/cert-status-by-serial/{serial:x}"
        status, body = self._request(url)
        if status == 404:
            raise CertificateNotFound(
                f"Pebble has no certificate with serial {serial:#x} "
                f"(GET {url} -> 404: {body.decode(errors='replace').strip()[:300]})"
            )
        if status != 200:
            raise LabError(f"GET {url} -> HTTP {status}: {body.decode(errors='replace')[:500]}")
        result: dict[str, Any] = json.loads(body)
        return result

    def roots_pem(self, i: int = 0) -> bytes:
        """PEM of Pebble's issuance root ``i`` (regenerated every Pebble start)."""
        return self._get_ok(f"{self.management_url}/roots/{i}")

    def intermediates_pem(self, i: int = 0) -> bytes:
        return self._get_ok(f"{self.management_url}/intermediates/{i}")

    def set_renewal_info(
        self,
        certificate: bytes | str | x509.Certificate,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        explanation_url: str | None = None,
        ari_response: str | Mapping[str, Any] | None = None,
    ) -> None:
        """Override the ARI renewalInfo Pebble serves for ``certificate`` (a leaf it
        issued in this run, PEM or x509.Certificate). Give either the suggested window
        ``start``/``end`` (aware datetimes), or a complete ``ari_response`` (served back
        verbatim, so it may be deliberately malformed)."""
        if isinstance(certificate, x509.Certificate):
            pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        elif isinstance(certificate, bytes):
            pem = certificate.decode()
        else:
            pem = certificate
        if ari_response is None:
            if start is None or end is None:
                raise ValueError("give start and end, or ari_response")
            info: dict[str, Any] = {
                "suggestedWindow": {"start": _rfc3339(start), "end": _rfc3339(end)}
            }
            if explanation_url is not None:
                info["explanationURL"] = explanation_url
            ari_response = info
        elif start is not None or end is not None or explanation_url is not None:
            raise ValueError("ari_response excludes start, end and explanation_url")
        text = ari_response if isinstance(ari_response, str) else json.dumps(ari_response)
        self._post_ok(
            self.management_url + "/set-renewal-info/",
            {"Certificate": pem, "ARIResponse": text},
        )

    # -- logs --------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything Pebble has logged so far."""
        try:
            return self.pebble_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def challtestsrv_log_text(self) -> str:
        try:
            return self.challtestsrv_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def info(self) -> dict[str, str]:
        """The lab's coordinates as strings (what the CLI prints)."""
        return {
            "directory_url": self.directory_url,
            "ca_bundle": str(self.ca_bundle),
            "http_port": str(self.http_port),
            "tls_port": str(self.tls_port),
            "management_url": self.management_url,
            "challtestsrv_url": self.challtestsrv_url,
            "dns_address": f"{self.dns_address[0]}:{self.dns_address[1]}",
            "workdir": str(self.workdir),
        }


def _merge_config(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow merge. Pebble 2.10 ignores the old top-level ``certificateValidityPeriod``
    (validity comes from the profiles), so when it is given without ``profiles`` it is
    applied to the "default" profile, keeping its old meaning."""
    merged = {**base, **overrides}
    validity = overrides.get("certificateValidityPeriod")
    if validity is not None and "profiles" not in overrides:
        profiles = {name: dict(p) for name, p in base.get("profiles", {}).items()}
        profiles.setdefault("default", {"description": "The default profile"})
        profiles["default"]["validityPeriod"] = validity
        merged["profiles"] = profiles
    copied: dict[str, Any] = json.loads(json.dumps(merged))  # deep copy; must be JSON-able
    return copied


def _rfc3339(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: give an aware one (e.g. UTC)")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- CLI


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    event = threading.Event()

    def handler(signum: int, frame: object) -> None:
        event.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield event
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local Pebble test CA.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start a lab and run until SIGTERM/SIGINT")
    serve.add_argument("--workdir", type=Path, required=True)
    serve.add_argument("--no-strict", action="store_true", help="run Pebble without -strict")
    serve.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra Pebble env"
    )
    args = parser.parse_args(argv)

    env = dict(item.split("=", 1) for item in args.env)
    with _stop_signals() as stop_requested:
        try:
            lab = PebbleLab(args.workdir, env=env, strict=not args.no_strict).start()
        except (LabUnavailable, LabError) as exc:
            print(f"pebble_lab: {exc}", file=sys.stderr)
            return 1
        try:
            for key, value in lab.info().items():
                print(f"{key}={value}")
            sys.stdout.flush()
            while not stop_requested.wait(0.5):
                if not lab.running:
                    print("pebble_lab: a lab process exited unexpectedly", file=sys.stderr)
                    return 1
        finally:
            lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
