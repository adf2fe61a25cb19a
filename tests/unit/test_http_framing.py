"""HTTP/1.1 framing (http_framing): each rule of the module's docstring on hand-made
answers, then answers made at random read by it and by h11, a parser used by servers and
clients elsewhere: where both read an answer they must agree, and it must read nothing h11
refuses."""

from __future__ import annotations

import asyncio

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certfleet.http_framing import (
    MAX_CHUNKS,
    MAX_HEAD,
    MAX_HEADERS,
    MAX_INFORMATIONAL,
    FramingError,
    Response,
    read_response,
    request,
)

from ..children import python_within

LIMIT = 4096


def read(data: bytes, method: str = "GET", max_body: int = LIMIT) -> Response:
    """The answer ``read_response`` reads from ``data`` and then the end of the stream."""
    async def go() -> Response:
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        reader.feed_data(data)
        reader.feed_eof()
        return await read_response(reader, method, max_body)
    return asyncio.run(go())


def refused(data: bytes, method: str = "GET") -> str:
    with pytest.raises(FramingError) as caught:
        read(data, method)
    return str(caught.value)


def test_a_sized_answer_and_its_fields() -> None:
    answer = read(b"HTTP/1.1 201 Created\r\nLocation: /a\r\nX-A: 1\r\nx-a:  2 \r\n"
                  b"X-B:\tXbX\t\r\nContent-Length: 3\r\n\r\nabcNEXT")
    assert (answer.head.status, answer.body, answer.keep_alive) == (201, b"abc", True)
    assert answer.head.headers == (("location", "/a"), ("x-a", "1"), ("x-a", "2"),
                                   ("x-b", "XbX"), ("content-length", "3"))


def test_bare_line_feeds_and_an_empty_reason() -> None:
    assert read(b"HTTP/1.1 200\nContent-Length: 1\n\nx").body == b"x"
    assert read(b"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx").body == b"x"


@pytest.mark.parametrize("line", [b"HTTP/1.1 200 OK\rX: 1", b"X: a\rb", b"X: a\x00b",
                                  b"X : 1", b"X\x7f: 1", b": 1", b"X-\xe9: 1"])
def test_a_bad_field_line_is_refused(line: bytes) -> None:
    if line.startswith(b"HTTP"):
        assert "lone CR" in refused(line + b"\r\n\r\n")
    else:
        refused(b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("status", [b"HTTP/2.0 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 2000",
                                    b"http/1.1 200 OK", b"HTTP/1.1  200 OK", b"SSH-2.0-OpenSSH",
                                    b"HTTP/1.1 200 \x01"])
def test_a_bad_status_line_is_refused(status: bytes) -> None:
    assert "illegal status line" in refused(status + b"\r\nContent-Length: 0\r\n\r\n")


def test_a_folded_line_is_joined_with_a_space() -> None:
    answer = read(b"HTTP/1.1 200 OK\r\nX: Xa\r\n  b \r\n\tcX\r\nContent-Length: 0\r\n\r\n")
    assert answer.head.headers[0] == ("x", "Xa b cX")
    assert "illegal header line" in refused(b"HTTP/1.1 200 OK\r\n X: a\r\n\r\n")


def test_the_head_is_bounded_in_bytes_and_fields() -> None:
    def head_of(size: int) -> bytes:
        start = b"HTTP/1.1 204 No Content\r\n"
        return start + b"X: " + b"a" * (size - len(start) - 7) + b"\r\n\r\n"
    assert read(head_of(MAX_HEAD)).head.status == 204
    assert refused(head_of(MAX_HEAD + 1)) == f"response headers exceed {MAX_HEAD} bytes"
    assert refused(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * MAX_HEAD + b"\r\n\r\n") \
        == f"response headers exceed {MAX_HEAD} bytes"
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS))
    assert read(b"HTTP/1.1 204 OK\r\n" + fields + b"\r\n").head.status == 204
    assert refused(b"HTTP/1.1 204 OK\r\n" + fields + b"Y: 1\r\n\r\n") \
        == f"too many headers (more than {MAX_HEADERS})"


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_answers_without_a_body(method: str, status: int) -> None:
    answer = read(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status, method)
    assert (answer.body, answer.keep_alive) == (b"", True)


def test_informational_answers_are_skipped_but_not_a_switch() -> None:
    answer = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: </a>\r\n\r\n"
                  b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert (answer.head.status, answer.body) == (200, b"ok")
    assert "101" in refused(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")
    assert "closed within the head" in refused(b"HTTP/1.1 100 Continue\r\n\r\n")
    final = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert read(b"HTTP/1.1 100 Continue\r\n\r\n" * MAX_INFORMATIONAL + final).head.status \
        == 204
    assert "more than 16 informational" in refused(
        b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_INFORMATIONAL + 1) + final)


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    answer = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
                  b"3;name=value\r\nabc\r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n")
    assert (answer.body, answer.keep_alive) == (b"abc0123456789", True)


@pytest.mark.parametrize(("chunks", "said"), [
    (b"3\r\nabcX\r\n0\r\n\r\n", "not followed by CRLF"),
    (b"3\r\nabc\n0\r\n\r\n", "not followed by CRLF"),
    (b"3\nabc\r\n0\r\n\r\n", "illegal chunk size line"),
    (b"g\r\nabc\r\n0\r\n\r\n", "illegal chunk size line"),
    (b"-1\r\n", "illegal chunk size line"),
    (b"1" * 16 + b"\r\n", "illegal chunk size line"),
    (b"3;" + b"e" * 1100 + b"\r\nabc\r\n0\r\n\r\n", "illegal chunk size line"),
    (b"3\r\nab", "short of the body"),
    (b"3\r\nabc\r\n", "closed within a chunked body"),
    (b"3\r\nabc\r\n0\r\nX : 1\r\n\r\n", "illegal header line"),
])
def test_a_bad_chunked_body_is_refused(chunks: bytes, said: str) -> None:
    assert said in refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)


@pytest.mark.parametrize("fields", [
    b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked, chunked",
    b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked\r\nContent-Length: 3",
    b"Content-Length: 3\r\nContent-Length: 4", b"Content-Length: 3, 4",
    b"Content-Length: -3", b"Content-Length: 0x3", b"Content-Length: 3 3",
    b"Content-Length: " + b"9" * 19, b"Content-Length: ", b"Transfer-Encoding: ",
    b"Content-Length: ,",
])
def test_framing_fields_that_do_not_agree_are_refused(fields: bytes) -> None:
    refused(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n\r\nabcd")


def test_chunked_in_an_http_1_0_answer_is_refused() -> None:
    refused(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")


def test_repeated_lengths_that_agree_are_one() -> None:
    assert read(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3, 3\r\n\r\n"
                b"abc").body == b"abc"


@pytest.mark.parametrize(("answer", "kept"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", True),
    (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\nx", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", False),
    (b"HTTP/1.1 200 OK\r\n\r\nx until the end", False),
])
def test_which_answers_keep_the_connection(answer: bytes, kept: bool) -> None:
    assert read(answer).keep_alive is kept


def test_a_body_until_the_end_of_the_connection() -> None:
    assert read(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100).body == b"x" * 100


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"800\r\n" + b"x" * 0x800 + b"\r\n" + b"801\r\n" + b"x" * 0x801 + b"\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (LIMIT + 1),
])
def test_no_body_is_read_beyond_the_limit(answer: bytes) -> None:
    assert "exceeds" in refused(answer)


def test_a_closed_connection_before_any_answer_is_a_reset() -> None:
    with pytest.raises(ConnectionResetError, match=r"^the server closed the connection$"):
        read(b"")
    assert "closed within the head" in refused(b"HTTP/1.1 200 OK\r\n")


def test_a_request_s_bytes() -> None:
    assert request("POST", "/new-order?x=1", [("host", "ca:14000"), ("x", "a\tb")], b"{}") \
        == (b"POST /new-order?x=1 HTTP/1.1\r\nhost: ca:14000\r\nx: a\tb\r\n"
            b"content-length: 2\r\n\r\n{}")
    assert request("HEAD", "/n", [], None) == b"HEAD /n HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(("method", "target", "field"), [
    ("GET\r\nX", "/", ("a", "b")), ("G T", "/", ("a", "b")), ("", "/", ("a", "b")),
    ("GET", "/a b", ("a", "b")), ("GET", "/a\r\nX: 1", ("a", "b")), ("GET", "/é", ("a", "b")),
    ("GET", "", ("a", "b")), ("GET", "/", ("a b", "c")), ("GET", "/", ("a", "b\r\nX: 1")),
    ("GET", "/", ("a", "b\nc")), ("GET", "/", ("a", "b\x00")), ("GET", "/", ("é", "b")),
])
def test_a_request_that_would_not_be_one_request_is_refused(
        method: str, target: str, field: tuple[str, str]) -> None:
    with pytest.raises(FramingError):
        request(method, target, [field], None)


# ---------------------------------------------------------------- against h11

def via_h11(data: bytes, method: str) -> tuple[int, tuple[tuple[str, str], ...], bytes, bool]:
    """What h11 reads from ``data`` then the end of the stream, as a client that sent a
    request of ``method``; raises ``h11.RemoteProtocolError`` where h11 refuses it."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "ca")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    ended, body = False, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if ended:
                raise h11.RemoteProtocolError("ends early")
            conn.receive_data(b"")
            ended = True
        elif isinstance(event, h11.Response):
            head = (event.status_code, tuple((k.decode("latin-1"), v.decode("latin-1"))
                                             for k, v in event.headers))
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            kept = not ended and conn.their_state is h11.DONE and conn.our_state is h11.DONE
            return (*head, body, kept)
        elif isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("closed")


_NAMES = st.sampled_from(["x-a", "Location", "Content-Type", "Retry-After", "Replay-Nonce",
                          "Link", "Connection", "Content-Length", "Transfer-Encoding",
                          "X A", "X:A", "", "\xe9"])
_VALUES = st.one_of(
    st.sampled_from(["", "1", "3", "0", " 3 ", "3, 3", "3, 4", "close", "keep-alive",
                     "chunked", "Chunked", "gzip, chunked", "chunked, gzip", "identity",
                     "-1", "+3", "0x3", "99999999999999999999", "\xe9t\xe9", "a\tb"]),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=12))


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, str]:
    eol = draw(st.sampled_from([b"\r\n", b"\n", b"\r\n", b"\r\n", b"\r"]))
    status = draw(st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 201 Created", b"HTTP/1.0 200 OK",
                                   b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 Not Modified",
                                   b"HTTP/1.1 100 Continue", b"HTTP/1.1 404", b"HTTP/1.1 200 ",
                                   b"HTTP/2 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 999 x"]))
    fields = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=5))
    lines = [status] + [f"{k}: {v}".encode("latin-1") for k, v in fields]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(1, len(lines))), b" folded")
    body = draw(st.binary(max_size=20))
    framing = draw(st.sampled_from(["length", "chunked", "none", "raw"]))
    if framing == "length":
        lines.append(b"Content-Length: %d" % draw(st.sampled_from([len(body), len(body) + 1,
                                                                    max(len(body) - 1, 0)])))
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        cut = draw(st.integers(0, len(body)))
        pieces = [p for p in (body[:cut], body[cut:]) if p]
        body = b"".join(b"%x%s%s%s" % (len(p), draw(st.sampled_from([b"", b";e=1", b" "])),
                                       eol, p + eol) for p in pieces)
        body += b"0" + eol + draw(st.sampled_from([b"", b"T: 1" + eol])) + eol
    raw = eol.join(lines) + eol + eol + body
    if draw(st.booleans()):
        raw = raw[:draw(st.integers(0, len(raw)))]
    return raw, draw(st.sampled_from(["GET", "POST", "HEAD"]))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers())
def test_it_reads_as_h11_does_or_refuses(case: tuple[bytes, str]) -> None:
    data, method = case
    try:
        ours = read(data, method, max_body=MAX_HEAD)
    except (FramingError, ConnectionResetError):
        return    # stricter than h11 is allowed (obs-text names, lone CRs, ...)
    try:
        theirs = via_h11(data, method)
    except h11.RemoteProtocolError as exc:
        pytest.fail(f"read an answer h11 refuses ({exc}): {data!r}")
    assert (ours.head.status, ours.body, ours.keep_alive) == (theirs[0], *theirs[2:])
    folded = b"\n " in data or b"\n\t" in data
    assert _fields(ours.head.headers, folded) == _fields(theirs[1], folded)


def _fields(headers: tuple[tuple[str, str], ...], folded: bool) -> tuple[object, ...]:
    """The fields as both parsers may differ without being wrong: h11 keeps one of several
    Content-Length fields that agree, and keeps the white space before an obs-fold (either
    way the fold becomes space, as RFC 9112 §5.2 asks)."""
    lengths = {p.strip() for k, v in headers if k == "content-length" for p in v.split(",")}
    rest = tuple((k, " ".join(v.split()) if folded else v) for k, v in headers
                 if k != "content-length")
    return lengths, rest


LONG = "x" * 300


@pytest.mark.parametrize(("answer", "said"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     "transfer coding 'gzip, chunked' is not supported"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + LONG.encode() + b", chunked\r\n\r\n",
     f"transfer coding {LONG[:80]!r} is not supported"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n"
     b"0\r\n\r\n", "both Transfer-Encoding and Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     "Content-Length '3, 4'"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: " + LONG.encode() + b"\r\n\r\n",
     f"Content-Length {LONG[:80]!r}"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * (MAX_HEAD + 1),
     "a chunk size line too long"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
     "the connection closed within a chunked body"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;" + b"x" * 1100 + b"\r\n",
     f"illegal chunk size line {(b'3;' + b'x' * 1100)[:80]!r}"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
     "a chunk not followed by CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
     "the connection closed within the head"),
    (b"HTTP/1.1 200 OK\r\nX-", "the connection closed within the head"),
    (b"HTTP/1.1 200 OK\r\nX: " + LONG.encode() + b"\r" + LONG.encode() + b"\r\n\r\n",
     f"a lone CR in {(b'X: ' + LONG.encode())[:80]!r}"),
    (LONG.encode() + b"\r\n\r\n", f"illegal status line {LONG.encode()[:80]!r}"),
    (b"\r\nHTTP/1.1 200 OK\r\n\r\n", "no status line"),
    (b"HTTP/1.1 200 OK\r\n" + LONG.encode() + b"\r\n\r\n",
     f"illegal header line {LONG.encode()[:80]!r}"),
    (b"HTTP/1.1 200 OK\r\n " + LONG.encode() + b"\r\n\r\n",
     f"illegal header line {(b' ' + LONG.encode())[:80]!r}"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101 Switching Protocols was not asked for"),
])
def test_what_a_refused_answer_is_called(answer: bytes, said: str) -> None:
    assert refused(answer) == f"not a valid HTTP/1.1 answer: {said}"


def test_a_chunk_size_line_of_the_bound_is_read() -> None:
    line = b"3;" + b"e" * (1024 - 4) + b"\r\n"
    assert len(line) == 1024
    assert read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + line
                + b"abc\r\n0\r\n\r\n").body == b"abc"


def test_a_body_to_the_end_read_in_several_parts_is_bounded_as_a_whole() -> None:
    body = bytes(range(256)) * 400        # 102,400 bytes: more than one read of 65,536
    answer = b"HTTP/1.1 200 OK\r\n\r\n" + body
    assert read(answer, max_body=len(body)).body == body
    with pytest.raises(FramingError, match=f"^response exceeds {len(body) - 1} bytes$"):
        read(answer, max_body=len(body) - 1)


@pytest.mark.parametrize(("method", "target", "field", "said"), [
    ("G\xc9T", "/", ("a", "b"), "not an HTTP method: 'G\xc9T'"),
    ("M" * 50 + " ", "/", ("a", "b"), f"not an HTTP method: {'M' * 40!r}"),
    ("GET", "/" + LONG + " ", ("a", "b"),
     f"not a request target (printable ASCII, no spaces): {('/' + LONG)[:200]!r}"),
    ("GET", "/", ("n\xe9" + LONG, "v"),
     f"not a header field: {('n' + chr(0xe9) + LONG)[:40]!r}: 'v'"),
    ("GET", "/", ("n", "\n" + LONG), f"not a header field: 'n': {chr(10) + LONG[:79]!r}"),
])
def test_what_a_refused_request_is_called(method: str, target: str, field: tuple[str, str],
                                          said: str) -> None:
    with pytest.raises(FramingError) as caught:
        request(method, target, [field], None)
    assert str(caught.value) == said


def test_white_space_before_a_bad_byte_is_refused_in_time_linear_in_its_length() -> None:
    """A lazy value between two runs of white space backtracks in the cube of their length:
    2,000 spaces then a NUL took 19 s, and a head may hold 64 KiB of them, all that time on
    the event loop, where no timeout can fire. Refused in a child given 30 s for a whole
    head of them (in a line, in a folded line, in a trailer), which takes milliseconds."""
    code = (
        "import asyncio\n"
        "from certfleet.http_framing import FramingError, MAX_HEAD, read_response\n"
        "spaces = b' ' * (MAX_HEAD - 100)\n"
        "for answer in (b'HTTP/1.1 200 OK\\r\\nX:' + spaces + b'\\x00\\r\\n\\r\\n',\n"
        "               b'HTTP/1.1 200 OK\\r\\nX: a\\r\\n' + spaces + b'\\x00\\r\\n\\r\\n',\n"
        "               b'HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n'\n"
        "               b'T:' + spaces + b'\\x00\\r\\n\\r\\n'):\n"
        "    async def go():\n"
        "        reader = asyncio.StreamReader(limit=MAX_HEAD)\n"
        "        reader.feed_data(answer)\n"
        "        reader.feed_eof()\n"
        "        try:\n"
        "            await read_response(reader, 'GET', 1000)\n"
        "        except FramingError as exc:\n"
        "            print(str(exc)[:53])\n"
        "    asyncio.run(go())\n")
    said = "not a valid HTTP/1.1 answer: illegal header line b'"
    assert python_within(code).splitlines() == [said + "X:", said + "  ", said + "T:"]


def test_folded_lines_are_joined_once() -> None:
    """Joined at the end, not line by line (which is quadratic in the folds)."""
    answer = read(b"HTTP/1.1 204 No Content\r\nX: a\r\n" + b" b\r\n" * 10000 + b"\r\n")
    assert answer.head.headers == (("x", "a" + " b" * 10000),)


def test_a_status_below_100_is_refused() -> None:
    for status in (b"000", b"099"):
        assert "illegal status line" in refused(b"HTTP/1.1 " + status + b" X\r\n\r\n"
                                                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def test_at_most_so_many_chunks() -> None:
    def chunked(count: int) -> bytes:
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"1\r\nx\r\n" * count + b"0\r\n\r\n")
    assert read(chunked(MAX_CHUNKS), max_body=MAX_CHUNKS).body == b"x" * MAX_CHUNKS
    with pytest.raises(FramingError, match=f"^not a valid HTTP/1.1 answer: more than "
                                           f"{MAX_CHUNKS} chunks$"):
        read(chunked(MAX_CHUNKS + 1), max_body=2 * MAX_CHUNKS)


def test_a_value_without_bytes_is_refused() -> None:
    with pytest.raises(FramingError, match=r"^not a header field: 'x': "):
        request("GET", "/", [("x", "\udcff")], None)
