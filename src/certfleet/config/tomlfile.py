"""The TOML side of ``certfleet.toml``: typed access to tables that reports each fault at
its key's line, and every unknown key. Touches nothing (the caller reads the file).

tomllib gives no line numbers for keys, so ``TomlLines`` finds them in the text. Every key
the parser asks for is noted in ``KEYS_READ`` (as ``section.key``, a per-host or
per-certificate table as ``hosts.NAME``), so a test can hold the parser to the reference.
"""

from __future__ import annotations

import codecs
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError, safe_text
from .problems import Problems

T = TypeVar("T")
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\"|'[^']*'")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
KEYS_READ: set[str] = set()


def _key_path(text: str, pos: int) -> tuple[tuple[str, ...], int] | None:
    """The dotted TOML key at ``text[pos:]``: its parts, unquoted, and where it ends."""
    parts: list[str] = []
    while True:
        pos = len(text) - len(text[pos:].lstrip(" \t"))
        if (match := _KEY_PART.match(text, pos)) is None:
            return None
        part = match.group()
        if part.startswith('"'):
            try:
                part = tomllib.loads(f"k = {part}")["k"]
            except tomllib.TOMLDecodeError:
                return None
        parts.append(part[1:-1] if part.startswith("'") else part)
        pos = len(text) - len(text[match.end():].lstrip(" \t"))
        if not text.startswith(".", pos):
            return tuple(parts), pos
        pos += 1


class TomlLines:
    """The line of each ``[table]`` and ``key =`` of a TOML text, and each value's raw text."""

    def __init__(self, text: str = "") -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        self.raw: dict[tuple[str, ...], str] = {}
        table: tuple[str, ...] = ()
        multiline = ""                         # inside a multi-line string: its delimiter
        for lineno, line in enumerate(text.split("\n"), 1):
            stripped = line.strip()
            if multiline:
                multiline = "" if stripped.count(multiline) % 2 else multiline
                continue
            brackets = len(stripped) - len(stripped.lstrip("[")) if stripped[:1] == "[" else 0
            if (got := _key_path(stripped, min(brackets, 2))) is None:
                continue
            path, end = got
            rest = stripped[end:]
            if brackets and rest.startswith("]" * brackets):
                if rest[brackets:].strip().startswith("#") or not rest[brackets:].strip():
                    table = path
                    self._add(table, lineno)
            elif not brackets and rest.startswith("="):
                value = self.raw.setdefault(table + path, rest[1:].strip())
                self._add(table + path, lineno)
                multiline = next((q for q in ('"""', "'''") if value.count(q) % 2), "")

    def _add(self, path: tuple[str, ...], lineno: int) -> None:
        for n in range(1, len(path) + 1):
            self.lines.setdefault(path[:n], lineno)

    def line(self, path: tuple[str, ...]) -> int:
        """The line of ``path``, else of the nearest enclosing table found, else 1."""
        found = (self.lines.get(path[:n]) for n in range(len(path), 0, -1))
        return next((line for line in found if line is not None), 1)


def describe(value: object) -> str:
    kinds = ((bool, "true or false"), (str, "a string"), (int, "an integer"),
             (float, "a number"), (list, "an array"), (dict, "a table"))
    return next((text for kind, text in kinds if isinstance(value, kind)), "a date or time")


def checked(problems: Problems, where: str, convert: Callable[..., T], *args: Any) -> T | None:
    """``convert(*args)``, or None after reporting its ``ConfigError`` (or ``ValueError``)
    at ``where``."""
    try:
        return convert(*args)
    except (ConfigError, ValueError) as exc:
        problems.add(where, safe_text(str(exc)))
        return None


class Table:
    """One TOML table: typed access reporting faults at the key's line, then ``finish()``
    reports every key present that certfleet does not know."""

    def __init__(self, source: str, index: TomlLines, problems: Problems, base: Path,
                 path: tuple[str, ...] = (), data: dict[str, Any] | None = None,
                 label: tuple[str, ...] | None = None) -> None:
        self.source, self.index, self.problems, self.base = source, index, problems, base
        self.path, self.data, self.used = path, data or {}, set[str]()
        self.label = path if label is None else label  # the path with NAME for a name

    def where(self, key: str | None = None) -> str:
        return f"{self.source}:{self.index.line(self.path if key is None else (*self.path, key))}"

    def get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        self.used.add(key)
        KEYS_READ.add(".".join((*self.label, key)))
        value = self.data.get(key)
        if value is not None and (not isinstance(value, kind)
                                  or (isinstance(value, bool) and kind is not bool)):
            self.problems.add(self.where(key), f"{key} must be {what}, not {describe(value)}")
            return None
        return value

    def check(self, key: str, kind: type | tuple[type, ...], what: str,
              convert: Callable[[Any], T]) -> T | None:
        value = self.get(key, kind, what)
        return None if value is None else checked(self.problems, self.where(key), convert, value)

    def path_of(self, key: str) -> Path | None:
        return self.check(key, str, "a path",
                          lambda text: resolve_path(local_name(text), self.base))

    def table(self, key: str, generic: str | None = None) -> Table:
        """The sub-table ``key``; ``generic`` stands for a name the operator chose
        (``[hosts."web1"]`` is read as ``hosts.NAME``)."""
        self.used.add(key)
        value = self.data.get(key)
        data = None
        if value is not None and not isinstance(value, dict):
            what = f'a table [{".".join(self.path)}."{safe_text(key)}"]' if generic else "a table"
            self.problems.add(self.where(key), f"{key} must be {what}, not {describe(value)}")
        else:
            data = value
        label = (*self.label, generic or key)
        if generic is None:
            KEYS_READ.add(".".join(label))
        return Table(self.source, self.index, self.problems, self.base, (*self.path, key),
                     data, label)

    def finish(self) -> None:
        def name(path: tuple[str, ...]) -> str:
            return ".".join(p if _BARE_KEY.fullmatch(p) else f'"{safe_text(p)}"' for p in path)

        for key in [key for key in self.data if key not in self.used]:
            if isinstance(self.data[key], dict):
                reason = f"unknown section [{name((*self.path, key))}]"
            else:
                reason = f"unknown option {safe_text(key)!r}"
                reason += f" in [{name(self.path)}]" if self.path else ""
            self.problems.add(self.where(key), reason)


def local_name(text: str) -> str:
    """A file name read from a UTF-8 file (certfleet.toml, the domains file), for this
    host's file system; refused where the locale spells file names in another encoding and
    the name is not ASCII: the same characters would be other bytes on disk (another
    directory), or none at all (a traceback where the file is opened)."""
    if text.isascii():
        return text
    encoding = sys.getfilesystemencoding()
    if codecs.lookup(encoding).name != "utf-8":
        raise ConfigError(f"{safe_text(text)!r} is not ASCII, and the locale here spells file "
                          f"names in {encoding}: run certfleet with LANG=C.UTF-8 (or "
                          "PYTHONUTF8=1)")
    return text


def resolve_path(text: str, base: Path | None) -> Path:
    if not text or not text.isprintable():
        raise ConfigError(f"{safe_text(text)!r} is not a usable path")
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        raise ConfigError(f"cannot expand '~' in {safe_text(text)!r}: no home directory") from None
    return path if path.is_absolute() or base is None else base / path
