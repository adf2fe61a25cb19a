"""Domain names as certfleet accepts them: normalized A-labels, validated before any use.

Touches nothing. A name from input becomes an ACME identifier and a directory name, so it is
checked here once, strictly: LDH labels, lengths (RFC 1035), IDNA 2008 (RFC 5891) for
U-labels, a wildcard only as the whole leftmost label. An internationalised label must keep
to one script, or to a mix a language really writes (Unicode TS #39's "highly
restrictive" level: Latin with Han, Hiragana and Katakana; Latin with Han and Bopomofo;
Latin with Han and Hangul): `example.com` written with a Cyrillic U+0430 for its `a` is a
look-alike, refused.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from .errors import ConfigError

MAX_NAME = 253
MAX_LABEL = 63
_LDH = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


_KNOWN_SCRIPTS = {"CJK": "Han", "HIRAGANA": "Hiragana", "KATAKANA": "Katakana",
                  "KATAKANA-HIRAGANA": "Japanese", "HANGUL": "Hangul", "BOPOMOFO": "Bopomofo"}
_WRITTEN_MIXES = ({"Latin", "Han", "Hiragana", "Katakana", "Japanese"},
                  {"Latin", "Han", "Bopomofo"}, {"Latin", "Han", "Hangul"})


def _scripts(label: str) -> set[str]:
    """The scripts of a label's letters (digits and '-' belong to none)."""
    found = set()
    for ch in label:
        if unicodedata.category(ch).startswith("L"):
            word = unicodedata.name(ch, "?").split(" ")[0]
            found.add(_KNOWN_SCRIPTS.get(word, word.title()))
    return found


def _one_script(ulabel: str, raw: str) -> None:
    scripts = _scripts(ulabel)
    if len(scripts) > 1 and not any(scripts <= mix for mix in _WRITTEN_MIXES):
        raise ConfigError(f"{raw!r}: label {ulabel!r} mixes scripts "
                          f"({', '.join(sorted(scripts))}): refused as a look-alike")


def _to_alabel(label: str, raw: str) -> str:
    # idna is imported only for a label that needs it: an ASCII name never loads its tables.
    if label.isascii():
        lowered = label.lower()
        if lowered.startswith("xn--"):
            import idna

            try:
                # a bad punycode label is refused, not passed on
                _one_script(idna.decode(lowered), raw)
            except idna.IDNAError as exc:
                raise ConfigError(f"{raw!r}: bad punycode label {label!r}: {exc}") from None
        return lowered
    import idna

    try:
        alabel = idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ConfigError(f"{raw!r}: label {label!r} is not a valid IDN: {exc}") from None
    _one_script(idna.decode(alabel), raw)
    return alabel


def normalize_name(raw: str) -> str:
    """Return the lowercase A-label form of ``raw`` or raise ``ConfigError`` saying why not."""
    shown = raw if len(raw) <= 80 else raw[:80] + "..."
    name = raw.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ConfigError(f"{shown!r}: empty name")
    if any(ch in name for ch in "\x00/\\ \t\r\n"):
        raise ConfigError(f"{shown!r}: not a domain name")
    labels = name.split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        labels = labels[1:]
    if len(labels) < 2:
        raise ConfigError(f"{shown!r}: a name needs at least two labels")
    out = []
    for label in labels:
        if not label:
            raise ConfigError(f"{shown!r}: empty label")
        if "*" in label:
            raise ConfigError(f"{shown!r}: a wildcard is allowed only as the whole first label")
        alabel = _to_alabel(label, shown)
        if len(alabel) > MAX_LABEL:
            raise ConfigError(f"{shown!r}: label longer than {MAX_LABEL} characters")
        if not _LDH.fullmatch(alabel):
            raise ConfigError(f"{shown!r}: label {alabel!r} is not letters, digits and hyphens")
        out.append(alabel)
    if out[-1].isdigit():
        raise ConfigError(f"{shown!r}: the last label is all digits")
    result = ".".join((["*"] if wildcard else []) + out)
    if len(result) > MAX_NAME:
        raise ConfigError(f"{shown!r}: name longer than {MAX_NAME} characters")
    return result


def normalize_identifier(raw: str) -> str:
    """A domain name (as ``normalize_name``) or an IP address (RFC 8738) in canonical form.

    IPv6 may be written in brackets; zone IDs are refused (they mean nothing to a CA).
    """
    text = raw.strip()
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if candidate and all(c in "0123456789abcdefABCDEF.:" for c in candidate) \
            and (":" in candidate or candidate.replace(".", "").isdigit()):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            if ":" in candidate:
                raise ConfigError(f"{raw!r}: not an IP address") from None
    return normalize_name(raw)


def is_ip(identifier: str) -> bool:
    try:
        ipaddress.ip_address(identifier)
    except ValueError:
        return False
    return True


def storage_name(name: str) -> str:
    """The directory name for a certificate whose first name is ``name`` (already normalized)."""
    return "_wildcard." + name[2:] if name.startswith("*.") else name
