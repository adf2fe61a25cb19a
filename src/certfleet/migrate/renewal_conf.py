"""certbot's ``renewal/<lineage>.conf``, read as certbot writes it. Touches nothing.

The file is ConfigObj syntax; certbot writes only part of it: ``key = value`` lines at the
top, a ``[renewalparams]`` section and in it a ``[[webroot_map]]`` subsection; a value may
be quoted and a list is written with commas (``webroot_path = /var/www,``). That part is
read here; anything else (multi-line values, sections certbot does not write) is refused
with its line, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, safe_text

Value = str | list[str]
MAX_LINES = 2000


@dataclass
class RenewalConf:
    """The three parts of a renewal configuration certfleet uses."""

    top: dict[str, Value] = field(default_factory=dict)
    params: dict[str, Value] = field(default_factory=dict)      # [renewalparams]
    webroot_map: dict[str, str] = field(default_factory=dict)   # [[webroot_map]]

    def param(self, key: str) -> str | None:
        """A ``[renewalparams]`` value as one string (a one-item list is that item)."""
        value = self.params.get(key)
        if isinstance(value, list):
            return value[0] if len(value) == 1 else ",".join(value)
        return value or None

    def param_list(self, key: str) -> list[str]:
        value = self.params.get(key)
        if value is None or value == "":
            return []
        return value if isinstance(value, list) else [value]


def parse(data: bytes, where: str) -> RenewalConf:
    """The renewal configuration in ``data``; ``ConfigError`` naming ``where:line``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise ConfigError(f"{where}: more than {MAX_LINES} lines")
    conf = RenewalConf()
    section = conf.top
    for number, line in enumerate(lines, 1):
        at = f"{where}:{number}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            section = _section(conf, stripped.split("#", 1)[0].strip(), at)
            continue
        key, sep, raw = stripped.partition("=")
        key = key.strip()
        if not sep or not key or any(q in key for q in "\"'[]"):
            raise ConfigError(f"{at}: not a `key = value` line")
        value = _value(raw, at)
        if section is conf.webroot_map:
            if isinstance(value, list):
                raise ConfigError(f"{at}: a webroot_map entry is one directory")
            conf.webroot_map[key] = value
        else:
            section[key] = value
    return conf


def _section(conf: RenewalConf, header: str, at: str) -> dict[str, Value]:
    if header == "[renewalparams]":
        return conf.params
    if header == "[[webroot_map]]":
        return conf.webroot_map  # type: ignore[return-value]  # str values only, see above
    raise ConfigError(f"{at}: section {safe_text(header, 60)} is not one certbot writes")


def _value(raw: str, at: str) -> Value:
    """One value: quotes removed, a comment after it dropped, a list split at commas."""
    raw = raw.strip()
    if raw.startswith(('"""', "'''")):
        raise ConfigError(f"{at}: multi-line values are not read")
    items: list[str] = []
    current: list[str] = []
    quote: str | None = None
    is_list = False
    for ch in raw:
        if quote is not None:
            if ch == quote:
                quote = None
            else:
                current.append(ch)
        elif ch in "\"'" and not "".join(current).strip():
            quote = ch
            current = []
        elif ch == "#":
            break
        elif ch == ",":
            items.append("".join(current).strip())
            current, is_list = [], True
        else:
            current.append(ch)
    if quote is not None:
        raise ConfigError(f"{at}: unclosed quote")
    last = "".join(current).strip()
    if not is_list:
        return last
    return [item for item in [*items, last] if item]
