"""The exception tree, and the one place where text from outside is made safe to print.

Touches nothing. Every failure certfleet reports is a ``CertfleetError``::

    CertfleetError
    ├── ConfigError         bad command line, file or name (names the file:line or the value)
    ├── ProtocolError       the CA sent something that is not valid RFC 8555 (names the URL)
    │   └── AcmeProblem     the CA answered with a problem document (RFC 8555 §6.7); one
    │       ├── BadNonce, RateLimited, AlreadyReplaced, OrderNotReady,
    │       │   AccountDoesNotExist, ExternalAccountRequired, Unauthorized, BadPublicKey
    │       └── DomainProblem   dns, connection, tls, incorrectResponse: the domain's fault
    ├── TransportError      the CA could not be reached, TLS failed, body too large (names the URL)
    ├── ChallengeError      a challenge could not be presented or answered
    ├── CertificateError    what the CA issued does not match what was asked for
    ├── StoreError          the state directory cannot be read or written safely
    │   ├── LeaseLost       the shared store refused a write: another host claimed it
    │   ├── ClaimedElsewhere  another Work host holds the certificate's lease
    │   └── FleetBusy       another run over the whole fleet is going on
    └── DeployError         a target could not be given its files, reloaded or verified

Messages read ``<where>: <what failed>: <cause>``. Code that branches on a kind of ACME
problem catches its class (built by ``acme_problem`` from the problem's type), never
compares type strings.
"""

from __future__ import annotations

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
MAX_SHOWN = 300
# A problem document may list up to 1,000 subproblems (``messages.MAX_LIST``), each field
# cut to MAX_SHOWN: all of them made one 589 KB line. The first few name what is wrong;
# the count says how much more there is; the whole stays one readable line.
MAX_SUBPROBLEMS = 5
MAX_PROBLEM = 2000


def safe_text(text: str, limit: int = MAX_SHOWN) -> str:
    """Return ``text`` fit for a terminal or a log line.

    Text from the CA or from input files may carry escape sequences that rewrite an
    operator's terminal or forge log lines; control characters become visible escapes
    and the result is cut to ``limit`` characters.
    """
    if len(text) <= limit and text.isprintable() and "\\" not in text:
        return text  # the common case, nothing to escape: no walk over each character
    out: list[str] = []
    size = 0
    for ch in text:
        piece = _shown(ch)
        if size + len(piece) > limit:
            return "".join(out) + "..."
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _shown(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch.isprintable():
        return ch
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def safe_tail(text: str, limit: int = MAX_SHOWN) -> str:
    """The end of ``text`` fit for a line, escaped as ``safe_text`` does and cut at the
    front: what a failing command printed last usually says why."""
    if len(text) <= limit and text.isprintable() and "\\" not in text:
        return text
    kept: list[str] = []
    size = 0
    for ch in reversed(text):
        piece = _shown(ch)
        if size + len(piece) > limit:
            return "..." + "".join(reversed(kept))
        kept.append(piece)
        size += len(piece)
    return "".join(reversed(kept))


def visible(text: str) -> str:
    """``text`` with every non-printable character made a visible escape, and nothing else
    changed: the last line of defence before a terminal, for text already built with
    ``safe_text`` where it mattered (so backslashes are left as they are)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else safe_text(ch) for ch in text)


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
        shown = 0
        for ident, sub_type, sub_detail in self.subproblems[:MAX_SUBPROBLEMS]:
            short = sub_type.rsplit(":", 1)[-1]
            part = f"; {safe_text(ident)}: {safe_text(short)}: {safe_text(sub_detail)}"
            if len(text) + len(part) > MAX_PROBLEM:
                break  # whole subproblems or none: an escape is never cut in two
            text += part
            shown += 1
        if shown < len(self.subproblems):
            text += f"; and {len(self.subproblems) - shown} more"
        return text


class TransportError(CertfleetError):
    """The CA could not be reached or the exchange failed below ACME."""


class ChallengeError(CertfleetError):
    """A challenge could not be presented, answered or validated."""


class CertificateError(CertfleetError):
    """What the CA issued does not match the request, or does not verify."""


class StoreError(CertfleetError):
    """The state directory cannot be used safely."""


class LeaseLost(StoreError):
    """The shared store refused a write: another Work host claimed the certificate since
    this one did (its fencing token is newer), so nothing of this host's goes in."""


class ClaimedElsewhere(StoreError):
    """Another Work host holds the certificate's lease: this run leaves it to that host."""


class FleetBusy(StoreError):
    """Another run holds the whole fleet: this one stops, having changed nothing."""


class DeployError(CertfleetError):
    """A deploy target failed: upload, verification, rename, reload or TLS probe."""


ERROR_NS = "urn:ietf:params:acme:error:"


class BadNonce(AcmeProblem):
    """§6.5: the nonce was not accepted; retry with the one that came with the answer."""


class RateLimited(AcmeProblem):
    """§6.6: a rate limit; ``retry_after`` says when to try again, if the CA said."""


class AlreadyReplaced(AcmeProblem):
    """RFC 9773 §5: the certificate named in ``replaces`` already has a replacement."""


class OrderNotReady(AcmeProblem):
    """§7.4: finalize came before every authorization was valid."""


class AccountDoesNotExist(AcmeProblem):
    """§7.3.1: no account for this key (the answer to ``onlyReturnExisting``)."""


class ExternalAccountRequired(AcmeProblem):
    """§7.3.4: this CA registers accounts only with an external account binding."""


class Unauthorized(AcmeProblem):
    """The account may not do this (a deactivated account, a refused binding...)."""


class BadPublicKey(AcmeProblem):
    """The CA does not accept this key."""


class DomainProblem(AcmeProblem):
    """A failed validation that says something about the domain (its DNS, its server),
    not about the CA: another CA would fail the same way and only spend its rate limits."""


_KINDS: dict[str, type[AcmeProblem]] = {
    "badNonce": BadNonce, "rateLimited": RateLimited, "alreadyReplaced": AlreadyReplaced,
    "orderNotReady": OrderNotReady, "accountDoesNotExist": AccountDoesNotExist,
    "externalAccountRequired": ExternalAccountRequired, "unauthorized": Unauthorized,
    "badPublicKey": BadPublicKey, "dns": DomainProblem, "connection": DomainProblem,
    "tls": DomainProblem, "incorrectResponse": DomainProblem,
}


def acme_problem(url: str, type_: str, detail: str, status: int,
                 subproblems: tuple[tuple[str, str, str], ...] = (),
                 retry_after: float | None = None) -> AcmeProblem:
    """The ``AcmeProblem`` of the right class for a problem document's ``type``."""
    kind = _KINDS.get(type_.removeprefix(ERROR_NS), AcmeProblem) \
        if type_.startswith(ERROR_NS) else AcmeProblem
    return kind(url, type_, detail, status, subproblems, retry_after)


def is_ca_fault(exc: CertfleetError) -> bool:
    """Whether another CA might succeed where this failure happened.

    The CA unreachable or erring, rate limits, its policy (rejectedIdentifier, caa), its
    account rules, or a certificate that does not match: yes. A failed validation, bad
    local configuration or a broken state directory: no, those follow the domain anywhere.
    """
    if isinstance(exc, AcmeProblem):
        return not isinstance(exc, DomainProblem)
    return isinstance(exc, TransportError | ProtocolError | CertificateError)
