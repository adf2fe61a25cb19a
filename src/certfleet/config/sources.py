"""Where a command's configuration comes from, the same for every command.

Touches nothing but what ``load_job`` reads. Precedence, highest first: the command line,
the environment (``CERTFLEET_*``), ``certfleet.toml`` (``--config``, else
``CERTFLEET_CONFIG``, else ``/etc/certfleet/certfleet.toml`` if it exists), the built-in
defaults (``defaults.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, safe_text
from ..spec import JobConfig
from .defaults import (
    DEFAULT_CONFIG,
    ENV_CA_BUNDLE,
    ENV_CONFIG,
    ENV_DIRECTORY,
    ENV_STATE_DIR,
)
from .job import load_job

# option -> its environment twin (None: command line only)
_OPTIONS: dict[str, str | None] = {
    "state_dir": ENV_STATE_DIR, "directory": ENV_DIRECTORY, "ca_bundle": ENV_CA_BUNDLE,
    "webroot": None, "http_listen": None, "concurrency": None, "contact": None,
    "account_key_type": None,
}


def config_path(options: Mapping[str, Any], environ: Mapping[str, str]) -> Path | None:
    """The certfleet.toml to read, or None when there is none to read."""
    if options.get("config"):
        return Path(options["config"])
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    default = Path(DEFAULT_CONFIG)
    return default if default.exists() else None


def job_from(options: Mapping[str, Any], environ: Mapping[str, str] | None = None, *,
             need_domains: bool = False, read_config: bool = True,
             with_certs: bool = True) -> JobConfig:
    """The job for a command, from its options (``argparse`` names) and the environment.

    ``need_domains``: the command works on the domains file's certificates, so one of the
    configuration or ``--domains`` must be there. ``read_config=False``: no certfleet.toml
    is read, not even the default one (``import`` writes a new one). ``with_certs=False``:
    the configuration without the domains file's certificates (``load_job``).
    """
    env = os.environ if environ is None else environ
    overrides: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, variable in _OPTIONS.items():
        value = options.get(key)
        if value is not None and value != []:
            overrides[key] = value
            origins[key] = f"command line (--{key.replace('_', '-')})"
        elif variable is not None and env.get(variable):
            overrides[key] = env[variable]
            origins[key] = f"environment ({variable})"
    if options.get("insecure_http"):
        overrides["allow_http"] = True
    config = config_path(options, env) if read_config else None
    domains = options.get("domains")
    if config is None and domains is None and need_domains:
        raise ConfigError(f"no configuration: pass --config FILE or --domains FILE "
                          f"(or create {DEFAULT_CONFIG})")
    origins["domains"] = "command line (--domains)"
    job = load_job(config, domains_path=Path(domains) if domains else None,
                   overrides=overrides, origins=origins, with_certs=with_certs)
    if need_domains and with_certs and not job.certs:
        # A domains file emptied by mistake (a truncated copy, a failed templating) would
        # stop every renewal without a word: `run --quiet` prints nothing when nothing is
        # due. A fleet of no certificates is not a job worth running from cron.
        where = safe_text(str(job.domains_file)) if job.domains_file else "the domains file"
        raise ConfigError(f"{where}: lists no certificate (every line blank or a comment): "
                          "nothing would ever be renewed")
    return job
