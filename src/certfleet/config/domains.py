"""The domains file grammar: one certificate per line, its names, then where it is deployed.

Touches nothing: bytes in, ``CertSpec`` values or one ``ConfigErrors`` out. ``job.py``
reads the file and calls :func:`scan_domains`. The seed's format is accepted as is::

    # comment to the end of the line
    NAME [ALTNAME ...] [| TARGET [TARGET ...]]

    TARGET = /absolute/dir                    a local directory
           | [user@]host:/absolute/dir        over SSH; host: a DNS name or ssh_config alias,
                                              an IPv4 address, or [an IPv6 address]

A target becomes an ``scp``/``ssh`` argument and a remote path, so it is checked strictly:
nothing may start with ``-`` (no ``-oProxyCommand=``), no shell metacharacters, no ``..``.
Every fault is collected, each as ``file:line: what: why`` (see ``problems.py``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping

from ..errors import ConfigError, safe_text
from ..gcpause import paused
from ..names import MAX_NAME, normalize_identifier
from ..spec import CertDefaults, CertSpec, Target
from .problems import Problems
from .tomlfile import local_name
from .values import check_host, check_ipv6, check_path, check_user

MAX_FILE = 16 * 1024 * 1024
MAX_LINE = 4096            # bytes, without the line ending
MAX_NAMES = 100            # per certificate (Let's Encrypt's limit)
MAX_TARGETS = 100          # per line
BOM = b"\xef\xbb\xbf"

_PORT_PREFIX = re.compile(r"[0-9]+:")
# The common case, checked in one match: lowercase ASCII LDH labels, the last not all digits.
# Anything else (IDN, xn--, faults) goes through names.normalize_name for its verdict.
_PLAIN_NAME = re.compile(r"(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                         r"(?![0-9]+(?:[ \t]|$))[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PLAIN_NAMES = re.compile(
    r"[ \t]*" + _PLAIN_NAME.pattern + r"(?:[ \t]+" + _PLAIN_NAME.pattern + r")*[ \t]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")       # all but tab and newline


def parse_target(token: str) -> Target:
    """``/dir`` or ``[user@]host:/dir`` to a ``Target``; ``ConfigError`` saying why not."""
    if token.startswith("-"):
        raise ConfigError("a target must not start with '-'")
    if token.startswith("/"):
        return Target(path=local_name(check_path(token)))  # a remote one goes as UTF-8
    at, colon = token.find("@"), token.find(":")
    user, rest = None, token
    if at >= 0 and (colon < 0 or at < colon):
        user, rest = check_user(token[:at]), token[at + 1:]
    if rest.startswith("["):
        inner, bracket, after = rest[1:].partition("]")
        if not bracket or not after.startswith(":"):
            raise ConfigError("expected [IPv6]:/dir")
        return Target(path=check_path(after[1:]), host=check_ipv6(inner), user=user)
    host, sep, path = rest.partition(":")
    if not sep:
        raise ConfigError("not a target: expected /dir or [user@]host:/dir")
    if not path.startswith("/") and ":" in path:
        try:
            ipaddress.IPv6Address(host + ":" + path.rpartition(":")[0])
        except ValueError:
            pass
        else:
            raise ConfigError("an IPv6 address must be in brackets: [ADDRESS]:/dir")
        if _PORT_PREFIX.match(path):
            raise ConfigError(f"no port here; set port in [hosts.\"{safe_text(host)}\"]")
    return Target(path=check_path(path), host=check_host(host), user=user)


def fast_name(raw: str) -> str:
    """``names.normalize_name``, with a fast path for plain ASCII names (same result)."""
    if raw.isascii():
        name = raw.lower().removesuffix(".")
        if len(name) <= MAX_NAME and "xn--" not in name and _PLAIN_NAME.fullmatch(name):
            return name
    return normalize_identifier(raw)


def _line_text(raw: bytes) -> tuple[str | None, str]:
    """Decode and screen one line: (text, "") or (None, why not)."""
    if len(raw) > MAX_LINE:
        return None, f"line longer than {MAX_LINE} bytes"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    if not line.replace("\t", " ").isprintable():
        col, ch = next((i, c) for i, c in enumerate(line) if c != "\t" and not c.isprintable())
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return None, f"control character {safe_text(ch)} at column {col + 1}"
        return None, f"invisible character U+{ord(ch):04X} at column {col + 1}"
    return line, ""


class _Parser:
    """One pass over a domains file; remembers names across lines and parsed targets."""

    def __init__(self, source: str, default: CertDefaults,
                 certs: Mapping[str, CertDefaults], problems: Problems) -> None:
        self.source, self.default, self.certs, self.problems = source, default, certs, problems
        self.names: dict[str, tuple[int, bool]] = {}      # name -> (line, is first name)
        self.targets: dict[str, Target | str] = {}         # token -> Target or why not
        self.canonical: dict[Target, Target] = {}          # one object per distinct target
        self.good_targets: dict[str, Target] = {}          # token -> Target, parsed well
        self.specs: list[CertSpec] = []

    def run(self, data: bytes) -> None:
        if len(data) > MAX_FILE:
            self.problems.add(self.source, "file larger than 16 MiB")
            return
        data = data.removeprefix(BOM)
        self._scan(self._clean_lines(data) or self._lines(data))

    def _scan(self, lines: Iterable[str | None]) -> None:
        """Every line: the common one (plain lowercase ASCII names seen nowhere else, targets
        parsed before) in a few C-level steps; any other, comments aside, by ``_line``.
        Both give the same result for a good line; ``_line`` also says what is wrong."""
        seen, good, certs, default = self.names, self.good_targets.get, self.certs, self.default
        plain, source, specs = _PLAIN_NAMES.fullmatch, self.source, self.specs
        templates: dict[int, CertSpec] = {}   # one per settings object
        for lineno, text in enumerate(lines, 1):
            if not text:
                continue
            line = text[:text.index("#")] if "#" in text else text
            left, bar, right = line.partition("|")
            names = left.split()
            targets = list(map(good, right.split()))
            if not names:
                if bar:
                    self._line(line.strip(" \t"), lineno)
                continue
            settings = certs.get(names[0], default)
            if (plain(left) and "xn--" not in left and len(names) <= MAX_NAMES
                    and len(targets) <= MAX_TARGETS and max(map(len, names)) <= MAX_NAME
                    and seen.keys().isdisjoint(names) and len(set(names)) == len(names)
                    and all(targets) and len(set(map(id, targets))) == len(targets)
                    and ("*" not in left or settings.challenge == "dns-01")):
                seen[names[0]] = (lineno, True)
                for name in names[1:]:
                    seen[name] = (lineno, False)
                template = templates.get(id(settings))
                if template is None:
                    template = templates[id(settings)] = _spec((names[0],), (), settings, "")
                specs.append(CertSpec.like(template, tuple(names), tuple(targets),  # type: ignore[arg-type]
                                           f"{source}:{lineno}"))
            else:
                self._line(line.strip(" \t"), lineno)

    @staticmethod
    def _clean_lines(data: bytes) -> list[str] | None:
        """The lines of an all-ASCII file with nothing to complain of, else None (the
        common case, checked in a few passes over the whole text instead of per line)."""
        if not data.isascii():
            return None
        text = data.decode("ascii").replace("\r\n", "\n")
        if _CONTROL.search(text):
            return None
        lines = text.split("\n")
        return lines if max(map(len, lines)) <= MAX_LINE else None

    def _lines(self, data: bytes) -> Iterator[str | None]:
        """Each line decoded and screened; None (after reporting why) for a bad one."""
        for lineno, raw in enumerate(data.split(b"\n"), 1):
            line, why = _line_text(raw.removesuffix(b"\r"))
            if line is None:
                self.problems.add(f"{self.source}:{lineno}", why)
            yield line

    def _line(self, content: str, lineno: int) -> None:
        left, _, right = content.partition("|")
        raw_names, raw_targets = left.split(), right.split()
        where = f"{self.source}:{lineno}"
        if not raw_names:
            self.problems.add(where, "no name before '|'")
            return
        if len(raw_names) > MAX_NAMES:
            self.problems.add(where, f"more than {MAX_NAMES} names for one certificate")
            return
        if len(raw_targets) > MAX_TARGETS:
            self.problems.add(where, f"more than {MAX_TARGETS} targets on one line")
            return
        names, ok = self._names(raw_names, lineno, where)
        settings = self.certs.get(names[0], self.default) if names else self.default
        for name in names:
            if name[0] == "*" and settings.challenge != "dns-01":
                ok = False
                self.problems.add(where, f"{name}: a wildcard needs challenge dns-01 (set "
                                  f"challenge = \"dns-01\" in [certs.\"{names[0]}\"] or "
                                  "[defaults])")
        targets, targets_ok = self._targets(raw_targets, where)
        if ok and targets_ok:
            self.specs.append(_spec(tuple(names), tuple(targets), settings, where))

    def _names(self, raw_names: list[str], lineno: int, where: str) -> tuple[list[str], bool]:
        names: list[str] = []
        seen_names, ok = self.names, True
        for index, raw in enumerate(raw_names):
            try:
                name = fast_name(raw)
            except ConfigError as exc:
                self.problems.add(where, str(exc))
                ok = False
                continue
            except (UnicodeError, ValueError):
                self.problems.add(where, f"'{safe_text(raw, 80)}': not a valid domain name")
                ok = False
                continue
            seen = seen_names.get(name)
            if seen is None:
                seen_names[name] = (lineno, index == 0)
                names.append(name)
                continue
            ok = False
            if seen[0] == lineno:
                self.problems.add(where, f"{name}: named twice on this line")
            else:
                self.problems.add(where, f"{name} already on line {seen[0]}")
        return names, ok

    def _targets(self, raw_targets: list[str], where: str) -> tuple[tuple[Target, ...], bool]:
        known = self.targets
        targets: dict[int, Target] = {}
        for token in raw_targets:
            target = known.get(token)
            if target is None:
                try:
                    parsed = parse_target(token)
                    target = self.canonical.setdefault(parsed, parsed)
                    self.good_targets[token] = target
                except ConfigError as exc:
                    target = str(exc)
                known[token] = target
            if isinstance(target, str):
                self.problems.add(where, f"{safe_text(token)}: {target}")
            elif id(target) in targets:
                self.problems.add(where, f"{safe_text(token)}: target given twice on this line")
            else:
                targets[id(target)] = target
        return tuple(targets.values()), len(targets) == len(raw_targets)


def scan_domains(text: bytes, source: str, *, default: CertDefaults,
                 certs: Mapping[str, CertDefaults], problems: Problems,
                 ) -> tuple[list[CertSpec], dict[str, tuple[int, bool]]]:
    """Parse into ``problems`` without raising: the good certificates, and every name seen
    as ``name -> (line, is the certificate's first name)`` (for checking ``[certs]``)."""
    parser = _Parser(source, default, certs, problems)
    with paused():  # building 100,000 specs makes no reference cycle (gcpause.py)
        parser.run(text)
    return parser.specs, parser.names


def parse_domains(text: bytes, source: str, *, default: CertDefaults,
                  certs: Mapping[str, CertDefaults] | None = None) -> list[CertSpec]:
    """The certificates of a domains file, or ``ConfigErrors`` listing every fault.

    ``source`` names the file in messages and ``CertSpec.source``; ``certs`` holds the
    per-certificate settings keyed by first name (normalized), ``default`` the rest.
    """
    problems = Problems()
    specs, _ = scan_domains(text, source, default=default, certs=certs or {},
                            problems=problems)
    problems.raise_if_any()
    return specs


def _spec(names: tuple[str, ...], targets: tuple[Target, ...], settings: CertDefaults,
          source: str) -> CertSpec:
    """The certificate a good line asks for, with the settings that apply to it."""
    return CertSpec(names=names, targets=targets, key_type=settings.key_type,
                    challenge=settings.challenge, reuse_key=settings.reuse_key,
                    profile=settings.profile, preferred_chain=settings.preferred_chain,
                    ca=settings.ca, fallback=settings.fallback, source=source)
