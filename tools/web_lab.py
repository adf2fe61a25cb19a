"""Local stand-ins for the seed's web servers ("Web1a", "Web1b"): a real OpenSSH sshd
plus a real nginx serving TLS from deployed certificate files, per loopback address.

Used by the integration tests, the demo and the benchmarks. Standalone on purpose
(stdlib + ``cryptography`` only) so it can run without certfleet being importable.

Each :class:`WebHost` has its own loopback address (``127.0.0.2``, ``127.0.0.3``, ...;
Linux routes all of 127.0.0.0/8 to ``lo``, no configuration needed) and a work
directory holding everything it uses:

* ``sshd`` (``/usr/sbin/sshd -D -e``) on ``address:ssh_port``, public-key only, with its
  own ed25519 host key and its own ``authorized_keys`` file; logins as root (or as any
  local user) run real commands, so ``scp``/``sftp``/``ssh host cmd`` deploy for real;
* ``nginx`` (``daemon off``, master + one worker, ``user root``) on
  ``address:tls_port`` with ``ssl_certificate deploy_dir/fullchain.pem`` and
  ``ssl_certificate_key deploy_dir/privkey.pem``; ``reload_argv()`` makes it re-read them.

System binaries: ``/usr/sbin/sshd``, ``/usr/sbin/nginx``, ``ssh-keygen`` (packages
openssh-server, nginx-light, openssh-client: ``scripts/install-test-components``).
Needs root: sshd wants its privilege-separation directory ``/run/sshd`` (created if
missing) and runs the sessions as the logging-in user; nginx runs with ``user root``.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "NGINX",
    "SSHD",
    "WebHost",
    "WebLabError",
    "WebLabStartError",
    "WebLabUnavailable",
    "client_key",
    "find_binaries",
    "self_signed",
    "write_known_hosts",
    "write_ssh_config",
]

SSHD = Path("/usr/sbin/sshd")
NGINX = Path("/usr/sbin/nginx")
SSH_KEYGEN_NAME = "ssh-keygen"
SSHD_PRIVSEP_DIR = Path("/run/sshd")
INSTALL_SCRIPT = "scripts/install-test-components"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PROBE_TIMEOUT = 2.0
START_ATTEMPTS = 3  # free ports are chosen then released: retry if one was taken meanwhile


class WebLabError(Exception):
    """Base class of the errors raised by this module (except WebLabUnavailable)."""


class WebLabUnavailable(Exception):
    """sshd, nginx or ssh-keygen is not installed."""


class WebLabStartError(WebLabError):
    """sshd or nginx did not come up; the message has the log tails."""


def find_binaries() -> tuple[Path, Path, Path]:
    """Return the paths of ``sshd``, ``nginx`` and ``ssh-keygen``; raise
    WebLabUnavailable naming the missing ones."""
    keygen = shutil.which(SSH_KEYGEN_NAME) or "/usr/bin/ssh-keygen"
    found = (SSHD, NGINX, Path(keygen))
    missing = [str(p) for p in found if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        raise WebLabUnavailable(
            f"web lab not available: missing {', '.join(missing)}. Run {INSTALL_SCRIPT} "
            "(as root) to install openssh-server, openssh-client and nginx-light."
        )
    return found


# --------------------------------------------------------------------------- key material


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def self_signed(
    common_name: str,
    dns_names: Iterable[str] = (),
    *,
    days: int = 30,
    rsa: bool = False,
) -> tuple[x509.Certificate, bytes, bytes]:
    """A throwaway self-signed ECDSA P-256 server certificate.

    Returns ``(certificate, cert_pem, key_pem)``; the key is unencrypted PKCS#8. Write
    them as ``fullchain.pem``/``privkey.pem`` into a host's ``deploy_dir`` to play a
    deployment."""
    now = dt.datetime.now(dt.UTC)
    key: Any = (rsa_keys.generate_private_key(public_exponent=65537, key_size=2048) if rsa
                else ec.generate_private_key(ec.SECP256R1()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    names = list(dns_names)
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert, cert.public_bytes(serialization.Encoding.PEM), key_pem


def client_key(workdir: Path) -> tuple[Path, str]:
    """Generate an ed25519 key pair for the deploying side.

    Writes ``workdir/id_ed25519`` (OpenSSH format, unencrypted, mode 0600) and
    ``workdir/id_ed25519.pub``; returns the private key's path and the public line
    (``ssh-ed25519 AAAA...``, no comment) for :meth:`WebHost.authorize`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public_line = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    path = workdir / "id_ed25519"
    _write_private(path, private)
    path.with_name("id_ed25519.pub").write_text(public_line + " certfleet-web-lab\n")
    return path, public_line


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


def _descendants(pid: int) -> list[int]:
    """PIDs of all live descendants of ``pid`` (from /proc; children first found first).

    sshd's per-connection processes call setsid(), so they are not in the listener's
    process group: walking the parent links is the only way to find exactly them."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if len(fields) >= 2:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] not in ("Z", "X")


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if _alive(p)]
    return left


class _Daemon:
    """One process of a WebHost (sshd's listener or nginx's master), a direct child of
    ours, with the log file its output goes to."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    def stop(self, signals: tuple[tuple[int, float], ...]) -> None:
        """Send each ``(signal, grace seconds)`` in turn until the process and every
        descendant it had are gone; SIGKILL whatever is left. Reaps the child."""
        pid = self.proc.pid
        try:
            if self.proc.poll() is None:
                family = _descendants(pid)
                for sig, grace in signals:
                    _kill(pid, sig)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=grace)
                    if self.proc.poll() is not None:
                        break
                if self.proc.poll() is None:
                    _kill(pid, signal.SIGKILL)
                    self.proc.wait()
                # Connection processes (sshd) / workers (nginx) normally go with their
                # parent; anything they left behind is still exactly ours.
                # nginx's workers are gone with their master; sshd's connection processes
                # (own sessions, reparented when the listener exits) are not: a server
                # going down drops its connections too.
                leftovers = [p for p in family if _alive(p)]
                for child in leftovers:
                    _kill(child, signal.SIGTERM)
                for child in _wait_gone(leftovers, 2.0):
                    _kill(child, signal.SIGKILL)
            else:
                self.proc.wait()
        finally:
            self.log.close()


class _Processes:
    """The daemons of one WebHost. Kept apart from it so a weakref finalizer (also run
    at interpreter exit) can stop them without keeping the host alive."""

    SSHD_SIGNALS: tuple[tuple[int, float], ...] = ((signal.SIGTERM, STOP_TIMEOUT),)
    # nginx: graceful (QUIT), then fast (TERM) shutdown.
    NGINX_SIGNALS: tuple[tuple[int, float], ...] = ((signal.SIGQUIT, 2.0), (signal.SIGTERM, 3.0))

    def __init__(self) -> None:
        self.daemons: dict[str, _Daemon] = {}
        self._lock = threading.Lock()

    def spawn(self, name: str, argv: list[str], log_path: Path, cwd: Path) -> _Daemon:
        with self._lock:
            if name in self.daemons:
                raise WebLabError(f"{name} already running")
        log = open(log_path, "ab")  # noqa: SIM115 - closed in _Daemon.stop()
        use_pdeathsig = sys.platform.startswith("linux") and (
            threading.current_thread() is threading.main_thread()
        )
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                close_fds=True,
                start_new_session=True,  # a Ctrl-C in the terminal goes to us, not to them
                preexec_fn=_set_pdeathsig if use_pdeathsig else None,  # noqa: PLW1509
            )
        except BaseException:
            log.close()
            raise
        daemon = _Daemon(name, proc, log)
        with self._lock:
            self.daemons[name] = daemon
        return daemon

    def get(self, name: str) -> _Daemon | None:
        with self._lock:
            return self.daemons.get(name)

    def stop_one(self, name: str) -> None:
        with self._lock:
            daemon = self.daemons.pop(name, None)
        if daemon is not None:
            daemon.stop(self.NGINX_SIGNALS if name == "nginx" else self.SSHD_SIGNALS)

    def stop(self) -> None:
        for name in ("nginx", "sshd"):
            self.stop_one(name)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"    (cannot read {path}: {exc})"
    tail = text.splitlines()[-lines:]
    if not tail:
        return "    (empty)"
    return "\n".join("    " + line for line in tail)


def _free_port(address: str, exclude: Iterable[int] = ()) -> int:
    skip = set(exclude)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((address, 0))
            port = int(s.getsockname()[1])
        if port not in skip:
            return port


def _quote(value: str | Path) -> str:
    """Double-quote a path for sshd_config / nginx.conf (neither accepts a '"' in it)."""
    text = str(value)
    if '"' in text or "\n" in text:
        raise WebLabError(f"unsupported character in path {text!r}")
    return f'"{text}"'


# --------------------------------------------------------------------------- the host


class WebHost:
    """A running sshd + nginx pair on one loopback ``address``. Use as a context manager
    or call start()/stop(). ``workdir`` receives keys, configs, pid files and logs;
    ``name`` (e.g. "web1a") only labels logs and the nginx default page.

    Ports are chosen at the first start() and kept for the life of the object, so
    stop_sshd()/start_sshd() and rotate_host_key() keep ``ssh_port``."""

    HOST_KEY_NAME = "ssh_host_ed25519_key"

    def __init__(
        self, workdir: Path, address: str, *, name: str, sites: Sequence[str] = (),
        mounts: Mapping[str, Path] | None = None, rsa_too: bool = False,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.address = address
        self.name = name
        # Paths as this host's sshd sessions see them: each is a bind mount, in a mount
        # namespace of its own, of a directory of this host's (so two hosts on one machine
        # can both have /some/where/Certs, each its own). The mount points must exist.
        self.mounts = dict(mounts or {})
        # Each site gets its own TLS server block reading deploy_dir/<site>/{fullchain,
        # privkey}.pem, selected by SNI; the default server reads deploy_dir itself.
        self.sites = tuple(sites)
        # Each site also serves an RSA certificate (fullchain.rsa2048.pem beside the
        # ECDSA one): nginx then shows a client the one its offer suits.
        self.rsa_too = rsa_too

        self.host_key_path: Path = self.workdir / self.HOST_KEY_NAME
        self.sshd_config_path: Path = self.workdir / "sshd_config"
        self.sshd_pid_file: Path = self.workdir / "sshd.pid"
        self.sshd_log: Path = self.workdir / "sshd.log"
        self.authorized_keys: Path = self.workdir / "authorized_keys"

        self.deploy_dir: Path = self.workdir / "certs"
        self.nginx_prefix: Path = self.workdir / "nginx"
        self.nginx_conf: Path = self.nginx_prefix / "nginx.conf"
        self.nginx_pid_file: Path = self.nginx_prefix / "nginx.pid"
        self.nginx_log: Path = self.workdir / "nginx.log"  # error log + stderr
        self.nginx_access_log: Path = self.workdir / "nginx-access.log"

        self.ssh_port = 0
        self.tls_port = 0

        self._procs: _Processes | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # -- coordinates -------------------------------------------------------------------

    @property
    def fullchain_path(self) -> Path:
        return self.deploy_dir / "fullchain.pem"

    @property
    def privkey_path(self) -> Path:
        return self.deploy_dir / "privkey.pem"

    @property
    def host_public_key_line(self) -> str:
        """The current host key as ``ssh-ed25519 AAAA...`` (no comment)."""
        text = self.host_key_path.with_name(self.HOST_KEY_NAME + ".pub").read_text()
        key_type, blob = text.split()[:2]
        return f"{key_type} {blob}"

    def known_hosts_line(self) -> str:
        """``[address]:port ssh-ed25519 AAAA...`` for a known_hosts file."""
        return f"[{self.address}]:{self.ssh_port} {self.host_public_key_line}"

    def reload_argv(self) -> list[str]:
        """The command that makes this host's nginx re-read its config and certificates
        (SIGHUP to the master via the pid file; the reload itself is asynchronous: see
        wait_for_serial)."""
        return [
            str(NGINX),
            "-p", str(self.nginx_prefix) + "/",
            "-c", str(self.nginx_conf),
            "-e", str(self.nginx_log),
            "-s", "reload",
        ]  # fmt: skip

    @property
    def sshd_pid(self) -> int | None:
        """PID of the sshd listener, None while sshd is stopped."""
        daemon = self._procs.get("sshd") if self._procs else None
        return daemon.proc.pid if daemon and daemon.proc.poll() is None else None

    @property
    def nginx_pid(self) -> int | None:
        """PID of the nginx master, None while nginx is stopped."""
        daemon = self._procs.get("nginx") if self._procs else None
        return daemon.proc.pid if daemon and daemon.proc.poll() is None else None

    @property
    def pids(self) -> list[int]:
        """PIDs of every process of this host now: daemons, nginx workers, sshd
        connection processes."""
        result: list[int] = []
        for pid in (self.sshd_pid, self.nginx_pid):
            if pid is not None:
                result += [pid, *_descendants(pid)]
        return result

    @property
    def running(self) -> bool:
        return self.sshd_pid is not None and self.nginx_pid is not None

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
        """Start sshd and nginx and wait until both answer.

        Creates what is missing in ``workdir`` (host key, empty authorized_keys,
        ``deploy_dir`` with a self-signed "placeholder" certificate) and keeps what is
        there, so a stopped host restarts with its host key and deployed files."""
        if self._procs is not None:
            raise WebLabError(f"{self.name}: already started")
        find_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.deploy_dir.mkdir(exist_ok=True)
        self.nginx_prefix.mkdir(exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.nginx_prefix / "temp" / sub).mkdir(parents=True, exist_ok=True)
        for folder in (self.deploy_dir, *(self.site_dir(site) for site in self.sites)):
            folder.mkdir(exist_ok=True)
            if not ((folder / "fullchain.pem").exists() and (folder / "privkey.pem").exists()):
                _, cert_pem, key_pem = self_signed("placeholder", ["placeholder.invalid"])
                (folder / "fullchain.pem").write_bytes(cert_pem)
                _write_private(folder / "privkey.pem", key_pem)
            rsa = folder / "fullchain.rsa2048.pem"
            if self.rsa_too and folder != self.deploy_dir and not rsa.exists():
                _, cert_pem, key_pem = self_signed("placeholder", ["placeholder.invalid"],
                                                   rsa=True)
                rsa.write_bytes(cert_pem)
                _write_private(folder / "privkey.rsa2048.pem", key_pem)
        if not self.host_key_path.exists():
            self._generate_host_key()
        if not self.authorized_keys.exists():
            _write_private(self.authorized_keys, b"")

        procs = self._procs = _Processes()
        self._finalizer = weakref.finalize(self, procs.stop)
        fixed_ports = self.ssh_port != 0
        try:
            for attempt in range(1, START_ATTEMPTS + 1):
                if not fixed_ports:
                    self.ssh_port = _free_port(self.address)
                    self.tls_port = _free_port(self.address, exclude=[self.ssh_port])
                try:
                    self._start_sshd()
                    self._start_nginx()
                    return self
                except WebLabStartError as exc:
                    procs.stop()
                    in_use = "already in use" in str(exc).lower()
                    if fixed_ports or not in_use or attempt == START_ATTEMPTS:
                        raise
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop nginx (QUIT, then TERM, then KILL) and sshd (TERM, then KILL), their
        workers and connection processes included. Idempotent."""
        if self._finalizer is not None:
            self._finalizer()  # runs _Processes.stop at most once
        self._finalizer = None
        self._procs = None

    # -- sshd --------------------------------------------------------------------------

    def _generate_host_key(self) -> None:
        keygen = find_binaries()[2]
        for path in (self.host_key_path, self.host_key_path.with_name(self.HOST_KEY_NAME + ".pub")):
            path.unlink(missing_ok=True)
        subprocess.run(
            [
                str(keygen), "-q", "-t", "ed25519", "-N", "",
                "-C", f"{self.name} host key",
                "-f", str(self.host_key_path),
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )  # fmt: skip

    def _write_sshd_config(self) -> None:
        lines = [
            f"# sshd for web-lab host {self.name} (generated by tools/web_lab.py)",
            f"ListenAddress {self.address}:{self.ssh_port}",
            f"HostKey {_quote(self.host_key_path)}",
            f"PidFile {_quote(self.sshd_pid_file)}",
            f"AuthorizedKeysFile {_quote(self.authorized_keys)}",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "PermitUserEnvironment no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
        ]
        self.sshd_config_path.write_text("\n".join(lines) + "\n")

    def _start_sshd(self) -> None:
        assert self._procs is not None
        # sshd refuses to start without its privilege separation directory (root-owned,
        # not group/world-writable); on a systemd machine the ssh unit creates it.
        SSHD_PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._write_sshd_config()
        self.sshd_pid_file.unlink(missing_ok=True)
        with open(self.sshd_log, "ab") as log:
            log.write(f"--- {dt.datetime.now(dt.UTC).isoformat()} starting sshd\n".encode())
        argv = [str(SSHD), "-D", "-e", "-f", str(self.sshd_config_path)]
        if self.mounts:
            binds = " && ".join(
                f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}"
                for target, source in self.mounts.items())
            argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                    f"{binds} && exec {shlex.join(argv)}"]
        self._procs.spawn("sshd", argv, self.sshd_log, self.workdir)
        self._wait_until("sshd", "the SSH banner", self._ssh_banner_ok)

    def _ssh_banner_ok(self) -> bool:
        try:
            with socket.create_connection(
                (self.address, self.ssh_port), timeout=PROBE_TIMEOUT
            ) as sock:
                data = b""
                while b"\n" not in data and len(data) < 256:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    data += chunk
                return data.startswith(b"SSH-2.0-")
        except OSError:
            return False

    def stop_sshd(self) -> None:
        """Stop sshd (and its open connections), as if the server went down. nginx keeps
        running. Idempotent."""
        if self._procs is not None:
            self._procs.stop_one("sshd")

    def start_sshd(self) -> None:
        """Start sshd again on the same port with the current host key."""
        if self._procs is None:
            raise WebLabError(f"{self.name}: not started")
        if self.sshd_pid is not None:
            raise WebLabError(f"{self.name}: sshd already running")
        self._procs.stop_one("sshd")  # reap one that died on its own
        try:
            self._start_sshd()
        except BaseException:
            self._procs.stop_one("sshd")
            raise

    def rotate_host_key(self) -> str:
        """Replace the host key and restart sshd with it (simulates a reinstalled or
        compromised server). Returns the new ``host_public_key_line``."""
        if self._procs is None:
            raise WebLabError(f"{self.name}: not started")
        self.stop_sshd()
        self._generate_host_key()
        self.start_sshd()
        return self.host_public_key_line

    def authorize(self, public_key_line: str) -> None:
        """Allow logins with this public key (``ssh-ed25519 AAAA... [comment]``)."""
        line = public_key_line.strip()
        if not line or "\n" in line:
            raise ValueError(f"expected one public key line, got {public_key_line!r}")
        with open(self.authorized_keys, "a") as fh:
            fh.write(line + "\n")

    # -- nginx -------------------------------------------------------------------------

    def site_dir(self, site: str) -> Path:
        """Where the certificate for ``site`` is deployed on this host."""
        return self.deploy_dir / site

    def _site_blocks(self) -> str:
        blocks = []
        for site in self.sites:
            folder = self.site_dir(site)
            blocks.append(f"""
    server {{{{
        listen {self.address}:{self.tls_port} ssl;
        server_name {site};
        ssl_certificate {_quote(folder / "fullchain.pem")};
        ssl_certificate_key {_quote(folder / "privkey.pem")};{self._rsa_lines(folder)}
        location / {{{{
            return 200 "{self.name} {site}\\n";
        }}}}
    }}}}""".replace("{{", "{").replace("}}", "}"))
        return "".join(blocks)

    def _rsa_lines(self, folder: Path) -> str:
        if not self.rsa_too:
            return ""
        return (f"\n        ssl_certificate {_quote(folder / 'fullchain.rsa2048.pem')};"
                f"\n        ssl_certificate_key {_quote(folder / 'privkey.rsa2048.pem')};")

    def _write_nginx_conf(self) -> None:
        temp = self.nginx_prefix / "temp"
        conf = f"""\
# nginx for web-lab host {self.name} (generated by tools/web_lab.py)
daemon off;
master_process on;
worker_processes 1;
user root root;
pid {_quote(self.nginx_pid_file)};
error_log {_quote(self.nginx_log)} notice;

events {{
    worker_connections 64;
}}

http {{
    access_log {_quote(self.nginx_access_log)};
    client_body_temp_path {_quote(temp / "body")};
    proxy_temp_path {_quote(temp / "proxy")};
    fastcgi_temp_path {_quote(temp / "fastcgi")};
    uwsgi_temp_path {_quote(temp / "uwsgi")};
    scgi_temp_path {_quote(temp / "scgi")};
    default_type text/plain;

    server {{
        listen {self.address}:{self.tls_port} ssl default_server;
        server_name _;
        ssl_certificate {_quote(self.fullchain_path)};
        ssl_certificate_key {_quote(self.privkey_path)};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{
            return 200 "{self.name}\\n";
        }}
    }}{self._site_blocks()}
}}
"""
        self.nginx_conf.write_text(conf)

    def _start_nginx(self) -> None:
        assert self._procs is not None
        self._write_nginx_conf()
        self.nginx_pid_file.unlink(missing_ok=True)
        argv = [
            str(NGINX),
            "-p", str(self.nginx_prefix) + "/",
            "-c", str(self.nginx_conf),
            "-e", str(self.nginx_log),
        ]  # fmt: skip
        self._procs.spawn("nginx", argv, self.nginx_log, self.workdir)
        self._wait_until("nginx", "a TLS handshake", self._tls_ok)

    def _tls_ok(self) -> bool:
        try:
            self.served_certificate("probe.invalid", timeout=PROBE_TIMEOUT)
        except (OSError, ssl.SSLError):
            return False
        return True

    def served_der(self, sni: str, *, timeout: float = 5.0) -> bytes:
        """The certificate (DER) nginx presents now to a TLS client asking for ``sni`` (no
        verification: the deployed certificate is whatever the test put there)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((self.address, self.tls_port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        if not der:
            raise ssl.SSLError(f"{self.address}:{self.tls_port} presented no certificate")
        return der

    def served_certificate(self, sni: str, *, timeout: float = 5.0) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.served_der(sni, timeout=timeout))

    def wait_for_serial(self, sni: str, serial: int, timeout: float = 60.0) -> bool:
        """Wait until nginx serves the certificate with this serial number to ``sni``
        for good; False on timeout (long: a reload under load can take seconds, and only
        a hang comes near it)."""
        return self._wait_served(
            sni, lambda der: x509.load_der_x509_certificate(der).serial_number == serial,
            timeout)

    def wait_for_der(self, sni: str, der: bytes, timeout: float = 60.0) -> bool:
        """``wait_for_serial`` for a certificate given whole (one a parser may refuse)."""
        return self._wait_served(sni, lambda served: served == der, timeout)

    def _wait_served(self, sni: str, wanted: Callable[[bytes], bool], timeout: float) -> bool:
        """An nginx reload is asynchronous: the master starts new workers with the new
        certificate, then tells the old ones to stop, and for a moment both accept
        connections. So this waits for the certificate to be served *and* for the old
        workers to be gone: afterwards served_der() keeps returning it."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ssl.SSLError, ValueError):
                # Seen, no old worker left (that could still serve the old one), seen again.
                if wanted(self.served_der(sni, timeout=PROBE_TIMEOUT)) and \
                        len(self.nginx_worker_pids) <= 1 and \
                        wanted(self.served_der(sni, timeout=PROBE_TIMEOUT)):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def wait_for_one_worker(self, timeout: float = 60.0) -> bool:
        """Wait until a reload's old workers are gone (then every connection reaches the
        new one); False on timeout."""
        deadline = time.monotonic() + timeout
        while len(self.nginx_worker_pids) > 1:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    @property
    def nginx_worker_pids(self) -> list[int]:
        """PIDs of the nginx workers alive now (one normally; two for a moment after a
        reload, the old one shutting down)."""
        master = self.nginx_pid
        return [p for p in _descendants(master) if _alive(p)] if master else []

    # -- helpers -----------------------------------------------------------------------

    def _wait_until(self, name: str, what: str, probe: Callable[[], bool]) -> None:
        assert self._procs is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            daemon = self._procs.get(name)
            if daemon is None or daemon.proc.poll() is not None:
                status = daemon.proc.returncode if daemon else "?"
                raise self._start_error(f"{name} exited with status {status} waiting for {what}")
            if probe():
                return
            if time.monotonic() > deadline:
                raise self._start_error(
                    f"timed out after {START_TIMEOUT:.0f} s waiting for {name}: {what}"
                )
            time.sleep(0.05)

    def _start_error(self, reason: str) -> WebLabStartError:
        return WebLabStartError(
            f"web host {self.name} ({self.address}) in {self.workdir}: {reason}\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the sshd and nginx logs, for failure messages."""
        return (
            f"--- {self.sshd_log} (tail) ---\n{_tail(self.sshd_log, lines)}\n"
            f"--- {self.nginx_log} (tail) ---\n{_tail(self.nginx_log, lines)}"
        )

    def info(self) -> dict[str, str]:
        """The host's coordinates as strings."""
        return {
            "name": self.name,
            "address": self.address,
            "ssh_port": str(self.ssh_port),
            "tls_port": str(self.tls_port),
            "deploy_dir": str(self.deploy_dir),
            "known_hosts_line": self.known_hosts_line(),
            "reload": " ".join(self.reload_argv()),
        }


# --------------------------------------------------------------------------- client side


def trust(workdir: Path, hosts: Mapping[str, WebHost]) -> tuple[Path, Path]:
    """The deploying side's SSH set-up for started ``hosts``: a client key they all accept,
    ``workdir/known_hosts`` with their host keys and ``workdir/ssh_config`` naming each by
    its alias. Returns (ssh_config, known_hosts)."""
    identity, public = client_key(workdir)
    for host in hosts.values():
        host.authorize(public)
    known_hosts, ssh_config = Path(workdir) / "known_hosts", Path(workdir) / "ssh_config"
    write_known_hosts(known_hosts, hosts.values())
    write_ssh_config(ssh_config, hosts, identity, known_hosts)
    return ssh_config, known_hosts


def write_known_hosts(path: Path, hosts: Iterable[WebHost]) -> None:
    """A known_hosts file with the current host key of each host."""
    Path(path).write_text("".join(h.known_hosts_line() + "\n" for h in hosts))


def write_ssh_config(
    path: Path,
    hosts: Mapping[str, WebHost],
    identity: Path,
    known_hosts: Path,
    user: str = "root",
) -> None:
    """An ssh_config (for ``ssh -F path ALIAS``) with one ``Host ALIAS`` block per host.

    Strict host key checking against ``known_hosts`` only (the system-wide known hosts
    are ignored), ``identity`` only, public-key only, no prompts."""
    blocks: list[str] = ["# generated by tools/web_lab.py"]
    for alias, host in hosts.items():
        blocks.append(
            "\n".join(
                [
                    f"Host {alias}",
                    f"    HostName {host.address}",
                    f"    Port {host.ssh_port}",
                    f"    User {user}",
                    f"    IdentityFile {_quote(Path(identity).resolve())}",
                    "    IdentitiesOnly yes",
                    "    IdentityAgent none",
                    f"    UserKnownHostsFile {_quote(Path(known_hosts).resolve())}",
                    "    GlobalKnownHostsFile /dev/null",
                    "    StrictHostKeyChecking yes",
                    "    UpdateHostKeys no",
                    "    CheckHostIP no",
                    "    PreferredAuthentications publickey",
                    "    PasswordAuthentication no",
                    "    KbdInteractiveAuthentication no",
                    "    BatchMode yes",
                    "    ConnectTimeout 5",
                ]
            )
        )
    Path(path).write_text("\n\n".join(blocks) + "\n")
