"""The command line: arguments, output and exit codes. Touches stdout and stderr only.

Every command reads the same configuration (``config.sources``) and goes through the same
fleet runner; the modules here only parse and print. Output: each certificate's line, and
``status``'s table or JSON, on stdout; every error on stderr, one line each. Exit codes are
acme-client's (``report``): 0 changed, 1 failed, 2 nothing to do; a usage error (unknown
option, missing argument) is 1, never 2, so a cron wrapper cannot take a typo for "nothing
to do".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy takes it so), without importing typing
if TYPE_CHECKING:
    import argparse
    import logging

Command = Callable[["argparse.Namespace"], int]

# command -> (module in cli/, function). A command's module is imported only when it runs,
# and imports what that command uses: `--version` loads no command, `status` no network
# or crypto stack (tests/unit/test_startup_imports.py).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("fleet", "run"), "deploy": ("fleet", "deploy"), "status": ("fleet", "status"),
    "issue": ("certs", "issue"), "revoke": ("certs", "revoke"),
    "serve": ("challenge", "serve"), "check": ("challenge", "check"),
    "nginx-config": ("challenge", "nginx"), "account": ("account", "account"),
    "monitor": ("monitor", "monitor"), "import": ("migrate", "run"),
    "store": ("store", "store"),
}


def command(name: str) -> Command:
    """The function that runs command ``name`` (its module imported now)."""
    import importlib

    from ..gcpause import paused

    module, function = COMMANDS[name]
    with paused():  # importing makes long-lived objects, no garbage to look for
        found: Command = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return found


@cache
def _log_handler() -> logging.Handler:
    """certfleet's one stderr handler, made on first use (``--version`` needs no logging).

    Log lines carry values from the CA, targets and files: whatever a record holds, no
    control character reaches the terminal (a CA cannot move the cursor or forge lines).
    """
    import logging

    from .output import SafeFormatter, SafeStream

    handler = logging.StreamHandler(SafeStream())
    handler.setFormatter(SafeFormatter("certfleet: %(levelname)s: %(message)s"))
    return handler


def _setup_logging(verbosity: int) -> None:
    """certfleet's own log on stderr: warnings, -v what is done, -vv every request."""
    import logging

    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    ours = logging.getLogger("certfleet")
    handler = _log_handler()
    if handler not in ours.handlers:
        ours.addHandler(handler)
    handler.setLevel(level)
    if ours.getEffectiveLevel() > level:  # never raise it: others may listen (tests do)
        ours.setLevel(level)
    # asyncio reports what certfleet chose to leave behind (a request to a server that
    # stopped answering fails when its session closes, long after the target was failed):
    # with a traceback, raw, through logging's last resort. Shown at -vv only, escaped.
    loop_log = logging.getLogger("asyncio")
    loop_log.propagate = False
    if not loop_log.handlers:
        loop_log.addHandler(logging.NullHandler())
    if verbosity < 2:
        loop_log.removeHandler(handler)
    elif handler not in loop_log.handlers:
        loop_log.addHandler(handler)


def _open_streams() -> bool:
    """A stdout or stderr the command was started without (``>&-``) becomes /dev/null, so
    that nothing ends in a traceback; returns whether stdout was closed (then ``main``
    says the lines are lost, once the work is done)."""
    import os
    import sys

    closed = sys.stdout is None
    if closed:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - held until the process exits
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - nowhere else to say anything
    # Under a locale that cannot spell a character (LANG=C without UTF-8, Latin-1), a line
    # is printed with an escape for it, as stderr's are, never a traceback instead.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and getattr(sys.stdout, "errors", None) == "strict":
        reconfigure(errors="backslashreplace")
    return closed


def entry() -> None:
    """The process: the ``certfleet`` script and ``python -m certfleet`` (``main`` is the
    command line for a caller that goes on after it, as the tests do)."""
    import atexit
    import gc

    # Where the process ends otherwise (`--version`, `--help`, a usage error: SystemExit),
    # the teardown collects garbage between its steps: passes over the objects the
    # imports made, none of them garbage. The last exit handler takes them out of the
    # collector's sight; registered first, it runs last.
    atexit.register(gc.freeze)
    # Until the command's code is imported, every object made lives as long as the
    # process: the collector's passes over them (a few dozen in a one-certificate `issue`,
    # ~20 ms here) would find nothing. `main` turns it on, with those objects frozen.
    gc.disable()
    _leave(main(collect_after_imports=True))


def _collect_from_now() -> None:
    """The collector on, blind to what the imports made (``gc.freeze``)."""
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _leave(code: int) -> None:
    """Exit with ``code`` once the exit handlers have run (logging's flush among them),
    without the interpreter's teardown: it takes apart every module and frees every object
    the imports made, ~10 ms of a one-certificate ``issue`` here, for nothing that
    outlives the process (every file is closed and fsynced where it is written). The
    interpreter exits as it would while a thread other than a daemon still runs (its exit
    waits for it), and under a profiler (``python -m cProfile``), which writes its results
    when the program returns (a tracer such as coverage's saves in an exit handler)."""
    import atexit
    import contextlib
    import os
    import sys

    threading = sys.modules.get("threading")
    if sys.getprofile() is not None or (
            threading is not None and any(
                t.is_alive() and not t.daemon and t is not threading.main_thread()
                for t in threading.enumerate())):
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter's exit runs before its teardown
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that left: main said so
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None, *, collect_after_imports: bool = False) -> int:
    """The command line ``argv``; its exit code. ``collect_after_imports``: ``entry``
    turned the collector off for the start, and it is turned on (with what is there
    frozen) once the command's code is imported."""
    import sys

    # after ``entry`` turned the collector off:
    from .arguments import HELP, UsageError, command_first, parser

    argv = command_first(sys.argv[1:] if argv is None else argv)
    closed = _open_streams()
    line = parser(argv)
    line.help_of = f"certfleet {argv[0]}" if argv and argv[0] in HELP else None
    try:
        args = line.parse_args(argv)
    except SystemExit as exc:
        if isinstance(exc, UsageError) and "--json" in argv:  # stdout stays JSON
            import json

            sys.stdout.write(json.dumps({"error": exc.text}) + "\n")
        # A monitoring plugin's own convention: anything that is not a verdict is UNKNOWN.
        # (Checked on the arguments first: `--version` exits here too, and loads nothing.)
        if argv[:1] == ["monitor"]:
            from ..monitor import UNKNOWN
            from ..report import EXIT_FAILED

            if exc.code == EXIT_FAILED:
                raise SystemExit(UNKNOWN) from None
        raise
    from ..errors import CertfleetError
    from ..report import EXIT_FAILED
    from . import output

    # serve logs every validation request: that is its output.
    _setup_logging(max(args.verbose, 1) if args.command == "serve" else args.verbose)
    try:
        run = command(args.command)
        if collect_after_imports:
            _collect_from_now()
        code = run(args)
    except CertfleetError as exc:
        output.error(str(exc), json_mode=getattr(args, "json", False))
        code = EXIT_FAILED
    except KeyboardInterrupt:
        output.error("interrupted")
        code = EXIT_FAILED
    finally:
        output.flush()
    why = output.lost() or ("it is closed" if closed else None)
    if why is not None:  # the work is done; what it said is not: that is a failure
        output.error(f"cannot write to standard output ({why}); this command's lines "
                     "are lost")
        return EXIT_FAILED
    return code
