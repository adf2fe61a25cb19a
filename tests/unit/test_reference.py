"""docs/certfleet.toml.5.md against the parser: every key read is documented, and nothing
documented is a key the parser does not read.

The convention of the page: each key entry starts with a level-3 heading holding only the
key in backticks, or several keys sharing one text separated by ", ":

    ### `ca.directory`
    ### `defaults.key_type`, `certs.NAME.key_type`
    ### `[hosts]`

A key is dotted as ``tomlfile.KEYS_READ`` records it: top-level keys plain (`state_dir`),
keys of a per-host or per-certificate table with NAME (`hosts.NAME.reload`), and a table
in brackets (`[ca]` stands for `ca`). Every level-3 heading of the page must be such an
entry, and every entry gives its Type and Default and an example (a fenced block).

So a key the parser starts to read (``table.get("new_key", ...)`` in a section reader)
fails ``test_every_key_read_is_documented`` until the page has an entry for it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from certfleet.config import load_job
from certfleet.config.tomlfile import KEYS_READ

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "certfleet.toml.5.md"
SRC = ROOT / "src" / "certfleet"

_ENTRY = re.compile(r"`(\[[a-z_]+\]|[a-z_]+(?:\.(?:NAME|[a-z_]+))*)`")
_ENV = re.compile(r"\bCERTFLEET_[A-Z0-9_]*[A-Z0-9]")

# A configuration that reaches every reader of every section. The TSIG secret and the EAB
# key are given inline: a readable *_file would leave the inline key unread.
CONFIG = """\
state_dir = "state"
domains = "domains.txt"
concurrency = 2
renew_fraction = 0.5

[ca]
directory = "letsencrypt-staging"
contact = ["hostmaster@example.com"]
eab_kid = "kid"
eab_hmac_key = "c2VjcmV0"

[challenge]
webroot = "/var/www/acme"

[lb]
addresses = ["203.0.113.11"]

[ssh]
known_hosts = "known_hosts"

[defaults]
key_type = "ec256"

[hosts.default]
reload = ["true"]

[hosts."x"]
user = "deploy"

[certs."www.example.com"]
key_type = ["ec256", "rsa2048"]

[dns]
server = "192.0.2.53"
tsig_key_name = "certfleet"
tsig_secret = "c2VjcmV0"
"""
DOMAINS = "www.example.com|x:/some/where/Certs\n"


def entries(text: str) -> dict[str, str]:
    """Each documented key -> the text of its entry; fails on a heading off the convention."""
    found: dict[str, list[str]] = {}
    body: list[str] = []
    fenced = False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if fenced or not re.match(r"#{1,6} ", line):
            body.append(line)
            continue
        body = []
        if not line.startswith("### "):
            continue
        matches = [_ENTRY.fullmatch(item) for item in line[4:].strip().split(", ")]
        assert all(matches), f"not a key entry: {line!r}"
        for match in matches:
            assert match is not None
            key = match.group(1).strip("[]")
            assert key not in found, f"{key} documented twice"
            found[key] = body
    return {key: "\n".join(lines) for key, lines in found.items()}


@pytest.fixture
def keys_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The keys the parser asks for while loading ``CONFIG``, which must load cleanly."""
    monkeypatch.delenv("CERTFLEET_TSIG_SECRET", raising=False)
    for name, text in (("certfleet.toml", CONFIG), ("domains.txt", DOMAINS)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o600)  # whatever the umask: trusted input files
    saved = set(KEYS_READ)
    KEYS_READ.clear()
    try:
        job = load_job(tmp_path / "certfleet.toml")
        read = set(KEYS_READ)
    finally:
        KEYS_READ.clear()
        KEYS_READ.update(saved)
    assert [spec.name for spec in job.certs] == ["www.example.com",
                                                 "www.example.com+rsa2048"]
    assert job.dns is not None
    assert "x" in job.hosts
    assert "www.example.com" in job.cert_settings
    return read


def test_every_key_read_is_documented(keys_read: set[str]) -> None:
    documented = set(entries(PAGE.read_text()))
    missing = sorted(keys_read - documented)
    assert not missing, f"read by the parser, not in {PAGE.name}: {missing}"


def test_every_documented_key_is_read(keys_read: set[str]) -> None:
    documented = set(entries(PAGE.read_text()))
    stale = sorted(documented - keys_read)
    assert not stale, f"in {PAGE.name}, not read by the parser: {stale}"


def test_every_entry_gives_type_default_and_example() -> None:
    for key, body in entries(PAGE.read_text()).items():
        for part in ("- Type: ", "- Default: ", "\n```"):
            assert part in body, f"{key}: no {part.strip()!r} in its entry"


def test_toml_examples_parse() -> None:
    blocks = re.findall(r"^```toml\n(.*?)^```", PAGE.read_text(), flags=re.M | re.S)
    assert len(blocks) > 50
    for block in blocks:
        tomllib.loads(block)


def test_every_environment_variable_is_documented() -> None:
    named = {var for path in SRC.rglob("*.py") for var in _ENV.findall(path.read_text())}
    assert {"CERTFLEET_CONFIG", "CERTFLEET_TSIG_SECRET", "CERTFLEET_EAB_KID"} <= named
    page = PAGE.read_text()
    missing = sorted(var for var in named if f"`{var}`" not in page)
    assert not missing, f"named in src/, not in {PAGE.name}: {missing}"
