"""What the operator asked for, as plain values: certificates, targets, hosts, the whole job.

Touches nothing. ``config.py`` builds these from ``certfleet.toml`` and the domains file;
``fleet.py`` and ``deploy/`` consume them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from functools import cached_property
from pathlib import Path

from .keytypes import KeyType
from .protocol.frozen import frozen
from .ratelimits import CaLimits

PEM_NAMES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")


@frozen
class Target:
    """Where a certificate's files go: ``[user@]host:/dir`` over SSH, or ``/dir`` locally."""

    path: str                 # absolute, normalized, no '..'
    host: str | None = None   # None for a local target; as written (an ssh_config alias, a
                              # name, an IPv4 address, or an IPv6 address without brackets)
    user: str | None = None

    @property
    def is_local(self) -> bool:
        return self.host is None

    @property
    def host_label(self) -> str:
        """``[user@]host`` as written (IPv6 in brackets); '' for a local target."""
        if self.host is None:
            return ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    @property
    def key(self) -> str:
        """A stable identifier, used for deploy state and in messages."""
        return f"{self.host_label}:{self.path}" if self.host is not None else self.path

    @property
    def host_key(self) -> str:
        """The host part, for per-host settings and 'reload once per host' ('' is local)."""
        return self.host or ""


@frozen
class TlsProbe:
    """After reload, a TLS handshake must present the serial just deployed."""

    port: int = 443
    address: str | None = None  # default: the target's host (local targets: 127.0.0.1)


@frozen
class HostSettings:
    """Per-host deploy settings (``[hosts."NAME"]`` in certfleet.toml, or ``[hosts.default]``)."""

    user: str | None = None
    port: int | None = None
    identity: Path | None = None
    reload: tuple[str, ...] = ()          # argv, never a shell string
    files: Mapping[str, str] = field(default_factory=dict)  # "fullchain.pem" -> "site.crt"
    owner: str | None = None
    group: str | None = None
    mode: int = 0o644                     # cert, chain, fullchain
    key_mode: int = 0o600                 # privkey
    dir_mode: int = 0o755                 # a certificate's own directory, when created
    probe: TlsProbe | None = None
    trust_target_dir: bool = False        # skip the owner/mode/symlink checks of target dirs
    allow_group_writable: bool = False    # accept target dirs any group may write


@frozen
class CertSpec:
    """One certificate the operator wants: its names, key, challenge and targets."""

    names: tuple[str, ...]               # normalized; names[0] names the certificate
    targets: tuple[Target, ...] = ()
    key_type: KeyType = KeyType.EC256
    challenge: str = "http-01"
    reuse_key: bool = False
    profile: str | None = None           # the CA's certificate profile (directory meta.profiles)
    preferred_chain: str | None = None   # common name of the root the chain should lead to
    source: str = ""                     # "domains.txt:12", for messages
    variant: str | None = None           # a second key type of the same certificate
    ca: str | None = None                # directory URL, when not the job's
    fallback: tuple[str, ...] | None = None  # CAs to try when this one fails; None: the job's
    csr: bytes | None = field(default=None, repr=False)  # the operator's own CSR (DER): no key

    @property
    def key_label(self) -> str:
        """What the stored version's ``key_type`` must say: the key type, or ``csr``."""
        return "csr" if self.csr is not None else self.key_type.value

    @cached_property
    def name(self) -> str:
        """The certificate's identity in the store and in messages: its first name, and
        for a further key type of the same names ``NAME+KEYTYPE`` ('+' is never in a name).
        """
        return _cert_name(self.names, self.variant)

    @classmethod
    def like(cls, template: CertSpec, names: tuple[str, ...], targets: tuple[Target, ...],
             source: str) -> CertSpec:
        """``template`` with other names, targets and source: a domains file's lines differ
        in nothing else. Built without the generated ``__init__``, whose one
        ``object.__setattr__`` per field is most of the cost of reading 100,000 lines."""
        spec = object.__new__(cls)
        fields = spec.__dict__
        fields.update(template.__dict__, names=names, targets=targets, source=source)
        # The template's cached name is not this one's: this one's, as ``name`` makes it
        # (set now: the first ``name`` of each spec would otherwise take a lock).
        fields["name"] = _cert_name(names, fields["variant"])
        return spec


def _cert_name(names: tuple[str, ...], variant: str | None) -> str:
    """A certificate's name (``CertSpec.name``)."""
    return f"{names[0]}+{variant}" if variant else names[0]


@frozen
class CertDefaults:
    """How certificates are issued unless their own ``[certs."NAME"]`` section says otherwise."""

    key_type: KeyType = KeyType.EC256
    challenge: str = "http-01"
    reuse_key: bool = False
    profile: str | None = None
    preferred_chain: str | None = None
    more_key_types: tuple[KeyType, ...] = ()  # the same names also with these keys
    ca: str | None = None                     # this certificate's CA, if not [ca]'s
    fallback: tuple[str, ...] | None = None   # CAs to try next; None: [ca] fallback


HTTP_MODES = ("webroot", "listen", "serve", "stateless")


@frozen
class Challenges:
    """How challenges are answered.

    http-01 ``mode``: ``webroot`` (token files for a web server), ``listen`` (certfleet's
    responder inside the run), ``serve`` (token files in the state directory for a separate
    ``certfleet serve``), ``stateless`` (the load balancers answer ``token.thumbprint``).
    """

    webroot: Path | None = None
    http_listen: str | None = None        # "HOST:PORT"
    mode: str | None = None               # one of HTTP_MODES; None: not configured
    serve_listen: str | None = None       # where `certfleet serve` listens
    tls_alpn_listen: str | None = None    # "HOST:PORT" for the tls-alpn-01 responder

    @property
    def http_mode(self) -> str | None:
        if self.mode:
            return self.mode
        if self.webroot:
            return "webroot"
        return "listen" if self.http_listen else None


@frozen
class DnsSettings:
    """dns-01: RFC 2136 updates signed with TSIG, or a hook program (``[dns]``)."""

    method: str = "rfc2136"                 # "rfc2136" | "hook"
    server: str | None = None               # "IP[:PORT]" taking the updates
    tsig_key_name: str | None = None
    tsig_algorithm: str = "hmac-sha256"
    tsig_secret: str | None = field(default=None, repr=False)  # never printed
    nameservers: tuple[str, ...] = ()       # replaces the NS lookup of the propagation check
    ns_port: int = 53
    propagation_timeout: float = 120.0
    hook: tuple[str, ...] = ()              # argv for method = "hook"
    hook_timeout: float = 60.0
    hook_delay: float = 0.0


@frozen
class LoadBalancers:
    """The load balancers in front of the sites, for ``check`` and the run's preflight."""

    addresses: tuple[str, ...] = ()       # "HOST" or "HOST:PORT" ("[v6]:PORT")
    port: int = 80
    preflight: bool = True

    def endpoints(self) -> list[tuple[str, str, int]]:
        """(label, host, port) for each configured load balancer."""
        found = []
        for address in self.addresses:
            host, sep, port = address.rpartition(":")
            if sep and port.isdigit() and (not host.count(":") or host.endswith("]")):
                found.append((address, host.strip("[]"), int(port)))
            else:
                found.append((address, address.strip("[]"), self.port))
        return found


NOTIFY_EVENTS = ("failure", "renewal", "deploy_failure", "expiring")
QUIET_EVENTS = ("failure", "deploy_failure", "expiring")  # what needs a person


@frozen
class NotifySettings:
    """Who hears of a run, and of what (``[notify]``)."""

    hook: tuple[str, ...] = ()                 # argv; the report as JSON on its stdin
    hook_events: tuple[str, ...] = QUIET_EVENTS
    hook_timeout: float = 60.0
    mail: str | None = None                    # "sendmail" | "smtp"
    mail_events: tuple[str, ...] = QUIET_EVENTS
    mail_to: tuple[str, ...] = ()
    mail_from: str | None = None
    mail_timeout: float = 30.0
    sendmail: tuple[str, ...] = ("/usr/sbin/sendmail",)
    smtp_server: str = "127.0.0.1:25"
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)  # secret: never printed
    smtp_ca_bundle: Path | None = None
    expiry_alarm: float = 0.1                  # share of the lifetime left that alarms

    @property
    def configured(self) -> bool:
        return bool(self.hook or self.mail)


@frozen
class StoreSettings:
    """``[store]``: where certificates, state and accounts are kept. ``files`` (the default)
    is the state directory alone; ``postgresql`` shares them between Work hosts
    (docs/shared-store.md), with ``state_dir`` still holding what stays local."""

    backend: str = "files"
    dsn: str | None = None                 # postgresql://user@host:port/database
    password: str | None = field(default=None, repr=False)  # secret: never printed
    ca_file: Path | None = None            # the CA that signed the database's certificate
    key: bytes | None = field(default=None, repr=False)     # encrypts private keys
    lease_seconds: float = 120.0
    holder: str | None = None              # this Work host's name in leases (default: hostname)

    @property
    def shared(self) -> bool:
        return self.backend == "postgresql"


@frozen
class JobConfig:
    """Everything one ``certfleet run`` needs, validated."""

    directory: str
    state_dir: Path
    certs: tuple[CertSpec, ...]
    ca_bundle: Path | None = None
    allow_http: bool = False
    contact: tuple[str, ...] = ()
    account_key_type: KeyType = KeyType.EC256
    challenges: Challenges = field(default_factory=Challenges)
    lb: LoadBalancers = field(default_factory=LoadBalancers)
    dns: DnsSettings | None = None
    concurrency: int = 500               # orders in flight at most (config.defaults)
    ca_limits: Mapping[str, CaLimits] = field(default_factory=dict)  # by directory URL
    renew_fraction: float = 1 / 3
    fallback: tuple[str, ...] = ()        # CAs tried, in order, when issuance fails at the CA
    eab_kid: str | None = None            # external account binding (RFC 8555 §7.3.4)
    eab_hmac_key: str | None = field(default=None, repr=False)  # secret: never printed
    eab_alg: str = "HS256"
    max_clock_skew: float = 300.0         # seconds; 0 turns the comparison off
    domains_file: Path | None = None      # where ``certs`` came from (or would, unread)
    hosts: Mapping[str, HostSettings] = field(default_factory=dict)
    ssh_config: tuple[Path, ...] = ()
    known_hosts: Path | None = None
    defaults: CertDefaults = field(default_factory=CertDefaults)
    notify: NotifySettings = field(default_factory=NotifySettings)
    metrics_textfile: Path | None = None
    cert_settings: Mapping[str, CertDefaults] = field(default_factory=dict)  # [certs."NAME"]
    store: StoreSettings = field(default_factory=StoreSettings)

    def cas(self, spec: CertSpec) -> tuple[str, ...]:
        """The CAs to try for ``spec``, in order: its own (or the job's), then fallbacks."""
        chain = (spec.ca or self.directory,
                 *(spec.fallback if spec.fallback is not None else self.fallback))
        return tuple(dict.fromkeys(chain))

    def limits(self, url: str) -> CaLimits | None:
        """What the CA at ``url`` allows (set for every CA the job names)."""
        return self.ca_limits.get(url)

    def host(self, target: Target) -> HostSettings:
        """Settings for ``target``'s host: its own section, else ``default``, else built-in."""
        return (self.hosts.get(target.host_key.lower()) or self.hosts.get("default")
                or HostSettings())
