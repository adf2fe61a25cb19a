"""A throwaway PostgreSQL cluster for the shared-store tests: initdb, pg_ctl, a temp dir.

Standalone (stdlib + ``cryptography``). The cluster listens on 127.0.0.1 on a free port,
TLS only (``hostssl``, SCRAM passwords), with a server certificate for ``localhost`` and
``127.0.0.1`` issued by a CA made per lab (``ca_file``), and on a unix socket in its own
directory. PostgreSQL refuses to run as root: as root the cluster belongs to ``nobody``
(``setpriv`` drops to it), in a directory made for it under the system temp dir (a test's
own temp dir is root's 0700 and ``nobody`` could not enter it).

Binaries: ``$CERTFLEET_PG_BIN_DIR`` or the newest ``/usr/lib/postgresql/*/bin`` (the
Debian package ``postgresql``, installed by ``scripts/install-test-components``).
"""

from __future__ import annotations

import datetime as dt
import glob
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BIN_DIR_ENV = "CERTFLEET_PG_BIN_DIR"
SUPERUSER = "certfleet"
DATABASE = "certfleet"


class PgUnavailable(Exception):
    """PostgreSQL's server binaries are not installed."""


def find_bin_dir() -> Path:
    given = os.environ.get(BIN_DIR_ENV)
    candidates = [given] if given else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for folder in reversed(candidates):
        if all(os.access(Path(folder) / b, os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise PgUnavailable("PostgreSQL (initdb, pg_ctl, postgres) not found: run "
                        "scripts/install-test-components (Debian package postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls_files(folder: Path) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key) as PEM."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pg_lab CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), leaf.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class PgLab:
    """A started cluster: ``host``, ``port``, ``ca_file``, ``password``, ``dsn``."""

    def __init__(self, workdir: Path) -> None:
        self.bin_dir = find_bin_dir()
        self.workdir = workdir  # the caller's: the CA file and the password file go here
        self.password = secrets.token_urlsafe(18)
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.root = Path(tempfile.mkdtemp(prefix="certfleet-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.ca_file = workdir / "pg-ca.pem"
        self.password_file = workdir / "pg-password"
        self._user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@localhost:{self.port}/{DATABASE}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if self._user is None:
            return argv
        return ["setpriv", f"--reuid={self._user.pw_uid}", f"--regid={self._user.pw_gid}",
                "--clear-groups", "--", *argv]

    def _run(self, *argv: str) -> None:
        done = subprocess.run(self._as_owner([*argv]), capture_output=True, text=True,
                              cwd=self.root, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stdout}"
                               f"{done.stderr}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir()
        ca_pem, cert_pem, key_pem = _tls_files(self.root)
        self.ca_file.write_bytes(ca_pem)
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._user is not None:
            for path in (self.root, self.socket_dir, pwfile):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                  "--no-sync", "--locale=C")
        pwfile.unlink()
        for name, data in (("server.crt", cert_pem), ("server.key", key_pem)):
            path = self.data / name
            path.write_bytes(data)
            path.chmod(0o600)
            if self._user is not None:
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        (self.data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.socket_dir}'\n"
                       "ssl = on\nfsync = off\nmax_connections = 200\n"
                       "shared_buffers = 32MB\n")
        self.start_server()
        self.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
        return self

    def start_server(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "60", "start")

    def stop_server(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                  "stop")

    def _psql(self, sql: str, database: str) -> list[str]:
        return self._as_owner([str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v",
                               "ON_ERROR_STOP=1", "-h", str(self.socket_dir), "-p",
                               str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql])

    def psql(self, sql: str, database: str = DATABASE) -> str:
        """Run SQL through the unix socket with psql (for setting up and inspecting)."""
        env = {**os.environ, "PGPASSWORD": self.password}
        done = subprocess.run(self._psql(sql, database), capture_output=True, text=True,
                              env=env, timeout=60, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr}")
        return done.stdout

    def psql_session(self, sql: str, database: str = DATABASE) -> subprocess.Popen[str]:
        """Start SQL in a session of its own and return at once (a lock held meanwhile)."""
        env = {**os.environ, "PGPASSWORD": self.password}
        return subprocess.Popen(self._psql(sql, database), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, cwd=self.root)

    def stop(self) -> None:
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            try:
                self.stop_server("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
