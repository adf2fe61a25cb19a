"""The one place that maps the configuration to a solver for each challenge type.

Touches nothing until a solver is used: ``unusable`` says, without any network or file
access, why a challenge type cannot be answered with this configuration (so ``--dry-run``
and every command can say it before asking a CA); ``make_solver`` builds the solver.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..gcpause import importing
from ..protocol.challenges import DNS_01, HTTP_01, TLS_ALPN_01
from ..spec import JobConfig
from . import Solver

if TYPE_CHECKING:
    from ..store.pg_tokens import DbTokens

NO_HTTP = ("no way to answer http-01: set [challenge] mode, webroot or http_listen in "
           "certfleet.toml, or pass --webroot DIR / --http-listen HOST:PORT")


def unusable(job: JobConfig, challenge: str) -> str | None:
    """Why ``challenge`` cannot be answered as configured, or None if it can."""
    how = job.challenges
    if challenge == HTTP_01:
        mode = how.http_mode
        ready = {"listen": how.http_listen, "webroot": how.webroot, "serve": True,
                 "stateless": True}
        return None if mode is not None and ready.get(mode) else NO_HTTP
    if challenge == DNS_01:
        dns = job.dns
        if dns is None:
            return "dns-01 needs a [dns] section (rfc2136 or hook) in certfleet.toml"
        if dns.method == "rfc2136" and not (dns.server and dns.tsig_key_name
                                            and dns.tsig_secret):
            return "[dns] rfc2136 needs server, tsig_key_name and a TSIG secret"
        if dns.method == "hook" and not dns.hook:
            return "[dns] method = \"hook\" needs hook = [argv]"
        return None
    if challenge == TLS_ALPN_01:
        return None if how.tls_alpn_listen else \
            "tls-alpn-01 needs [challenge] tls_alpn_listen = \"HOST:443\""
    return f"challenge {challenge} is not configured"


def make_solver(job: JobConfig, challenge: str, challenge_dir: Path,
                tokens: DbTokens | None = None) -> Solver:
    """The solver for one challenge type, as configured; ``ConfigError`` if it cannot be.
    ``challenge_dir`` is where ``certfleet serve`` reads tokens (mode ``serve``), or
    ``tokens`` with the shared store (every Work host's ``serve`` reads them there)."""
    if (why := unusable(job, challenge)) is not None:
        raise ConfigError(why)
    how = job.challenges
    if challenge == HTTP_01:
        with importing():  # long-lived objects (gcpause.py)
            from .http_server import HttpServerSolver, parse_listen
            from .token_dir import StatelessSolver, TokenDirSolver
            from .webroot import WebrootSolver

        if how.http_mode == "listen" and how.http_listen:
            return HttpServerSolver(*parse_listen(how.http_listen))
        if how.http_mode == "webroot" and how.webroot:
            return WebrootSolver(how.webroot)
        if how.http_mode == "serve" and tokens is not None:
            from ..store.pg_tokens import DbTokenSolver

            return DbTokenSolver(tokens)
        if how.http_mode == "serve":
            return TokenDirSolver(challenge_dir)
        return StatelessSolver()
    if challenge == DNS_01:
        return _dns_solver(job)
    from .http_server import parse_listen
    from .tls_alpn import TlsAlpnSolver

    assert how.tls_alpn_listen is not None
    return TlsAlpnSolver(*parse_listen(how.tls_alpn_listen))


def _dns_solver(job: JobConfig) -> Solver:
    from .dns_server import parse_server

    dns = job.dns
    assert dns is not None
    nameservers = [parse_server(n, dns.ns_port) for n in dns.nameservers] or None
    if dns.method == "hook":
        from .dns_hook import HookSolver

        return HookSolver(dns.hook, timeout=dns.hook_timeout, nameservers=nameservers,
                          delay=dns.hook_delay, propagation_timeout=dns.propagation_timeout)
    from .dns_rfc2136 import RFC2136Solver

    assert dns.server
    assert dns.tsig_key_name
    assert dns.tsig_secret
    return RFC2136Solver(parse_server(dns.server), dns.tsig_key_name, dns.tsig_secret,
                         dns.tsig_algorithm, nameservers=nameservers, ns_port=dns.ns_port,
                         propagation_timeout=dns.propagation_timeout)
