"""The process's entry point: the ``certfleet`` script, ``python -m certfleet`` and the
zipapp all start ``certfleet.cli.entry``, which ends the process without the interpreter's
teardown once the command is done, and without the collector's passes over everything the
imports made where the command line ends it (``cli.entry``)."""

from __future__ import annotations

import importlib.metadata
import pstats
import subprocess
import sys
from pathlib import Path

# Registered before certfleet's own exit handlers, this one runs after them all (they run
# last-in, first-out) and says how many objects the collector no longer looks at.
_START = """
import atexit, gc, os, sys
atexit.register(lambda: os.write(1, b"\\nfrozen %d\\n" % gc.get_freeze_count()))
sys.argv = ["certfleet", "--version"]
"""


def frozen_at_exit(start: str, argv: str = '["certfleet", "--version"]',
                   said: str = "certfleet ", code: int = 0) -> int:
    start = _START.replace('["certfleet", "--version"]', argv) + start
    proc = python("-c", start)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.startswith(said), proc.stdout  # the command said its lines first
    return int(proc.stdout.rsplit("frozen ", 1)[1])


def python(*args: str) -> subprocess.CompletedProcess[str]:
    """This interpreter with ``args``, its output caught."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60,
                          check=False)


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


def test_a_command_that_is_done_runs_every_exit_handler_and_keeps_its_code(
        tmp_path: Path) -> None:
    """`status` returns from ``main``: the process ends at once, after the exit handlers
    (the test's own, registered first, runs last and still speaks) and with the command's
    exit code (1 where the state directory is missing: an error it reports itself)."""
    state = tmp_path / "state"
    argv = f'["certfleet", "status", "--state-dir", "{state}"]'
    assert frozen_at_exit("from certfleet.cli import entry\nentry()", argv, said="",
                          code=1) > 1000
    state.mkdir(mode=0o700)
    assert frozen_at_exit("from certfleet.cli import entry\nentry()", argv,
                          said="no certificates\n") > 1000


def test_the_process_waits_for_a_thread_that_still_works(tmp_path: Path) -> None:
    """A thread that is no daemon and still runs when the command is done: the
    interpreter's own exit, which waits for it, not the quick one."""
    done = tmp_path / "done"
    start = ("import threading, time\n"
             "from certfleet.cli import _leave\n"
             "def work():\n"
             "    time.sleep(0.3)\n"
             f"    open({str(done)!r}, 'w').write('written')\n"
             "threading.Thread(target=work).start()\n"
             "_leave(3)\n")
    proc = python("-c", start)
    assert proc.returncode == 3, proc.stderr
    assert done.read_text() == "written"


def test_the_process_ends_without_the_teardown(tmp_path: Path) -> None:
    """An object of ``__main__`` that speaks when the interpreter takes the module apart:
    silent after ``_leave``, heard after the interpreter's own exit (the test's check)."""
    start = ("import sys\n"
             "class Speaker:\n"
             "    def __del__(self):\n"
             "        sys.__stdout__.write('torn down\\n')\n"
             "speaker = Speaker()\n"
             "from certfleet.cli import _leave\n"
             "_leave(4)\n")
    quick = python("-c", start)
    assert (quick.returncode, quick.stdout) == (4, ""), quick.stderr
    full = python("-c", start.replace("_leave(4)", "sys.exit(4)"))
    assert (full.returncode, full.stdout) == (4, "torn down\n"), full.stderr


def test_a_profiler_gets_its_results(tmp_path: Path) -> None:
    """``python -m cProfile -o FILE -m certfleet ...`` (the bench's ``--profile``) writes
    FILE after the program returns: the quick exit would leave none."""
    out = tmp_path / "run.prof"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    proc = python("-m", "cProfile", "-o", str(out), "-m", "certfleet", "status",
                  "--state-dir", str(state))
    assert (proc.returncode, proc.stdout) == (0, "no certificates\n"), proc.stderr
    assert pstats.Stats(str(out)).total_calls > 1000


def test_the_collector_waits_for_the_commands_code_then_runs(tmp_path: Path) -> None:
    """No collection while the process imports the command's code (every object made then
    lives as long as the process); the collector is on, and blind to those objects, when
    the command is done."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    start = ("import atexit, gc, os, sys\n"
             "early, started = [], []\n"
             "def seen(phase, info):\n"
             "    if phase == 'start' and started and 'certfleet.cli.fleet' not in sys.modules:\n"
             "        early.append(info['generation'])\n"
             "def said():\n"
             "    os.write(1, f'early {early} on {gc.isenabled()} '\n"
             "                f'{gc.get_freeze_count() > 1000}\\n'.encode())\n"
             "atexit.register(said)\n"
             f"sys.argv = ['certfleet', 'status', '--state-dir', {str(state)!r}]\n"
             "gc.callbacks.append(seen)\n"
             "from certfleet.cli import entry\n"
             "started.append(True)\n"
             "entry()\n")
    proc = python("-c", start)
    assert (proc.returncode, proc.stdout) == (0, "no certificates\nearly [] on True True\n"), \
        proc.stderr
