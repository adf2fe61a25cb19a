"""HTTP/1.1 framing for certfleet's one client (RFC 9112): a request's bytes, and a response
read strictly from a stream.

Touches only the ``asyncio.StreamReader`` it is given. The peer is a CA or a site that
``check`` probes, so every byte is hostile until parsed:

* The head (status line to blank line) is at most ``MAX_HEAD`` bytes, in at most
  ``MAX_HEADERS`` fields; a longer head is refused as soon as its size shows, nothing past
  it is parsed. Lines end in CRLF or a bare LF (RFC 9112 §2.2); a lone CR or any other
  control character in a line is refused.
* The status line is ``HTTP/1.0`` or ``HTTP/1.1``, a status from 100 to 999, an optional
  reason. A
  folded field line (obs-fold) is joined to the one before with a space, as §5.2 asks of a
  user agent; a field name that is not a token, or white space before the colon, is refused.
* Framing (§6.3): no body for a HEAD, a 1xx, 204 or 304; else ``Transfer-Encoding:
  chunked`` (any other coding is refused, and so is a ``Content-Length`` beside it); else
  ``Content-Length`` (digits only; repeats must agree); else the body ends with the
  connection. Up to ``MAX_INFORMATIONAL`` 1xx answers before the final one are skipped;
  101 is refused.
* A chunk's size line and the end of its data are CRLF, never a bare LF (as h11 has it); a
  body comes in at most ``MAX_CHUNKS`` chunks.
* A body is never read beyond ``max_body``: a declared length above it is refused before
  a byte of the body is read; chunk sizes and chunk lines are bounded; trailers are read
  under the head's bounds and dropped.
* The connection is kept for another exchange only after an HTTP/1.1 answer framed by its
  length or its chunks, without ``Connection: close``.

What a request carries is checked too, since a URL comes from the CA: the method must be a
token, the target printable ASCII without spaces, field names tokens, field values free of
control characters other than tab.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from .http_grammar import FIELD_LINE, TOKEN
from .protocol.frozen import frozen

MAX_HEAD = 64 * 1024      # a response's status line and header fields, the blank line too
MAX_HEADERS = 256         # header fields in one response
MAX_CHUNK_LINE = 1024     # a chunk's size line, extensions included
MAX_INFORMATIONAL = 16    # 1xx answers before the final one
MAX_CHUNKS = 4096         # chunks in one body: a 1 MiB body in 1-byte chunks is 6 MiB to parse
READ_CHUNK = 65536

_TOKEN = re.compile(TOKEN)
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?")
_FOLDED = re.compile(rb"[ \t][\t\x20-\x7e\x80-\xff]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[\t\x20-\x7e\x80-\xff]*)?")
_TARGET = re.compile(r"[\x21-\x7e]+")
_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_DIGITS = re.compile(r"[0-9]{1,18}")

CHUNKED = -1              # body_length(): the body comes in chunks
UNTIL_CLOSE = -2          # body_length(): the body ends with the connection


class FramingError(Exception):
    """The bytes are not an HTTP/1.1 exchange certfleet accepts; the text says why."""


class HeadTooLarge(FramingError):
    def __init__(self) -> None:
        super().__init__(f"response headers exceed {MAX_HEAD} bytes")


def _bad(reason: str) -> FramingError:
    return FramingError(f"not a valid HTTP/1.1 answer: {reason}")


@frozen
class Head:
    minor: int                               # HTTP/1.minor
    status: int
    headers: tuple[tuple[str, str], ...]    # lower-case names, in order, repeats kept


@frozen
class Response:
    head: Head
    body: bytes
    keep_alive: bool      # the connection may carry the next exchange


def request(method: str, target: str, headers: Sequence[tuple[str, str]],
            body: bytes | None) -> bytes:
    """The bytes of a request; a ``body`` gets its ``Content-Length``."""
    if not _TOKEN.fullmatch(method.encode("ascii", "replace")):
        raise FramingError(f"not an HTTP method: {method[:40]!r}")
    if not _TARGET.fullmatch(target):
        raise FramingError(f"not a request target (printable ASCII, no spaces): "
                           f"{target[:200]!r}")
    lines = [f"{method} {target} HTTP/1.1".encode("ascii")]
    for name, value in headers:
        try:
            if not _TOKEN.fullmatch(name.encode("ascii")) or not _VALUE.fullmatch(value):
                raise UnicodeError
            lines.append(f"{name}: {value}".encode())
        except UnicodeError:   # a name not ASCII, a value with a control character or a
            # lone surrogate (which has no bytes)
            raise FramingError(f"not a header field: {name[:40]!r}: {value[:80]!r}") from None
    if body is not None:
        lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def parse_head(lines: Sequence[bytes]) -> Head:
    """The head from its lines, line ends removed, the blank line not among them."""
    if not lines or not (status := _STATUS_LINE.fullmatch(lines[0])):
        raise _bad(f"illegal status line {lines[0][:80]!r}" if lines else "no status line")
    fields: list[tuple[bytes, list[bytes]]] = []     # a name, its value's lines
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            if not fields or not _FOLDED.fullmatch(line):
                raise _bad(f"illegal header line {line[:80]!r}")
            fields[-1][1].append(line)
            continue
        if not (field := FIELD_LINE.fullmatch(line)):
            raise _bad(f"illegal header line {line[:80]!r}")
        if len(fields) == MAX_HEADERS:
            raise FramingError(f"too many headers (more than {MAX_HEADERS})")
        fields.append((field[1], [field[2]]))
    return Head(int(status[1]), int(status[2]), tuple(
        (name.decode("ascii").lower(),
         b" ".join(part.strip(b" \t") for part in parts).strip(b" \t").decode("latin-1"))
        for name, parts in fields))


def body_length(method: str, head: Head) -> int:
    """Bytes of body to read, or ``CHUNKED``, or ``UNTIL_CLOSE`` (RFC 9112 §6.3). The
    framing fields must make sense even in an answer that has no body."""
    framing = _framing(head)
    if method == "HEAD" or head.status < 200 or head.status in (204, 304):
        return 0
    return framing


def _framing(head: Head) -> int:
    named = {name for name, _ in head.headers}
    if "transfer-encoding" in named:
        codings = _values(head, "transfer-encoding")
        if head.minor == 0 or [c.lower() for c in codings] != ["chunked"]:
            raise _bad(f"transfer coding {', '.join(codings)[:80]!r} is not supported")
        if "content-length" in named:
            raise _bad("both Transfer-Encoding and Content-Length")
        return CHUNKED
    if "content-length" not in named:
        return UNTIL_CLOSE
    lengths = _values(head, "content-length")
    if len(set(lengths)) != 1 or not _DIGITS.fullmatch(lengths[0]):
        raise _bad(f"Content-Length {', '.join(lengths)[:80]!r}")
    return int(lengths[0])


def keeps_alive(head: Head, length: int) -> bool:
    """Whether the connection may carry another exchange after this answer."""
    return head.minor == 1 and length != UNTIL_CLOSE \
        and "close" not in (v.lower() for v in _values(head, "connection"))


def _values(head: Head, name: str) -> list[str]:
    """Every element of the comma-separated lists in the fields named ``name``, empty ones
    kept (a framing field with one is refused)."""
    return [part.strip() for k, v in head.headers if k == name for part in v.split(",")]


async def read_response(reader: asyncio.StreamReader, method: str,
                        max_body: int) -> Response:
    """The final answer to a request of ``method``: 1xx answers before it are skipped.
    ``ConnectionResetError`` when the connection closes before a byte of it arrives."""
    for count in range(MAX_INFORMATIONAL + 1):
        head = parse_head(await _read_lines(reader, MAX_HEAD, first=count == 0))
        if head.status == 101:
            raise _bad("101 Switching Protocols was not asked for")
        if head.status >= 200:
            break
    else:
        raise _bad(f"more than {MAX_INFORMATIONAL} informational (1xx) answers")
    length = body_length(method, head)
    if length > max_body:
        raise FramingError(f"response of {length} bytes exceeds {max_body}")
    if length == CHUNKED:
        body = await _read_chunks(reader, max_body)
    elif length == UNTIL_CLOSE:
        body = await _read_to_end(reader, max_body)
    else:
        body = await _exactly(reader, length)
    return Response(head, body, keeps_alive(head, length))


async def _read_lines(reader: asyncio.StreamReader, budget: int, *,
                      first: bool = False) -> list[bytes]:
    """Lines up to the blank one, ends removed, ``budget`` bytes at most in all."""
    lines: list[bytes] = []
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise HeadTooLarge() from None
        except asyncio.IncompleteReadError as exc:
            if first and not lines and not exc.partial:
                raise ConnectionResetError("the server closed the connection") from None
            raise _bad("the connection closed within the head") from None
        budget -= len(line)
        if budget < 0:
            raise HeadTooLarge()
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if not line:
            return lines
        if b"\r" in line:
            raise _bad(f"a lone CR in {line[:80]!r}")
        lines.append(line)


async def _read_chunks(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    for _ in range(MAX_CHUNKS + 1):
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _bad("a chunk size line too long") from None
        except asyncio.IncompleteReadError:
            raise _bad("the connection closed within a chunked body") from None
        match = _CHUNK_SIZE.fullmatch(line.removesuffix(b"\r\n"))
        if len(line) > MAX_CHUNK_LINE or not match:
            raise _bad(f"illegal chunk size line {line[:80]!r}")
        step = int(match[1], 16)
        if step == 0:
            trailers = await _read_lines(reader, MAX_HEAD)   # bounded, checked, dropped
            parse_head([b"HTTP/1.1 200", *trailers])
            return bytes(body)
        if len(body) + step > max_body:
            raise FramingError(f"response exceeds {max_body} bytes")
        body += await _exactly(reader, step)
        if await _exactly(reader, 2) != b"\r\n":
            raise _bad("a chunk not followed by CRLF")
    raise _bad(f"more than {MAX_CHUNKS} chunks")


async def _read_to_end(reader: asyncio.StreamReader, max_body: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while data := await reader.read(READ_CHUNK):
        size += len(data)
        if size > max_body:
            raise FramingError(f"response exceeds {max_body} bytes")
        chunks.append(data)
    return b"".join(chunks)


async def _exactly(reader: asyncio.StreamReader, count: int) -> bytes:
    try:
        return await reader.readexactly(count)
    except asyncio.IncompleteReadError as exc:
        raise _bad(f"the connection closed {count - len(exc.partial)} bytes short "
                   f"of the body") from None
