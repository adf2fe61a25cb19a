"""``python -m certfleet``."""

from .cli import entry

entry()
