"""Configuration: ``certfleet.toml``, the domains file, the environment and the command line.

Reads files only. ``load_job`` is the one way in; see ``job.py`` for the flow.

``load_job`` and ``ConfigErrors`` are imported on first use (PEP 562): importing
``config.defaults`` (the command line's help text quotes it) must not load the parsers.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy takes it so), without importing typing
if TYPE_CHECKING:
    from typing import Any

    from .job import load_job
    from .problems import ConfigErrors

__all__ = ["ConfigErrors", "load_job"]


def __getattr__(name: str) -> Any:
    if name == "load_job":
        from .job import load_job

        return load_job
    if name == "ConfigErrors":
        from .problems import ConfigErrors

        return ConfigErrors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
