"""The built-in defaults every command shares, and the CA presets. Touches nothing.

Each default exists here and nowhere else: the configuration falls back to these, the
command line's help text quotes them. Plain strings, and no import: the parser that quotes
them is built for ``certfleet --version`` too.
"""

from __future__ import annotations

DEFAULT_CONFIG = "/etc/certfleet/certfleet.toml"
DEFAULT_STATE_DIR = "/var/lib/certfleet"
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

# Orders in flight at once, at most: the request rate is what paces a run; this only
# bounds memory and open challenges.
CONCURRENCY = 500
MAX_CONCURRENCY = 10_000

# Environment variables, each the twin of a command-line option (which wins over it).
ENV_CONFIG = "CERTFLEET_CONFIG"
ENV_STATE_DIR = "CERTFLEET_STATE_DIR"
ENV_DIRECTORY = "CERTFLEET_DIRECTORY"
ENV_CA_BUNDLE = "CERTFLEET_CA_BUNDLE"
