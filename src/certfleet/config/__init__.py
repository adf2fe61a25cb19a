"""Configuration: ``certfleet.toml``, the domains file, the environment and the command line.

Reads files only. ``load_job`` is the one way in; see ``job.py`` for the flow.
"""

from __future__ import annotations

from .job import load_job
from .problems import ConfigErrors

__all__ = ["ConfigErrors", "load_job"]
