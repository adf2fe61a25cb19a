"""The exception tree, and the one place where text from outside is made safe to print.

Touches nothing. Every failure certfleet reports is a ``CertfleetError``::

    CertfleetError
    ├── ConfigError         bad command line, file or name (names the file:line or the value)
    ├── ProtocolError       the CA sent something that is not valid RFC 8555 (names the URL)
    │   └── AcmeProblem     the CA answered with a problem document (RFC 8555 §6.7)
    ├── TransportError      the CA could not be reached, TLS failed, body too large (names the URL)
    ├── ChallengeError      a challenge could not be presented or answered
    ├── CertificateError    what the CA issued does not match what was asked for
    ├── StoreError          the state directory cannot be read or written safely
    └── DeployError         a target could not be given its files, reloaded or verified

Messages read ``<where>: <what failed>: <cause>``.
"""

from __future__ import annotations

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
MAX_SHOWN = 300


def safe_text(text: str, limit: int = MAX_SHOWN) -> str:
    """Return ``text`` fit for a terminal or a log line.

    Text from the CA or from input files may carry escape sequences that rewrite an
    operator's terminal or forge log lines; control characters become visible escapes
    and the result is cut to ``limit`` characters.
    """
    out: list[str] = []
    size = 0
    for ch in text:
        if ch in _ESCAPES:
            piece = _ESCAPES[ch]
        elif ch.isprintable():
            piece = ch
        else:
            piece = f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
        if size + len(piece) > limit:
            return "".join(out) + "..."
        out.append(piece)
        size += len(piece)
    return "".join(out)


class CertfleetError(Exception):
    """Base of every error certfleet reports to the operator."""


class ConfigError(CertfleetError):
    """Bad input: command line, configuration file, domains file or a name."""


class ProtocolError(CertfleetError):
    """The CA answered with something that is not valid ACME."""


class AcmeProblem(ProtocolError):
    """An RFC 8555 §6.7 problem document returned by the CA.

    ``type`` is the full URN; ``subproblems`` holds (identifier, type, detail) triples.
    """

    def __init__(
        self,
        url: str,
        type_: str,
        detail: str,
        status: int,
        subproblems: tuple[tuple[str, str, str], ...] = (),
        retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.type = type_
        self.detail = detail
        self.status = status
        self.subproblems = subproblems
        self.retry_after = retry_after
        super().__init__(self._message())

    @property
    def short_type(self) -> str:
        """The problem type without the ``urn:ietf:params:acme:error:`` prefix."""
        return self.type.rsplit(":", 1)[-1]

    def _message(self) -> str:
        text = f"{safe_text(self.url)}: {safe_text(self.short_type)}: {safe_text(self.detail)}"
        for ident, sub_type, sub_detail in self.subproblems:
            short = sub_type.rsplit(":", 1)[-1]
            text += f"; {safe_text(ident)}: {safe_text(short)}: {safe_text(sub_detail)}"
        return text


class TransportError(CertfleetError):
    """The CA could not be reached or the exchange failed below ACME."""


class ChallengeError(CertfleetError):
    """A challenge could not be presented, answered or validated."""


class CertificateError(CertfleetError):
    """What the CA issued does not match the request, or does not verify."""


class StoreError(CertfleetError):
    """The state directory cannot be used safely."""


class DeployError(CertfleetError):
    """A deploy target failed: upload, verification, rename, reload or TLS probe."""


# Problems that say something about the domain (its DNS, its server), not about the CA: on
# these a fallback CA would fail the same way, and would only spend its rate limits.
DOMAIN_PROBLEMS = frozenset({"dns", "connection", "tls", "incorrectResponse"})


def is_ca_fault(exc: CertfleetError) -> bool:
    """Whether another CA might succeed where this failure happened.

    The CA unreachable or erring, rate limits, its policy (rejectedIdentifier, caa), its
    account rules, or a certificate that does not match: yes. A failed validation, bad
    local configuration or a broken state directory: no, those follow the domain anywhere.
    """
    if isinstance(exc, AcmeProblem):
        return exc.short_type not in DOMAIN_PROBLEMS
    return isinstance(exc, TransportError | ProtocolError | CertificateError)
