"""The nginx snippets for the seed's topology, filled from the configuration. Touches nothing.

Proxy mode: each load balancer sends ``/.well-known/acme-challenge/`` to the Work host,
where ``certfleet serve`` (or a web server over the webroot) answers. Stateless mode: the
load balancers answer ``token.thumbprint`` themselves, so the Work host needs no inbound
path; the regex admits only base64url tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .protocol.challenges import HTTP_01_PREFIX


def lb_proxy(work: str) -> str:
    """The load balancer's location for proxy mode; ``work`` is the Work host's HOST:PORT."""
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
    return f"""\
# On the Work host, no web server is needed: run the responder (e.g. from systemd)
#   certfleet serve --listen {work}{f' --config {config}' if config else ''}
"""


def work_webroot(work: str, names: Sequence[str], webroot: Path) -> str:
    """The seed's Work-host nginx server block, for webroot mode."""
    listen = work if ":" in work else f"{work}:80"
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
    return f"""\
# On each load balancer, inside every server block of the sites certfleet manages.
# It answers any base64url token with token.{thumbprint[:8]}... (this account's
# thumbprint); nothing is proxied, the Work host needs no inbound path.
location ~ "^{HTTP_01_PREFIX.replace('.', '[.]')}([-_a-zA-Z0-9]+)$" {{
    default_type text/plain;
    return 200 "$1.{thumbprint}";
}}
"""
