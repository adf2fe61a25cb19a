"""certfleet.solvers.http_server helpers: --http-listen parsing and Host header matching."""

from __future__ import annotations

import pytest

from certfleet.errors import ConfigError
from certfleet.solvers.http_server import host_matches, parse_listen


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


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("example.com", "example.com"),
        ("EXAMPLE.com", "example.com"),
        ("example.com", "Example.COM"),
        ("example.com.", "example.com"),
        ("example.com:80", "example.com"),
        (" example.com ", "example.com"),
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:80", "192.0.2.1"),
        ("[2001:db8::1]:80", "2001:db8::1"),
        ("[2001:db8::1]", "2001:0db8::1"),
        ("2001:db8::1", "2001:db8::1"),
    ],
)
def test_host_matches(header: str, name: str) -> None:
    assert host_matches(header, name)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("evil.example", "example.com"),
        ("example.com.evil.example", "example.com"),
        ("www.example.com", "example.com"),
        ("", "example.com"),
        ("192.0.2.2", "192.0.2.1"),
        ("[2001:db8::2]:80", "2001:db8::1"),
        ("example.com:80:80", "example.com"),
    ],
)
def test_host_does_not_match(header: str, name: str) -> None:
    assert not host_matches(header, name)
