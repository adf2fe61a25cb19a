"""The http-01 responder's view of a request: its head, parsed strictly, and the Host rule.

Touches nothing: bytes in, a ``Head`` or a ``BadRequest`` out. Only the request line and
the header fields are ever parsed; whatever follows the blank line (a body, a pipelined
request) is not looked at here.

The request line must be ``METHOD SP origin-or-other-target SP HTTP/1.0|HTTP/1.1``;
lines end in CRLF or a bare LF (RFC 9112 §2.2 allows recognizing LF); a lone CR, any other
control character, a folded header line (obs-fold), a field name that is not a token, more
than ``MAX_HEADERS`` fields, two Host fields (RFC 9112 §3.2: 400), or any sign of a request
body (``Transfer-Encoding``, a ``Content-Length`` other than 0) is a ``BadRequest`` (400).
Bodies are refused rather than skipped, so no body is ever read, decoded or inflated.

Host (``host_identity``), decided strictly, because the CA sends exactly the A-label it
validates (RFC 8555 §8.3, with the port when it is not 80):

* ``name`` or ``name:port``: any port of 1 to 5 digits is accepted (the CA's port is not ours
  to check: a load balancer forwards ``$host`` without it, a test CA uses its own port);
  an empty port (``name:``), a non-digit port or a second colon is no match.
* Upper case is folded (DNS names are case-insensitive); one trailing dot (the absolute
  form of the same name) is dropped; two are no match.
* IPv4 as a dotted quad only (no leading zeros, no trailing dot, no brackets).
* IPv6 only in brackets, with or without a port (RFC 3986 IP-literal); a bare IPv6 is
  ambiguous with a port and is no match; zone IDs and IPv4-mapped forms never match an
  IPv4 identifier. ``[example.com]`` (brackets around a non-IP) is no match.
* Only ASCII: the Host is a URI host, so an internationalized name arrives as its A-label
  (``xn--``), compared after lower-casing only. A U-label Host is no match even when it
  would encode to the validated name: mapping untrusted Unicode (UTS 46, mixed scripts,
  confusables) is exactly what the strict comparison avoids, and no CA sends one.
* Percent-encoding, spaces, ``_`` and anything else outside letters, digits, hyphens and
  dots is no match.
"""

from __future__ import annotations

import ipaddress
import re

from ..http_grammar import FIELD_LINE, TOKEN
from ..protocol.frozen import frozen

MAX_HEAD = 8192          # request line + header fields + the blank line, in bytes
MAX_HEADERS = 100

_REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) (HTTP/1\.[01])")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_TERMINATOR = re.compile(rb"\r?\n\r?\n\Z")
_NOT_IN_LINE = re.compile(rb"[^\x20-\x7e]")       # in the request line: printable ASCII only
_PORT = re.compile(r"[0-9]{1,5}")
_DOTTED = re.compile(r"[0-9.]+")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")

Identity = tuple[str, "str | ipaddress.IPv4Address | ipaddress.IPv6Address"]


class BadRequest(Exception):
    """The request is refused with ``status`` (400, or 431 when the head is too large)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@frozen
class Head:
    method: str
    target: str
    version: str
    fields: tuple[tuple[str, str], ...]    # (lower-case name, value), in order, latin-1

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    @property
    def host(self) -> str | None:
        hosts = self.get_all("host")
        return hosts[0] if hosts else None


def head_end(buffer: bytes, start: int = 0) -> int | None:
    """The index just past the blank line ending the head, or None if not there yet.

    ``start`` is how far an earlier call already looked: trickled bytes are not rescanned.
    """
    found = _HEAD_END.search(buffer, max(0, start - 3))
    return found.end() if found else None


def text_of(raw: bytes) -> str:
    """Bytes from the wire as text for a message: UTF-8 if they are, else latin-1 (one
    character a byte). Not yet safe to print: log lines pass it through ``safe_text``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def early_fault(buffer: bytes, start: int = 0) -> str | None:
    """Why the request line received so far can already be refused, or None.

    Binary junk (a TLS ClientHello, random bytes) or a complete but bad request line gets
    its 400 at once instead of holding a connection until the head's deadline. ``start``
    is how far an earlier call already looked at an incomplete line.
    """
    end = buffer.find(b"\n")
    line = buffer if end < 0 else buffer[:end]
    if line.endswith(b"\r"):
        line = line[:-1]
    if _NOT_IN_LINE.search(line, min(start, len(line))) is not None:
        return f"not a request line: {text_of(line[:80])}"
    if end >= 0 and _REQUEST_LINE.fullmatch(line) is None:
        return f"bad request line {text_of(line)}"
    return None


def parse_head(head: bytes, max_head: int = MAX_HEAD) -> Head:
    """Parse a complete head (as delimited by ``head_end``)."""
    if len(head) > max_head:
        raise BadRequest(f"request head over {max_head} bytes", 431)
    lines = _LINE_END.split(_TERMINATOR.sub(b"", head))
    request = _REQUEST_LINE.fullmatch(lines[0])
    if request is None:
        raise BadRequest(f"bad request line {text_of(lines[0])}")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(f"more than {MAX_HEADERS} header fields", 431)
    fields = []
    for line in lines[1:]:
        field = FIELD_LINE.fullmatch(line)
        if field is None:
            raise BadRequest(f"bad header line {text_of(line)}")
        fields.append((field[1].decode("ascii").lower(),
                       field[2].strip(b" \t").decode("latin-1")))
    parsed = Head(request[1].decode("ascii"), request[2].decode("ascii"),
                  request[3].decode("ascii"), tuple(fields))
    if len(parsed.get_all("host")) > 1:
        raise BadRequest("more than one Host field")
    if parsed.get_all("transfer-encoding"):
        raise BadRequest("a request body (Transfer-Encoding)")
    lengths = parsed.get_all("content-length")
    if any(length != "0" for length in lengths):
        raise BadRequest(f"a request body (Content-Length {lengths[0]})")
    return parsed


def host_identity(value: str) -> Identity | None:
    """The Host field's host as ("ip", address) or ("dns", lower-case name), port dropped;
    None when the value is not one this responder can ever answer (see the module doc)."""
    text = value.strip(" \t")
    if not text or not text.isascii():
        return None
    if text.startswith("["):
        literal, sep, rest = text[1:].partition("]")
        if not sep or "%" in literal or (rest and not (
                rest[0] == ":" and _PORT.fullmatch(rest[1:]) and int(rest[1:]) < 65536)):
            return None
        try:
            return "ip", ipaddress.IPv6Address(literal)
        except ValueError:
            return None
    host, sep, port = text.partition(":")
    if sep and not (_PORT.fullmatch(port) and int(port) < 65536):
        return None
    if _DOTTED.fullmatch(host):
        try:
            return "ip", ipaddress.IPv4Address(host)
        except ValueError:
            return None
    host = host.lower().removesuffix(".")
    if len(host) > 253 or not _DNS_NAME.fullmatch(host):
        return None
    return "dns", host


def name_identity(name: str) -> Identity:
    """The identity of the name being validated (an A-label or an IP address)."""
    try:
        return "ip", ipaddress.ip_address(name)
    except ValueError:
        return "dns", name.lower()


def host_matches(header: str, name: str) -> bool:
    """Whether a Host field value names exactly ``name`` (see the module doc)."""
    got = host_identity(header)
    return got is not None and got == name_identity(name)
