"""Where the CA may send certfleet: only to the origin of its directory URL.

Touches nothing. Every URL the CA hands out is followed with certfleet's own requests: the
directory's resources, the order, authorization, challenge, finalize and certificate URLs,
Location and Link headers, the account URL, renewalInfo. Signed POSTs carry the account's
signature and a CSR, and what comes back is echoed in errors. A CA (or anything that
speaks for it under a private ``ca_bundle``) that names an internal service would have
certfleet reach it for them. So a CA's URL is followed only if it is at the directory
URL's origin (RFC 6454: scheme, host, port), and refused before any connection otherwise.
No CA that certfleet knows of serves ACME resources from two origins.

Origins are compared as the connection is made: ``http11.origin_of`` (the one parse the
socket is opened from) gives the scheme and host in lower case and the default port
filled in, so ``https://CA.example/x`` and ``https://ca.example:443/y`` are one origin;
no two URLs this calls one origin lead to two places.
"""

from __future__ import annotations

from .errors import ProtocolError, safe_text
from .http11 import HttpError, Origin, origin_of


def origin(url: str) -> Origin | None:
    """(scheme, host, port) of ``url``, normalised; None if it is no http(s) URL at all."""
    try:
        return origin_of(url)[0]
    except HttpError:
        return None


def shown(where: Origin) -> str:
    """``where`` as it is read: ``https://host:port`` (an IPv6 address in brackets)."""
    scheme, host, port = where
    return safe_text(f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}")


def require(url: str, directory_url: str) -> None:
    """``ProtocolError`` unless ``url`` is at the origin of the CA's ``directory_url``."""
    ca = origin(directory_url)
    if ca is None or origin(url) != ca:
        where = shown(ca) if ca else safe_text(directory_url)
        raise ProtocolError(f"{safe_text(url)}: refused: not at the CA's origin {where} "
                            "(certfleet follows the CA's URLs to that origin only)")
