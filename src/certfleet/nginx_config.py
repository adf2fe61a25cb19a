"""The nginx snippets for the seed's topology, filled from the configuration. Touches nothing.

Proxy mode: each load balancer sends ``/.well-known/acme-challenge/`` to the Work host,
where ``certfleet serve`` (or a web server over the webroot) answers. Stateless mode: the
load balancers answer ``token.thumbprint`` themselves, so the Work host needs no inbound
path; the regex admits only base64url tokens.

Every value pasted into the text is checked first: one that could change what the nginx
text means (``;``, braces, quotes, ``$``, ``#``, spaces, line breaks) is refused, never
quoted and hoped for the best.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError, safe_text
from .protocol.challenges import HTTP_01_PREFIX

_WORK = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))"
                   r":([0-9]{1,5})")
_PATH = re.compile(r"/[A-Za-z0-9._/+@%=,-]*")
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")


def checked_work(work: str) -> str:
    """The Work host's ``HOST:PORT`` as the load balancers reach it."""
    found = _WORK.fullmatch(work)
    if not found or not 0 < int(found[1]) < 65536:  # `serve --listen` takes no other
        raise ConfigError(f"nginx-config: Work host {safe_text(work, 80)!r} is not HOST:PORT "
                          "(a name, an IPv4 address or [an IPv6 address], and a port)")
    return work


def checked_path(path: Path | str, what: str) -> str:
    text = str(path)
    if not _PATH.fullmatch(text) or "/../" in f"{text}/":
        raise ConfigError(f"nginx-config: {what} {safe_text(text, 120)!r} cannot go into nginx "
                          "text as it is (only letters, digits and ._/+@%=,- in an absolute "
                          "path)")
    return text


def lb_proxy(work: str | Sequence[str]) -> str:
    """The load balancer's location for proxy mode; ``work`` is the Work host's HOST:PORT,
    or several (Work hosts sharing the store, each running ``serve``): an upstream then
    lists them and a request goes on to the next when one is down or has no answer."""
    if not isinstance(work, str) and len(work) > 1:
        servers = "".join(f"    server {checked_work(w)} max_fails=1 fail_timeout=10s;\n"
                          for w in work)
        return f"""\
# On each load balancer, in the http block: every Work host that runs `certfleet serve`
# (they answer from the shared store, so any of them can).
upstream certfleet_acme {{
{servers}}}
# Inside every server block of the sites certfleet manages:
location ^~ {HTTP_01_PREFIX} {{
    proxy_pass http://certfleet_acme;
    proxy_next_upstream error timeout http_404 http_502 http_503 http_504;
    proxy_set_header Host $host;               # certfleet answers only for the name asked
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_connect_timeout 5s;
}}
"""
    work = checked_work(work if isinstance(work, str) else work[0])
    return f"""\
# On each load balancer, inside every server block of the sites certfleet manages:
location ^~ {HTTP_01_PREFIX} {{
    proxy_pass http://{work};
    proxy_set_header Host $host;               # certfleet answers only for the name asked
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_connect_timeout 5s;
}}
"""


def work_serve(work: str, config: str) -> str:
    work = checked_work(work)
    config = checked_path(config, "configuration path") if config else ""
    return f"""\
# On the Work host, no web server is needed: run the responder (e.g. from systemd)
#   certfleet serve --listen {work}{f' --config {config}' if config else ''}
"""


def work_webroot(work: str, names: Sequence[str], webroot: Path) -> str:
    """The seed's Work-host nginx server block, for webroot mode."""
    listen = checked_work(work) if ":" in work else f"{checked_work(work)}:80"
    webroot = Path(checked_path(webroot, "webroot"))
    server_names = " ".join(n for n in names if not n.startswith("*.")) or "_"
    return f"""\
# On the Work host (nginx serving the webroot certfleet writes tokens into):
server {{
    listen {listen};
    server_name {server_names};
    location ^~ {HTTP_01_PREFIX} {{
        alias {webroot}/;
        default_type text/plain;
        try_files $uri =404;
    }}
    location / {{
        return 404;
    }}
}}
"""


def lb_stateless(thumbprint: str) -> str:
    """The load balancer's location for stateless mode (RFC 8555 §8.3 key authorization)."""
    if not _THUMBPRINT.fullmatch(thumbprint):
        raise ConfigError("nginx-config: the account key's thumbprint is not base64url")
    return f"""\
# On each load balancer, inside every server block of the sites certfleet manages.
# It answers any base64url token with token.{thumbprint[:8]}... (this account's
# thumbprint); nothing is proxied, the Work host needs no inbound path.
location ~ "^{HTTP_01_PREFIX.replace('.', '[.]')}([-_a-zA-Z0-9]+)$" {{
    default_type text/plain;
    return 200 "$1.{thumbprint}";
}}
"""
