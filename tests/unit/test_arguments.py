"""The parser a command line builds (its own command's alone, when it begins with one)
parses and explains that command line exactly as the whole parser does."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest

from certfleet.cli.arguments import BUILD, HELP, command_first, parser

LINES = [
    ["status", "--json", "--config", "c.toml"],
    ["run", "-q", "--dry-run", "a.example", "b.example"],
    ["issue", "x.example", "--key-type", "rsa2048", "--contact", "a@b", "--contact", "c@d"],
    ["revoke", "x.example", "--reason", "keyCompromise"],
    ["account", "rollover", "--key-type", "ec384"],
    ["import", "certbot", "--to-config", "c.toml", "--dry-run"],
    ["monitor", "--critical-days", "7", "-vv"],
]
WRONG = [[], ["stauts"], ["status", "--jsn"], ["status", "--json", "--table"], ["revoke"],
         ["import"], ["-v", "status"], ["--config", "x", "status"]]


def _subparser(top: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    [sub] = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    found: argparse.ArgumentParser = sub.choices[name]
    return found


def _outcome(argv: list[str], top: argparse.ArgumentParser) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = vars(top.parse_args(argv))
        except SystemExit as exc:
            result = ("exit", exc.code)
    return result, out.getvalue(), err.getvalue()


def test_every_command_has_a_summary_and_its_options() -> None:
    assert list(HELP) == list(BUILD)


@pytest.mark.parametrize("argv", LINES + WRONG, ids=" ".join)
def test_a_command_line_is_parsed_as_by_the_whole_parser(
        argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert _outcome(argv, parser(argv)) == _outcome(argv, parser())


@pytest.mark.parametrize("name", list(HELP))
def test_a_command_s_help_is_the_whole_parser_s(name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert _subparser(parser([name, "--help"]), name).format_help() == \
        _subparser(parser(), name).format_help()
    # All a line that begins with a command can show of the top level is its usage, and
    # a top-level -h before the command lists every command:
    assert parser([name]).format_usage() == parser().format_usage()
    assert parser(["-h", name]).format_help() == parser().format_help()


def test_only_the_command_named_is_built() -> None:
    [sub] = [a for a in parser(["status", "--json"])._actions
             if isinstance(a, argparse._SubParsersAction)]
    assert list(sub.choices) == ["status"]
    assert any("--json" in a.option_strings for a in sub.choices["status"]._actions)
    for line in (["--version"], ["stauts"], ["-v", "status"], []):
        assert parser(line).format_help() == parser().format_help(), line


@pytest.mark.parametrize("columns", ["50", "120", "", "wide"])
def test_the_help_is_as_wide_as_argparse_would_make_it(
        columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The width is found without shutil (see ``_Formatter``), the same as argparse finds
    it: $COLUMNS if it is a number, else the terminal, else 80."""
    monkeypatch.setenv("COLUMNS", columns)
    for argv in (["issue"], ["import", "certbot"], None):
        ours = parser(argv)
        theirs = parser(argv)
        for p in (theirs, *(_subparser(theirs, n) for n in (argv or [])[:1])):
            p.formatter_class = argparse.HelpFormatter
        shown = ours if argv is None else _subparser(ours, argv[0])
        same = theirs if argv is None else _subparser(theirs, argv[0])
        assert shown.format_help() == same.format_help(), argv


@pytest.mark.parametrize(("line", "moved"), [
    (["-v", "status"], ["status", "-v"]),
    (["-vv", "issue", "x.example", "--config", "c.toml"],
     ["issue", "-vv", "x.example", "--config", "c.toml"]),
    (["--config", "c.toml", "-q", "run", "a.example"],
     ["run", "--config", "c.toml", "-q", "a.example"]),
    (["--config=c.toml", "status", "--json"], ["status", "--config=c.toml", "--json"]),
    # the value of an option is never taken for the command
    (["--config", "run", "status"], ["status", "--config", "run"]),
    (["--state-dir", "issue", "--webroot", "deploy", "run"],
     ["run", "--state-dir", "issue", "--webroot", "deploy"]),
])
def test_options_before_the_command_go_after_it(line: list[str], moved: list[str]) -> None:
    assert command_first(line) == moved
    result, _, err = _outcome(moved, parser(moved))
    assert isinstance(result, dict), err
    assert result["command"] == moved[0]


@pytest.mark.parametrize("line", [
    [], ["status", "-v"], ["-h", "run"], ["--help", "run"], ["--version", "run"],
    ["stauts", "-v"], ["-v", "stauts"], ["-v", "x.example", "run"], ["-v"],
    ["--config", "run"],  # "run" is the file: no command at all
])
def test_a_line_that_is_not_options_then_a_command_is_left_as_it_is(
        line: list[str]) -> None:
    assert command_first(line) == line


def test_an_option_before_the_command_is_the_command_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Through ``main``: ``certfleet -v status`` as ``certfleet status -v``, and an unknown
    option before a command named as the one at fault (not the command's own words)."""
    from certfleet.cli import main

    monkeypatch.delenv("CERTFLEET_CONFIG", raising=False)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    assert main(["--state-dir", str(state), "--json", "status"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(SystemExit) as exc:
        main(["--bogus", "issue", "x.example", "--state-dir", str(state)])
    assert exc.value.code == 1
    assert capsys.readouterr().err == \
        "certfleet: error: unrecognized arguments: --bogus (see certfleet issue --help)\n"


@pytest.mark.parametrize(("option", "value", "why"), [
    ("--critical", "nan", "not a number"), ("--critical", "inf", "not a number"),
    ("--critical", "abc", "not a number"),
    ("--critical", "0", "a share above 0 and below 1, e.g. 0.1"),
    ("--critical", "1", "a share above 0 and below 1, e.g. 0.1"),
    ("--critical", "-1", "a share above 0 and below 1, e.g. 0.1"),
    ("--critical-days", "nan", "not a number"),
    ("--critical-days", "0", "days above 0 and at most 3650"),
    ("--critical-days", "3650.5", "days above 0 and at most 3650"),
    ("--critical-days", "1e10", "days above 0 and at most 3650"),
])
def test_a_monitor_threshold_that_could_never_or_always_alert_is_refused(
        option: str, value: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A usage error, which ``monitor`` reports as UNKNOWN (cli.main); never a traceback
    from the arithmetic later, never a threshold that silences the alert."""
    from certfleet.cli import main
    from certfleet.monitor import UNKNOWN

    with pytest.raises(SystemExit) as exc:
        main(["monitor", option, value])
    assert exc.value.code == UNKNOWN
    assert capsys.readouterr().err == f"certfleet monitor: error: argument {option}: " \
        f"{value!r}: {why} (see certfleet monitor --help)\n"


@pytest.mark.parametrize(("option", "value"), [("--critical", "0.999"), ("--critical", "1e-3"),
                                               ("--critical-days", "3650"),
                                               ("--critical-days", "0.5")])
def test_a_monitor_threshold_within_its_range_is_taken(option: str, value: str) -> None:
    args = parser(["monitor"]).parse_args(["monitor", option, value])
    assert getattr(args, option[2:].replace("-", "_")) == float(value)


@pytest.mark.parametrize(("argv", "line"), [
    (["status", "--jsn"],
     "certfleet: error: unrecognized arguments: --jsn (see certfleet status --help)"),
    (["run", "--concurrency", "many"], "certfleet run: error: argument --concurrency: "
     "invalid int value: 'many' (see certfleet run --help)"),
    (["frobnicate"], "certfleet: error: argument COMMAND: invalid choice: 'frobnicate' "
     "(choose from 'run', 'deploy', 'status', 'issue', 'revoke', 'serve', 'check', "
     "'nginx-config', 'account', 'monitor', 'store', 'import') (see certfleet --help)"),
    ([], "certfleet: error: the following arguments are required: COMMAND "
     "(see certfleet --help)"),
])
def test_a_usage_error_is_one_line_naming_where_the_options_are(
        argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    from certfleet.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", line + "\n")


def test_with_json_a_usage_error_is_json_on_stdout_too(
        capsys: pytest.CaptureFixture[str]) -> None:
    from certfleet.cli import main

    with pytest.raises(SystemExit):
        main(["status", "--json", "--bogus"])
    captured = capsys.readouterr()
    line = "certfleet: error: unrecognized arguments: --bogus (see certfleet status --help)"
    assert json.loads(captured.out) == {"error": line}
    assert captured.err == line + "\n"
