"""The text of the certfleet.toml an import writes. Touches nothing.

Every value is written as a TOML basic string with every control character escaped, and
every comment has its control characters made visible, so nothing read from the other
client's files can add a line, a key or a table to the configuration.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import visible
from .found import Migration, Settings

HEADER = "certfleet.toml written by `certfleet import {kind}` from {origin} on {when}."


def toml_value(value: Any) -> str:
    """A TOML value: a basic string (escaped), a boolean, an integer or an array of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    out = []
    for ch in str(value):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch != "\x7f":
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def comment(text: str) -> str:
    """One comment line; whatever ``text`` holds, it stays one line."""
    return f"# {visible(text)}".rstrip()


def config_text(migration: Migration, config: Path, domains: Path,
                now: datetime | None = None) -> str:
    """The whole certfleet.toml for ``migration``, written to ``config``."""
    s = migration.settings
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    lines = [comment(HEADER.format(kind=migration.kind, origin=migration.origin, when=when)),
             comment("Check it with `certfleet status --config THIS` and `certfleet run "
                     "--dry-run --config THIS`; see certfleet.toml(5), docs/migrating.md."),
             *(comment(c) for c in s.comments), "",
             f"state_dir = {toml_value(str(s.state_dir))}",
             f"domains = {toml_value(_relative(domains, config))}", "", "[ca]",
             f"directory = {toml_value(s.directory)}"]
    if s.ca_bundle is not None:
        lines.append(f"ca_bundle = {toml_value(str(s.ca_bundle))}")
    if s.allow_http:
        lines.append("allow_http = true")
    if s.contact:
        lines.append(f"contact = {toml_value(s.contact)}")
    lines += ["", "[challenge]"]
    if not s.challenge:
        lines += [comment("No way to answer http-01 was found: set one before the first "
                          "renewal is due,"),
                  comment('webroot = "/var/www/acme"      # or http_listen = "0.0.0.0:80"')]
    lines += [f"{key} = {toml_value(value)}" for key, value in s.challenge.items()]
    key_types = [v["key_type"] for v in s.certs.values() if "key_type" in v]
    common = max(sorted(set(key_types)), key=key_types.count) if key_types else None
    if common is not None and common != "ec256":
        lines += ["", "[defaults]", comment("the key type of the imported keys; a new key "
                                            "of this type with every renewal"),
                  f"key_type = {toml_value(common)}"]
    for name in sorted(set(s.certs) | set(s.cert_comments)):
        values = {k: v for k, v in s.certs.get(name, {}).items()
                  if not (k == "key_type" and v == (common or "ec256"))}
        notes = s.cert_comments.get(name, [])
        if not values and not notes:
            continue
        lines += ["", f"[certs.{toml_value(name)}]", *(comment(n) for n in notes)]
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _relative(path: Path, config: Path) -> str:
    """``domains`` as the config names it: relative to the config's directory if inside."""
    full, base = Path(os.path.abspath(path)), Path(os.path.abspath(config)).parent
    return str(full.relative_to(base)) if full.is_relative_to(base) else str(full)


def domains_text(migration: Migration, now: datetime | None = None) -> bytes:
    """The domains file: a comment saying where it came from, then the lines."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    head = comment(f"domains file written by `certfleet import {migration.kind}` from "
                   f"{migration.origin} on {when}; see domains.txt(5).")
    return (head + "\n" + "".join(line + "\n" for line in migration.domain_lines)).encode()


def settings_lines(settings: Settings) -> list[str]:
    """The challenge settings as printed lines (for the operator, before the file)."""
    if not settings.challenge:
        return ["challenge: none found; set [challenge] webroot or http_listen before the "
                "first renewal is due"]
    return [f"challenge: {key} = {value}" for key, value in settings.challenge.items()]
