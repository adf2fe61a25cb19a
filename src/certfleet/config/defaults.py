"""The built-in defaults every command shares, and the CA presets. Touches nothing.

Each default exists here and nowhere else: the configuration falls back to these, the
command line's help text quotes them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ..ratelimits import CaLimits

DEFAULT_CONFIG = Path("/etc/certfleet/certfleet.toml")
DEFAULT_STATE_DIR = Path("/var/lib/certfleet")
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

# Public ACME CAs by the directory URLs they document. ZeroSSL and Google need EAB.
PRESETS = {
    "letsencrypt": LETSENCRYPT,
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "google": "https://dv.acme-v02.api.pki.goog/directory",
    "google-staging": "https://dv.acme-v02.test-api.pki.goog/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "sslcom-rsa": "https://acme.ssl.com/sslcom-dv-rsa",
    "sslcom-ecc": "https://acme.ssl.com/sslcom-dv-ecc",
    "actalis": "https://acme-api.actalis.com/acme/directory",
}

# What each CA allows (``ratelimits``). Let's Encrypt documents 250 requests/s per address
# on most endpoints (20/s on newNonce, which a run asks once) and 300 new orders per
# account per 3 hours (1,500 on staging); certfleet keeps to 200/s. The other public CAs
# document no request rate: 20/s keeps well clear of any. A private CA (a directory URL
# of one's own) gets 200/s; ``[ca] request_rate`` and ``new_order_limit`` change any.
CA_LIMITS = {
    LETSENCRYPT: CaLimits(200.0, 300, timedelta(hours=3)),
    PRESETS["letsencrypt-staging"]: CaLimits(200.0, 1500, timedelta(hours=3)),
    **{PRESETS[name]: CaLimits(20.0) for name in
       ("google", "google-staging", "zerossl", "sslcom-rsa", "sslcom-ecc", "actalis")},
}
PRIVATE_CA_LIMITS = CaLimits(200.0)

# Orders in flight at once, at most: the request rate is what paces a run; this only
# bounds memory and open challenges.
CONCURRENCY = 500
MAX_CONCURRENCY = 10_000

# Environment variables, each the twin of a command-line option (which wins over it).
ENV_CONFIG = "CERTFLEET_CONFIG"
ENV_STATE_DIR = "CERTFLEET_STATE_DIR"
ENV_DIRECTORY = "CERTFLEET_DIRECTORY"
ENV_CA_BUNDLE = "CERTFLEET_CA_BUNDLE"
