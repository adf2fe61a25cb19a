"""The http-01 responder against hostile input, over real loopback sockets: --http-listen
parsing, the Host rule (http_head's docstring decides each case), malformed request lines,
oversized heads, binary junk, bodies, HEAD, and the one escaped log line per request.

Caps and deadlines (slowloris, idle, per-client and total caps) are in
test_http_server_limits.py.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certfleet.errors import ConfigError, StoreError
from certfleet.protocol.challenges import HTTP_01_PREFIX
from certfleet.solvers.http_head import (
    MAX_HEAD,
    BadRequest,
    early_fault,
    head_end,
    host_identity,
    parse_head,
)
from certfleet.solvers.http_responder import Responder
from certfleet.solvers.http_server import host_matches, parse_listen

from ..children import python_within
from .rawhttp import (
    KEY_AUTH,
    NAME,
    PATH,
    TOKEN,
    Answer,
    ask,
    capture,
    exchange,
    log_lines,
    read_all,
    request,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("0.0.0.0:5002", ("0.0.0.0", 5002)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::1]:8080", ("::1", 8080)),
        ("[2001:db8::1]:1", ("2001:db8::1", 1)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "localhost", "localhost:", ":80", "[]:80", "host:0", "host:65536", "host:http",
     "host:-1", "host: 80", "host:99999999999999999999"],
)
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        parse_listen(text)


@pytest.mark.parametrize("port", ["\u00b2", "\u2460"])
def test_parse_listen_refuses_non_ascii_digits(port: str) -> None:
    # str.isdigit() is true for these; a bad --http-listen must be a ConfigError, not a crash.
    with pytest.raises(ConfigError):
        parse_listen(f"localhost:{port}")


# -- the Host rule ---------------------------------------------------------------------

IDN = "xn--bcher-kva.example"            # bücher.example
MIXED = "xn--exmple-4nf.com"             # "ex\u0430mple.com", a Cyrillic a: not example.com

HOST_CASES = [
    # (Host header, name being validated, answered?)
    ("www.example.com", NAME, True),
    ("WWW.EXAMPLE.COM", NAME, True),                 # upper case is folded
    ("Www.Example.Com:80", NAME, True),
    ("www.example.com:5002", NAME, True),            # any port: the CA's, not ours to check
    ("www.example.com:65535", NAME, True),
    ("www.example.com.", NAME, True),                # one trailing dot: the same name
    ("www.example.com.:80", NAME, True),
    ("www.example.com..", NAME, False),
    ("www.example.com:", NAME, False),               # empty port
    ("www.example.com:http", NAME, False),
    ("www.example.com:80:80", NAME, False),
    ("www.example.com:65536", NAME, False),
    ("www.example.com:123456", NAME, False),
    ("[www.example.com]", NAME, False),              # brackets around a non-IP
    ("[www.example.com]:80", NAME, False),
    ("example.com", NAME, False),
    ("www.example.com.evil.example", NAME, False),
    ("evil.example", NAME, False),
    ("www%2eexample.com", NAME, False),              # percent-encoding is not decoded
    ("www.example.com/", NAME, False),
    ("www.example.com@evil.example", NAME, False),
    ("www example.com", NAME, False),
    ("", NAME, False),
    ("192.0.2.1", "192.0.2.1", True),
    ("192.0.2.1:80", "192.0.2.1", True),
    ("192.0.2.1.", "192.0.2.1", False),              # no trailing dot on an address
    ("192.000.002.001", "192.0.2.1", False),         # no leading zeros
    ("[192.0.2.1]", "192.0.2.1", False),             # brackets are for IPv6 only
    ("[::ffff:192.0.2.1]", "192.0.2.1", False),      # IPv4-mapped is not the IPv4 name
    ("192.0.2.2", "192.0.2.1", False),
    ("[2001:db8::1]", "2001:db8::1", True),          # IPv6 literal without a port
    ("[2001:db8::1]:80", "2001:db8::1", True),       # ... and with one
    ("[2001:DB8:0::1]:8080", "2001:db8::1", True),   # the address, not its spelling
    ("[2001:db8::1]", "2001:0db8::1", True),
    ("2001:db8::1", "2001:db8::1", False),           # bare IPv6: ambiguous with a port
    ("[2001:db8::1", "2001:db8::1", False),
    ("[2001:db8::1]x", "2001:db8::1", False),
    ("[2001:db8::1]:", "2001:db8::1", False),
    ("[fe80::1%eth0]", "fe80::1", False),            # zone IDs never match
    ("[2001:db8::2]:80", "2001:db8::1", False),
    (IDN, IDN, True),                                # the A-label the CA sends
    ("XN--BCHER-KVA.EXAMPLE", IDN, True),
    (IDN + ":80", IDN, True),
    ("bücher.example", IDN, False),                  # a U-label Host is never mapped
    ("BÜCHER.example", IDN, False),
    ("ex\u0430mple.com", "example.com", False),      # mixed script, U-label
    (MIXED, "example.com", False),                   # ... and its A-label
    ("ex\u0430mple.com", MIXED, False),              # a U-label even for its own A-label
    (MIXED, MIXED, True),
    ("xn--bcher-kva.example", "bücher.example", False),  # names arrive as A-labels only
]


@pytest.mark.parametrize(("header", "name", "answered"), HOST_CASES)
def test_host_matches(header: str, name: str, answered: bool) -> None:
    assert host_matches(header, name) is answered


@pytest.mark.parametrize(("header", "name", "answered"), HOST_CASES)
def test_host_cases_over_a_socket(header: str, name: str, answered: bool,
                                  caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    answer = ask(request(header.encode("utf-8")), tokens={TOKEN: (name, KEY_AUTH)})
    assert answer.closed
    assert answer.status == (200 if answered else 404)
    assert answer.body == (KEY_AUTH.encode() if answered else b"not found\n")
    [line] = log_lines(caplog)
    assert line.endswith(" -> 200" if answered else " -> 404")


def test_host_identity_normalizes() -> None:
    assert host_identity("WWW.Example.COM.:443") == ("dns", "www.example.com")
    assert host_identity("a" * 64 + ".example") is None          # label too long
    assert host_identity(".".join(["a" * 63] * 4)) is None        # name over 253


def test_a_u_label_host_is_logged_readably_and_escaped(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    assert ask(request("bücher\u202e.example".encode()),
               tokens={TOKEN: (IDN, KEY_AUTH)}).status == 404
    [line] = log_lines(caplog)
    assert "Host bücher\\u202e.example," in line       # the RTL override made visible


def test_no_host_is_404(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    for version in ("HTTP/1.0", "HTTP/1.1"):
        assert ask(request(None, version=version)).status == 404
    assert all("Host (none)," in line for line in log_lines(caplog))


# -- what is answered ------------------------------------------------------------------

def test_answers_get_with_connection_close(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    answer = ask(request(extra=b"X-Forwarded-For: 192.0.2.9\r\n"))
    assert answer.closed
    assert answer.status == 200
    assert answer.body == KEY_AUTH.encode()
    assert "Connection: close" in answer.head
    assert f"Content-Length: {len(KEY_AUTH)}" in answer.head
    assert log_lines(caplog) == [f"http-01 request from 127.0.0.1 (for 192.0.2.9): "
                                 f"Host {NAME}, token {TOKEN} -> 200"]


@pytest.mark.parametrize(
    "path",
    [HTTP_01_PREFIX, HTTP_01_PREFIX + "U" * 43, "/", "/index.html", PATH + "?x=1",
     PATH + "/", "/" + PATH, HTTP_01_PREFIX + "../state/x", HTTP_01_PREFIX + "%54" * 22,
     f"http://{NAME}{PATH}", "*"],
)
def test_other_paths_are_404(path: str) -> None:
    answer = ask(request(path=path))
    assert (answer.status, answer.body) == (404, b"not found\n")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "get", "TRACE"])
def test_other_methods_are_404(method: str, caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    assert ask(request(method=method)).status == 404
    [line] = log_lines(caplog)
    assert f": {method} Host {NAME}, token {TOKEN} -> 404" in line


def test_head_is_404_without_a_body() -> None:
    answer = ask(request(method="HEAD"))
    assert answer.closed
    assert answer.status == 404
    assert answer.body == b""
    assert "Content-Length: 10" in answer.head


def test_http_1_0_is_answered() -> None:
    assert ask(request(version="HTTP/1.0")).status == 200


def test_bare_lf_line_ends_are_accepted() -> None:
    assert ask(request().replace(b"\r\n", b"\n")).status == 200


# -- malformed requests: 400, one escaped log line -------------------------------------

MALFORMED = {
    "http/0.9": b"GET " + PATH.encode() + b"\r\n\r\n",
    "http/2 version": request(version="HTTP/2.0"),
    "http/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "lower-case version": request(version="http/1.1"),
    "two spaces": request().replace(b"GET ", b"GET  ", 1),
    "tab separator": request().replace(b"GET ", b"GET\t", 1),
    "extra word": request().replace(b" HTTP/1.1", b" HTTP/1.1 x", 1),
    "empty line first": b"\r\n" + request(),
    "only blank lines": b"\r\n\r\n",
    "nul in target": request(path=PATH + "\x00"),
    "escape in target": request(path=PATH + "\x1b[2J"),
    "non-ascii target": request(path=PATH + "é"),
    "lone cr": request().replace(b"\r\nHost", b"\rHost", 1),
    "no colon": request(extra=b"X-Thing\r\n"),
    "space before colon": request(extra=b"X-Thing : 1\r\n"),
    "empty field name": request(extra=b": 1\r\n"),
    "bad field name": request(extra=b"X(Thing): 1\r\n"),
    "obs-fold": request(extra=b"X-Thing: 1\r\n  continued\r\n"),
    "control in value": request(extra=b"X-Forwarded-For: \x1b]0;owned\x07\r\n"),
    "cr in value": request(extra=b"X-Thing: a\rb\r\n"),
    "two hosts": request(extra=b"Host: evil.example\r\n"),
    "transfer-encoding": request(extra=b"Transfer-Encoding: chunked\r\n")
    + b"5\r\nhello\r\n0\r\n\r\n",
    "gzip chunked": request(method="POST", extra=b"Transfer-Encoding: gzip, chunked\r\n")
    + b"1f\r\n\x1f\x8b\x08\x00" + b"\x00" * 27 + b"\r\n0\r\n\r\n",
    "content-length": request(extra=b"Content-Length: 5\r\n") + b"hello",
    "huge content-length": request(extra=b"Content-Length: " + b"9" * 40 + b"\r\n"),
    "negative content-length": request(extra=b"Content-Length: -1\r\n"),
    "two content-lengths": request(extra=b"Content-Length: 0\r\nContent-Length: 7\r\n"),
    "post with body": request(method="POST", extra=b"Content-Length: 3\r\n") + b"a=b",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_are_400(raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    answer = ask(raw)
    assert answer.closed
    assert (answer.status, answer.body) == (400, b"bad request\n")
    [line] = log_lines(caplog)
    assert line.startswith("http-01 request from 127.0.0.1")
    assert ": refused: " in line
    assert line.endswith(" -> 400")


def test_the_log_line_escapes_what_it_quotes(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    assert ask(request(path=PATH + "\x1b[2J")).status == 400
    assert ask(request(extra=b"X-Forwarded-For: \xc2\x9b31m\r\n")).status == 200   # UTF-8
    assert ask(request(extra=b"X-Forwarded-For: \x9b31m\r\n")).status == 200       # a byte
    refused, utf8, byte = log_lines(caplog)
    assert "\\x1b[2J" in refused
    assert "(for \\x9b31m)" in utf8
    assert "(for \\x9b31m)" in byte


def test_a_content_length_of_zero_is_no_body() -> None:
    assert ask(request(extra=b"Content-Length: 0\r\n")).status == 200


@pytest.mark.parametrize(
    "junk",
    [bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]) + bytes(500),
     random.Random("junk").randbytes(4096).replace(b"\n", b"") + b"\x00", b"\x00",
     b"GET /\x00",
     b"\xff\xfe\xfd\r\n\r\n"],
    ids=["tls clienthello", "random", "nul", "nul in line", "binary line"],
)
def test_binary_junk_is_400_at_once(junk: bytes, caplog: pytest.LogCaptureFixture) -> None:
    # No complete head ever arrives: the answer must not wait for the head's deadline.
    capture(caplog)
    answer = ask(junk)
    assert answer.closed
    assert answer.status == 400
    [line] = log_lines(caplog)
    assert "refused: not a request line" in line or "refused: bad request line" in line


# -- size bounds -----------------------------------------------------------------------

def _padded(size: int) -> bytes:
    """A valid request whose head is exactly ``size`` bytes."""
    base = request(extra=b"X-Pad: \r\n")
    return request(extra=b"X-Pad: " + b"p" * (size - len(base)) + b"\r\n")


def test_a_head_of_exactly_the_bound_is_answered() -> None:
    raw = _padded(MAX_HEAD)
    assert len(raw) == MAX_HEAD
    assert ask(raw).status == 200


@pytest.mark.parametrize(
    "raw",
    [_padded(MAX_HEAD + 1),
     request(path=PATH + "a" * 9000),
     request(extra=b"X-Big: " + b"a" * 20000 + b"\r\n"),
     request(extra=b"".join(b"X-%d: 1\r\n" % i for i in range(101))),
     request(extra=b"X-Many: 1\r\n" * 2000),
     b"G" * 100_000],
    ids=["one over", "long target", "one big field", "101 fields", "many fields", "no end"],
)
def test_oversized_heads_are_431(raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    answer = ask(raw)
    assert answer.closed
    assert answer.status == 431
    [line] = log_lines(caplog)
    assert line.endswith(" -> 431")


def test_parse_head_refuses_bodies_without_reading_them() -> None:
    head = request(extra=b"Content-Length: 1000000000\r\n")
    with pytest.raises(BadRequest, match="a request body"):
        parse_head(head)


# -- nothing raises out of a connection ------------------------------------------------

def test_a_failing_lookup_is_one_line_not_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)

    class Exploding(dict[str, tuple[str, str]]):
        def get(self, key: str, default: object = None) -> tuple[str, str]:  # type: ignore[override]
            raise RuntimeError("boom\nsecond line")

    answer = ask(request(), tokens=Exploding())
    assert answer.closed
    assert answer.raw == b""
    [line] = log_lines(caplog, "http-01 connection")
    assert "RuntimeError: boom\\nsecond line" in line


def test_the_serve_path_does_not_import_aiohttp() -> None:
    code = ("import sys, certfleet.cli, certfleet.cli.challenge, certfleet.serve; "
            "sys.exit('aiohttp' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_long_method_is_cut_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    assert ask(request(method="X" * 5000)).status == 404
    [line] = log_lines(caplog)
    assert len(line) < 400


def test_listens_on_ipv6_and_answers_an_ipv6_literal_host() -> None:
    async def scenario() -> tuple[Answer, Answer]:
        responder = Responder("::1", 0, {TOKEN: ("::1", KEY_AUTH)}.get)
        await responder.start()
        port = responder.sockets[0][1]
        try:
            answers = []
            for host in (f"[::1]:{port}", "::1"):
                reader, writer = await asyncio.open_connection("::1", port)
                writer.write(request(host))
                answers.append(await read_all(reader, 5))
                writer.close()
            return answers[0], answers[1]
        finally:
            await responder.stop()

    bracketed, bare = asyncio.run(scenario())
    assert (bracketed.status, bracketed.body) == (200, KEY_AUTH.encode())
    assert bare.status == 404


# -- nothing from the wire raises anything but BadRequest ------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600) | st.builds(
    lambda line, fields: line + b"\r\n" + b"\r\n".join(fields) + b"\r\n\r\n",
    st.sampled_from([b"GET / HTTP/1.1", b"GET " + PATH.encode() + b" HTTP/1.0"]),
    st.lists(st.binary(max_size=40), max_size=5)))
def test_parse_head_only_ever_raises_bad_request(raw: bytes) -> None:
    assert early_fault(raw) is None or isinstance(early_fault(raw), str)
    end = head_end(raw)
    try:
        head = parse_head(raw[:end] if end else raw)
    except BadRequest as bad:
        status = bad.status
    else:
        status = 0
        assert head.version in ("HTTP/1.0", "HTTP/1.1")
    assert status in (0, 400, 431)


def test_white_space_before_a_bad_byte_is_refused_in_time_linear_in_its_length() -> None:
    """A lazy field value between two runs of white space backtracks in the cube of their
    length: a request whose head was one header of 8,000 spaces and a NUL held the
    responder's event loop for minutes. Refused in a child given 30 s (it takes
    milliseconds)."""
    code = ("from certfleet.solvers.http_head import BadRequest, MAX_HEAD, parse_head\n"
            "head = b'GET / HTTP/1.1\\r\\nX:' + b' ' * (MAX_HEAD - 30) + b'\\x00\\r\\n\\r\\n'\n"
            "try:\n"
            "    parse_head(head)\n"
            "except BadRequest as bad:\n"
            "    print(bad.status, bad.reason[:20])\n")
    assert python_within(code) == "400 bad header line X:  \n"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_host_matches_is_exact(header: str) -> None:
    if host_matches(header, NAME):
        host = header.strip(" \t").lower()
        assert host.rpartition(":")[0] in (NAME, NAME + ".") or host in (NAME, NAME + ".")


def test_a_slow_blocking_lookup_holds_up_only_its_own_request() -> None:
    """The shared store's lookup asks the database (``blocking``): while one request waits
    for its answer, another is answered, and then the first."""
    release = threading.Event()
    slow = "s" * 43

    def lookup(token: str) -> tuple[str, str] | None:
        if token == slow:
            release.wait(10)     # what the database would take, at worst
            return (NAME, "slow." + KEY_AUTH)
        return (NAME, KEY_AUTH) if token == TOKEN else None

    async def scenario() -> list[str]:
        responder = Responder("127.0.0.1", 0, lookup, blocking=True)
        await responder.start()
        port = responder.sockets[0][1]
        order: list[str] = []

        async def one(path: str, label: str) -> None:
            answer = await exchange(port, request(path=path), timeout=15)
            assert answer.status == 200, answer.raw
            order.append(label)
            if label == "fast":
                release.set()

        try:
            await asyncio.gather(one(HTTP_01_PREFIX + slow, "slow"), one(PATH, "fast"))
        finally:
            release.set()
            await responder.stop()
        return order

    assert asyncio.run(scenario()) == ["fast", "slow"]


def test_a_lookup_that_cannot_be_made_is_503_and_says_why(
        caplog: pytest.LogCaptureFixture) -> None:
    """The shared store's database did not answer: not "no such token" (404) but 503, and
    the log line names the fault, so the CA's error and the operator see the difference."""
    capture(caplog)

    def lookup(token: str) -> tuple[str, str] | None:
        raise StoreError("database cf@db:5432/cf: connection lost: timeout")

    async def scenario() -> Any:
        responder = Responder("127.0.0.1", 0, lookup, blocking=True)
        await responder.start()
        try:
            return await exchange(responder.sockets[0][1], request(), timeout=15)
        finally:
            await responder.stop()

    answer = asyncio.run(scenario())
    assert answer.status == 503
    assert answer.body == b"tokens unavailable\n"
    [line] = log_lines(caplog)
    assert line.endswith(": database cf@db:5432/cf: connection lost: timeout -> 503")
