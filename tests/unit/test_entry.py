"""The process's entry point: the ``certfleet`` script, ``python -m certfleet`` and the
zipapp all start ``certfleet.cli.entry``, which ends the process without the collector's
passes over everything the imports made (``cli.entry``)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

# Registered before certfleet's own exit handlers, this one runs after them all (they run
# last-in, first-out) and says how many objects the collector no longer looks at.
_START = """
import atexit, gc, os, sys
atexit.register(lambda: os.write(1, b"\\nfrozen %d\\n" % gc.get_freeze_count()))
sys.argv = ["certfleet", "--version"]
"""


def frozen_at_exit(start: str) -> int:
    proc = subprocess.run([sys.executable, "-c", _START + start], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("certfleet "), proc.stdout  # --version said its line
    return int(proc.stdout.rsplit("frozen ", 1)[1])


def test_the_process_ends_with_every_object_out_of_the_collectors_sight() -> None:
    assert frozen_at_exit("from certfleet.cli import entry\nentry()") > 1000


def test_python_dash_m_starts_the_entry_point() -> None:
    assert frozen_at_exit("import runpy\nrunpy.run_module('certfleet', run_name='__main__')") \
        > 1000


def test_main_alone_leaves_the_collector_as_it_was() -> None:
    """A caller that goes on after ``main`` (the tests) keeps its garbage collected."""
    assert frozen_at_exit("from certfleet.cli import main\nmain()") == 0


def test_the_installed_script_starts_the_entry_point() -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts", name="certfleet")
    assert [script.value for script in scripts] == ["certfleet.cli:entry"]
