"""The domains file's hostile inputs that tests/unit/test_config.py does not already cover.

Every fault is reported as ``file:line: reason`` (the exact text is asserted), and then
nothing runs: ``certfleet run`` exits 1 printing exactly those lines, without creating the
state directory, asking the CA anything, or calling the fleet. Normalizations that are not
errors (case, trailing dot, IDN to A-label) are asserted too.

Which test covers which case (for SECURITY.md); ``config`` is tests/unit/test_config.py:

============================== =========================================================
case                           tests
============================== =========================================================
traversal in names             here: NAMES (``../``, ``/``, ``\\``, ``%2e``, ``..``)
traversal in targets           config: BAD_LINES (``h:/x/../y``, ``../x``, ``/./``);
                               here: TARGETS (local ``/..``, ``/x/..``, ``h:/..``)
NUL                            config: BAD_LINES (in a name); here: LINES (in a target path)
shell metacharacters           config: test_shell_metacharacters_in_path_are_refused,
                               BAD_LINES (``$`` in host and user); here:
                               test_shell_metacharacters_in_host_and_user, NAMES
over-long labels and names     config: BAD_LINES; here: test_length_limits_are_exact
bad punycode                   config: BAD_LINES (``xn--zz``); here: NAMES (``xn--``,
                               ``xn--a``, emoji, ``xn--...-``)
uppercase, trailing dots       config: test_extended_lines; here: NORMALIZED
IDN (A-labels)                 config: test_extended_lines, test_crlf_and_bom_are_accepted;
                               here: NORMALIZED, DUPLICATES (U-label and its A-label)
misplaced wildcards            config: BAD_LINES; here: NAMES, test_wildcards_with_dns01
duplicate names across lines   config: test_duplicate_name_across_lines; here: DUPLICATES
option-injecting targets       config: BAD_LINES (``-oProxyCommand=``, ``u@-o...``,
                               ``-u@h``); here: TARGETS (``host:-o``, ``--``, ``-``,
                               ``h:--``, ``/-o`` component, ``u@-h``)
relative remote paths          config: BAD_LINES (``h:x/y``, ``h:~/x``); here: TARGETS
                               (``h:.``, ``h:..``, ``h:./x``, ``h:~``)
CRLF and BOM                   config: test_crlf_and_bom_are_accepted; here: LINES (BOM
                               inside, twice; CRLF line numbers)
100,000-line file              config: test_100000_lines_parse; here:
                               test_100000_lines_with_a_fault_at_the_end
non-UTF-8 bytes                config: test_non_utf8_bytes_name_the_line; here: LINES
                               (overlong, surrogate, Latin-1, UTF-16)
storage-name collisions        here: test_no_name_collides_with_a_wildcards_directory
nothing runs                   here: test_certfleet_run_reports_and_runs_nothing
arbitrary bytes                config: test_any_input_parses_or_raises_config_errors
============================== =========================================================
"""

from __future__ import annotations

import contextlib
import io
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from certfleet.cli import main
from certfleet.config import ConfigErrors
from certfleet.config.domains import parse_domains
from certfleet.errors import safe_text
from certfleet.names import storage_name
from certfleet.spec import CertDefaults, Target

DEFAULT = CertDefaults()
DNS = CertDefaults(challenge="dns-01")
ESC = "\x1b"


def parse(data: str | bytes, default: CertDefaults = DEFAULT) -> list[Any]:
    raw = data.encode() if isinstance(data, str) else data
    return parse_domains(raw, "domains.txt", default=default)


def problems(data: str | bytes, default: CertDefaults = DEFAULT) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        parse(data, default)
    return info.value.problems


# (line as written, the exact report for it on line 2 of a file)
NAMES = [
    ("../etc.example.com", "'../etc.example.com': not a domain name"),
    ("/etc/passwd", "'/etc/passwd': not a domain name"),
    ("x.example.com/../../etc", "'x.example.com/../../etc': not a domain name"),
    ("./x.example.com", "'./x.example.com': not a domain name"),
    ("a\\b.example.com", "'a\\\\b.example.com': not a domain name"),
    ("..", "'..': empty label"),
    ("%2e%2e.example.com", "'%2e%2e.example.com': label '%2e%2e' is not letters, digits "
                           "and hyphens"),
    ("$(id).example.com", "'$(id).example.com': label '$(id)' is not letters, digits and "
                          "hyphens"),
    ("`id`.example.com", "'`id`.example.com': label '`id`' is not letters, digits and "
                         "hyphens"),
    ("a.example.com;reboot", "'a.example.com;reboot': label 'com;reboot' is not letters, "
                             "digits and hyphens"),
    ("a&b.example.com", "'a&b.example.com': label 'a&b' is not letters, digits and hyphens"),
    ("x.example.com>y", "'x.example.com>y': label 'com>y' is not letters, digits and "
                        "hyphens"),
    ("xn--.example.com", "'xn--.example.com': bad punycode label 'xn--': Malformed A-label, "
                         "no Punycode eligible content found"),
    ("xn--a.example.com", "'xn--a.example.com': bad punycode label 'xn--a': Codepoint "
                          "U+0080 at position 1 of '\\x80' not allowed"),
    ("xn--ls8h.example", "'xn--ls8h.example': bad punycode label 'xn--ls8h': Codepoint "
                         "U+1F4A9 at position 1 of '\U0001f4a9' not allowed"),
    ("xn--bcher-kva-.example", "'xn--bcher-kva-.example': bad punycode label "
                               "'xn--bcher-kva-': A-label must not end with a hyphen"),
    ("bücher\u3002example", "'bücher\u3002example': a name needs at least two labels"),
    ("a.bücher\u3002example", "'a.bücher\u3002example': label 'xn--bcher-kva.example' is not "
                              "letters, digits and hyphens"),
    ("a.example.com..", "'a.example.com..': empty label"),
    ("**.example.com", "'**.example.com': a wildcard is allowed only as the whole first "
                       "label"),
    ("*.*.example.com", "'*.*.example.com': a wildcard is allowed only as the whole first "
                        "label"),
    ("x.*", "'x.*': a wildcard is allowed only as the whole first label"),
    ("*", "'*': a name needs at least two labels"),
    ("*.com", "'*.com': a name needs at least two labels"),
    ("_wildcard.example.com", "'_wildcard.example.com': label '_wildcard' is not letters, "
                              "digits and hyphens"),
]

TARGETS = [
    ("/x/..", "/x/..: '..' component in path"),
    ("/..", "/..: '..' component in path"),
    ("h:/..", "h:/..: '..' component in path"),
    ("/srv/./x", "/srv/./x: '.' component in path"),
    ("host:-o", "host:-o: path must be absolute (start with '/')"),
    ("h:-oProxyCommand=id", "h:-oProxyCommand=id: path must be absolute (start with '/')"),
    ("--", "--: a target must not start with '-'"),
    ("-", "-: a target must not start with '-'"),
    ("--:/x", "--:/x: a target must not start with '-'"),
    ("-@h:/x", "-@h:/x: a target must not start with '-'"),
    ("h:--", "h:--: path must be absolute (start with '/')"),
    ("u@h:/-oProxyCommand=x", "u@h:/-oProxyCommand=x: a path component must not start "
                              "with '-'"),
    ("h:/x/-", "h:/x/-: a path component must not start with '-'"),
    ("u@-h:/x", "u@-h:/x: host must not start with '-'"),
    ("h:.", "h:.: path must be absolute (start with '/')"),
    ("h:..", "h:..: path must be absolute (start with '/')"),
    ("h:./x", "h:./x: path must be absolute (start with '/')"),
    ("h:x", "h:x: path must be absolute (start with '/')"),
    ("h:~", "h:~: path must be absolute (start with '/')"),
    ("x", "x: not a target: expected /dir or [user@]host:/dir"),
    ("~/x", "~/x: not a target: expected /dir or [user@]host:/dir"),
]

LINES: list[tuple[str, bytes, list[str]]] = [
    ("NUL in a target path", b"ok.example.com\na.example.com | /srv/x\x00y\n",
     ["domains.txt:2: control character \\x00 at column 23"]),
    ("NUL hiding a traversal", b"ok.example.com\na.example.com | h:/x\x00/../y\n",
     ["domains.txt:2: control character \\x00 at column 21"]),
    ("escape sequence in a target", b"ok.example.com\na.example.com | /x\x1b[2J\n",
     ["domains.txt:2: control character \\x1b at column 19"]),
    ("BOM inside the file", b"a.example.com\r\n\xef\xbb\xbfb.example.com\r\n",
     ["domains.txt:2: invisible character U+FEFF at column 1"]),
    ("BOM twice at the start", b"\xef\xbb\xbf\xef\xbb\xbfa.example.com\n",
     ["domains.txt:1: invisible character U+FEFF at column 1"]),
    ("CRLF keeps line numbers", b"a.example.com\r\n\r\n# c\r\nbad..example.com\r\n",
     ["domains.txt:4: 'bad..example.com': empty label"]),
    ("a lone CR in a line", b"a.example.com\rb.example.com\n",
     ["domains.txt:1: control character \\r at column 14"]),
    ("overlong UTF-8 '/'", b"a.example.com\n\xc0\xaf.example.com\n",
     ["domains.txt:2: not valid UTF-8 (byte 0xc0 at column 1)"]),
    ("UTF-8 surrogate", b"a.example.com\n\xed\xa0\x80.example.com\n",
     ["domains.txt:2: not valid UTF-8 (byte 0xed at column 1)"]),
    ("Latin-1 in a path", b"a.example.com | /srv/caf\xe9\n",
     ["domains.txt:1: not valid UTF-8 (byte 0xe9 at column 25)"]),
    ("UTF-16", "a.example.com\n".encode("utf-16"),
     ["domains.txt:1: not valid UTF-8 (byte 0xff at column 1)",
      "domains.txt:2: control character \\x00 at column 1"]),
    ("right-to-left override", "ok.example.com\na.example.com | /srv/\u202egnp\n".encode(),
     ["domains.txt:2: invisible character U+202E at column 22"]),
]


@pytest.mark.parametrize(("name", "reason"), NAMES, ids=[n for n, _ in NAMES])
def test_hostile_names(name: str, reason: str) -> None:
    assert problems(f"ok.example.com | /x\n{name} | /srv/y\n") == [f"domains.txt:2: {reason}"]


@pytest.mark.parametrize(("target", "reason"), TARGETS, ids=[t for t, _ in TARGETS])
def test_hostile_targets(target: str, reason: str) -> None:
    assert problems(f"ok.example.com | /x\na.example.com | {target}\n") == [
        f"domains.txt:2: {reason}"]


@pytest.mark.parametrize(("data", "expected"), [(d, e) for _, d, e in LINES],
                         ids=[i for i, _, _ in LINES])
def test_hostile_lines(data: bytes, expected: list[str]) -> None:
    assert problems(data) == expected


@pytest.mark.parametrize("meta", sorted(set(";&$`'\"<>(){}*?!\\[]")))
def test_shell_metacharacters_in_host_and_user(meta: str) -> None:
    host = problems(f"a.example.com | h{meta}x:/srv\n")
    user = problems(f"a.example.com | u{meta}x@h:/srv\n")
    assert len(host) == 1
    assert len(user) == 1
    assert host[0].startswith(f"domains.txt:1: {safe_text(f'h{meta}x:/srv')}: ")
    assert user[0].startswith(f"domains.txt:1: {safe_text(f'u{meta}x@h:/srv')}: ")
    if meta not in "[]":  # a bracket starts an IPv6 address, refused as that
        assert host[0].endswith(f"shell metacharacter {meta!r} in host")
        assert user[0].endswith(f"shell metacharacter {meta!r} in user")


def test_length_limits_are_exact() -> None:
    label63 = "a" * 63
    longest = ".".join([label63] * 3) + "." + "b" * 61   # 253 characters
    (spec,) = parse(f"{label63}.example.com\n")
    assert spec.names == (f"{label63}.example.com",)
    (spec,) = parse(f"{longest}.\n")                      # the trailing dot is not counted
    assert spec.names == (longest,)
    assert problems(f"{longest}b\n") == [
        f"domains.txt:1: '{(longest + 'b')[:80]}...': name longer than 253 characters"]
    assert problems(f"{'a' * 64}.example.com\n") == [
        f"domains.txt:1: '{'a' * 64}.example.com': label longer than 63 characters"]


NORMALIZED = [
    ("A.EXAMPLE.COM.", ("a.example.com",)),
    ("XN--BCHER-KVA.example", ("xn--bcher-kva.example",)),
    ("BÜCHER.example bücher.example.", None),  # one name written twice: refused below
    ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", ("example.com",)),   # fullwidth
    ("fa\u00df.de", ("xn--fa-hia.de",)),                 # IDNA 2008: ß stays ß
    ("xn--zca.example", ("xn--zca.example",)),
]


@pytest.mark.parametrize(("line", "names"), [n for n in NORMALIZED if n[1]],
                         ids=[n[0] for n in NORMALIZED if n[1]])
def test_normalized_not_refused(line: str, names: tuple[str, ...]) -> None:
    (spec,) = parse(f"{line} | /srv/x\n")
    assert spec.names == names
    assert spec.name == names[0]
    assert storage_name(spec.name) == names[0]


DUPLICATES = [
    ("bücher.example\nxn--bcher-kva.example\n",
     ["domains.txt:2: xn--bcher-kva.example already on line 1"]),
    ("BÜCHER.example bücher.example.\n",
     ["domains.txt:1: xn--bcher-kva.example: named twice on this line"]),
    ("a.example.com.\nb.example.com A.EXAMPLE.COM\n",
     ["domains.txt:2: a.example.com already on line 1"]),
    ("\uff41.example.com\na.example.com\n", ["domains.txt:2: a.example.com already on line 1"]),
    ("*.example.com example.com *.example.com\n",
     ["domains.txt:1: *.example.com: named twice on this line"]),
    ("x.example.com\n" * 3, ["domains.txt:2: x.example.com already on line 1",
                             "domains.txt:3: x.example.com already on line 1"]),
]


@pytest.mark.parametrize(("text", "expected"), DUPLICATES)
def test_duplicates_in_any_spelling(text: str, expected: list[str]) -> None:
    assert problems(text, DNS) == expected


def test_wildcards_with_dns01() -> None:
    (spec,) = parse("example.com *.example.com | /srv/x\n", DNS)
    assert spec.names == ("example.com", "*.example.com")
    (spec,) = parse("*.example.com\n", DNS)
    assert storage_name(spec.name) == "_wildcard.example.com"
    assert problems("*.example.com\n") == [
        'domains.txt:1: *.example.com: a wildcard needs challenge dns-01 (set challenge = '
        '"dns-01" in [certs."*.example.com"] or [defaults])']


def test_no_name_collides_with_a_wildcards_directory() -> None:
    """``*.example.com`` is stored as ``_wildcard.example.com``; no name can be that."""
    assert problems("*.example.com\n_wildcard.example.com\n", DNS) == [
        "domains.txt:2: '_wildcard.example.com': label '_wildcard' is not letters, digits "
        "and hyphens"]


def test_100000_lines_with_a_fault_at_the_end() -> None:
    lines = [f"h{i}.example.com | web{i % 50}:/etc/ssl/x /srv/{i % 7}\n" for i in range(99_999)]
    started = time.monotonic()
    assert problems("".join(lines) + "h7.example.com | -oProxyCommand=x:/y\n") == [
        "domains.txt:100000: h7.example.com already on line 8",
        "domains.txt:100000: -oProxyCommand=x:/y: a target must not start with '-'"]
    assert problems("".join(lines) + "h100000.example.com | h:/x/../y\n") == [
        "domains.txt:100000: h:/x/../y: '..' component in path"]
    # Linear work: 12 to 18 s for both parses with the machine loaded (7 to 9 runnable on
    # 2 cores), a few idle. A check of each line against every earlier one, 5 x 10^9
    # comparisons a parse, would take hours: 120 s only tells the two apart.
    assert time.monotonic() - started < 120


def test_100000_faults_are_reported_as_100_and_a_count() -> None:
    with pytest.raises(ConfigErrors) as info:
        parse("".join(f"../{i}.example.com\n" for i in range(100_000)))
    assert len(info.value.problems) == 100
    assert info.value.more == 99_900
    assert str(info.value).endswith("\n... and 99900 more")


# -- nothing runs -----------------------------------------------------------------------------

CLI_CASES = [
    *[(f"name {n}", f"ok.example.com\n{n} | /srv/y\n", [f"2: {r}"]) for n, r in NAMES[:12]],
    *[(f"target {t}", f"ok.example.com\na.example.com | {t}\n", [f"2: {r}"])
      for t, r in TARGETS],
    ("two faults", "bad..example.com\nok.example.com | h;id:/x\n",
     ["1: 'bad..example.com': empty label", "2: h;id:/x: shell metacharacter ';' in host"]),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in CLI_CASES],
                         ids=[i for i, _, _ in CLI_CASES])
def test_certfleet_run_reports_and_runs_nothing(
        tmp_path: Path, silent_ca: socket.socket, monkeypatch: pytest.MonkeyPatch,
        text: str, expected: list[str]) -> None:
    ran: list[Any] = []
    monkeypatch.setattr("certfleet.fleet.run", lambda *a, **k: ran.append(a))
    domains = tmp_path / "domains.txt"
    domains.write_text(text)
    state = tmp_path / "state"
    port = silent_ca.getsockname()[1]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["run", "--domains", str(domains), "--state-dir", str(state),
                   "--directory", f"http://127.0.0.1:{port}/dir", "--insecure-http",
                   "--webroot", str(tmp_path)])
    assert rc == 1
    lines = [f"{domains}:{e}" for e in expected]
    if len(lines) == 1:
        lines = [f"certfleet: {lines[0]}"]
    assert out.getvalue() == ""  # errors go to stderr
    assert err.getvalue() == "".join(f"{line}\n" for line in lines)
    assert ESC not in err.getvalue()
    assert ran == []
    assert not state.exists()
    with pytest.raises(BlockingIOError):
        silent_ca.accept()


def test_targets_that_are_fine_stay_as_written() -> None:
    """Not every odd-looking target is hostile: these are taken, normalized."""
    (spec,) = parse("a.example.com | //srv//x/ deploy@h:/a:b/c [::1]:/x\n")
    assert spec.targets == (Target("/srv/x"), Target("/a:b/c", "h", "deploy"),
                            Target("/x", "::1"))
