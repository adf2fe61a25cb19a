"""The state record of one certificate, and every change it can go through. Touches nothing.

Everything certfleet remembers about a certificate besides its versions lives in one
``CertState``: the last result, the back-off after failures, the ARI schedule, an order in
flight, what each target was given, and revocation. Every change is a named transition
here (h11's rule: what changes the state is defined in one file); the store applies a
transition under the certificate's lock, and the rest of the code only asks questions.
The JSON form (``state.json``) is read back with every field checked and bounded, so a
damaged or hostile record fails its own certificate with a clear reason, never the fleet.

    {"last": {"at", "result", "error"}, "backoff": {"failures", "until", "error"},
     "ari": {"serial", "next_fetch", "start", "end", "chosen", "explanation", "error"},
     "order": {"url", "names"},
     "deploy": {TARGET: {"at", "serial", "version"} | {"at", "error"}},
     "revocation": {"serial", "at", "confirmed"}, "alarm_at": time}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from .protocol import backoff
from .protocol.ari import Schedule
from .protocol.backoff import Backoff
from .protocol.frozen import frozen
from .protocol.records import RecordError, serial_hex, text, when

MAX_ERROR = 1000      # an error kept in the record (CA text included), in characters
MAX_URL = 2048
MAX_NAMES = 100
MAX_TARGETS = 1000
MAX_TARGET_KEY = 1400
INTERRUPTED = "interrupted while deploying"
ALARM_EVERY = timedelta(days=1)
RESULTS = ("issued", "renewed", "not due", "failed", "deployed")


class StateDamaged(RecordError):
    """``state.json`` cannot be read back as a ``CertState``."""


@frozen
class LastResult:
    at: datetime
    result: str          # one of RESULTS
    error: str | None = None


@frozen
class PendingOrder:
    """An order placed and not yet finished: resumed instead of placed again."""

    url: str
    names: tuple[str, ...]


@frozen
class DeployRecord:
    """What one target was last given, or why it was not."""

    at: datetime
    serial: str | None = None     # hex, when the deploy succeeded
    version: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.serial is not None


@frozen
class Revocation:
    """A revocation sent for ``serial``; ``confirmed`` once the CA said yes."""

    serial: str
    at: datetime
    confirmed: bool


@frozen
class CertState:
    last: LastResult | None = None
    backoff: Backoff | None = None
    ari: Schedule | None = None
    order: PendingOrder | None = None
    deploys: Mapping[str, DeployRecord] = field(default_factory=dict)
    revocation: Revocation | None = None
    alarm_at: datetime | None = None    # when the expiry alarm last went off

    # -- questions ----------------------------------------------------------------------

    def deployed_serial(self, target_key: str) -> str | None:
        """The serial (hex) recorded as successfully deployed to the target, if any."""
        record = self.deploys.get(target_key)
        return record.serial if record is not None and record.ok else None

    def is_revoked(self, serial: int) -> bool:
        """Whether ``serial`` was revoked, or a revocation of it was sent and may have
        been taken (the answer was lost): either way it must be replaced."""
        return self.revocation is not None and self.revocation.serial == f"{serial:x}"

    def waiting_until(self, now: datetime) -> datetime | None:
        return backoff.waiting_until(self.backoff, now)

    def may_alarm(self, now: datetime) -> bool:
        """The expiry alarm goes off at most once a day."""
        return self.alarm_at is None or now - self.alarm_at >= ALARM_EVERY or now < self.alarm_at

    # -- transitions --------------------------------------------------------------------

    def with_order(self, url: str, names: Iterable[str]) -> CertState:
        return replace(self, order=_pending(url, names))

    def without_order(self) -> CertState:
        return replace(self, order=None)

    def with_ari(self, schedule: Schedule) -> CertState:
        return replace(self, ari=schedule)

    def after_attempt(self, now: datetime, result: str, error: str | None = None, *,
                      asked_ca: bool = False, retry_after: float | None = None) -> CertState:
        """The outcome of a run for this certificate. A failure after the CA was asked
        makes the next attempt wait (``backoff``); a success clears the wait."""
        error = None if error is None else error[:MAX_ERROR]
        last = LastResult(now, "failed" if error else result, error)
        if error is not None and asked_ca:
            return replace(self, last=last,
                           backoff=backoff.after_failure(self.backoff, now, error, retry_after))
        if error is not None:
            return replace(self, last=last)
        return replace(self, last=last, backoff=None)

    def deploying(self, target_keys: Iterable[str], now: datetime) -> CertState:
        """Until its result is recorded, a target counts as not deployed: if the run is
        killed midway, the next one deploys there again."""
        marks = {key: DeployRecord(now, error=INTERRUPTED) for key in target_keys}
        return replace(self, deploys={**self.deploys, **marks})

    def deployed(self, target_key: str, now: datetime, serial: int, version: int) -> CertState:
        record = DeployRecord(now, f"{serial:x}", version)
        return replace(self, deploys={**self.deploys, target_key: record})

    def deploy_failed(self, target_key: str, now: datetime, error: str) -> CertState:
        record = DeployRecord(now, error=error[:MAX_ERROR])
        return replace(self, deploys={**self.deploys, target_key: record})

    def forget_targets(self, keep: Iterable[str]) -> CertState:
        """Drop the records of targets no longer configured (the domains file changed)."""
        wanted = set(keep)
        return replace(self, deploys={k: v for k, v in self.deploys.items() if k in wanted})

    def alarmed(self, now: datetime) -> CertState:
        return replace(self, alarm_at=now)

    def revoking(self, serial: int, now: datetime) -> CertState:
        return replace(self, revocation=Revocation(f"{serial:x}", now, confirmed=False))

    def revoked(self, serial: int, now: datetime) -> CertState:
        return replace(self, revocation=Revocation(f"{serial:x}", now, confirmed=True))

    # -- JSON ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.last is not None:
            data["last"] = {"at": self.last.at.isoformat(), "result": self.last.result,
                            "error": self.last.error}
        if self.backoff is not None:
            data["backoff"] = self.backoff.to_json()
        if self.ari is not None:
            data["ari"] = self.ari.to_json()
        if self.order is not None:
            data["order"] = {"url": self.order.url, "names": list(self.order.names)}
        if self.deploys:
            data["deploy"] = {key: _deploy_json(record) for key, record in self.deploys.items()}
        if self.alarm_at is not None:
            data["alarm_at"] = self.alarm_at.isoformat()
        if self.revocation is not None:
            data["revocation"] = {"serial": self.revocation.serial,
                                  "at": self.revocation.at.isoformat(),
                                  "confirmed": self.revocation.confirmed}
        return data

    @classmethod
    def from_json(cls, data: Any) -> CertState:
        """Read a record back; ``StateDamaged`` naming the first field that is wrong."""
        try:
            return _from_json(data)
        except RecordError as exc:
            raise StateDamaged(str(exc)) from None


def _deploy_json(record: DeployRecord) -> dict[str, Any]:
    data: dict[str, Any] = {"at": record.at.isoformat()}
    if record.error is not None:
        data["error"] = record.error
    else:
        data.update(serial=record.serial, version=record.version)
    return data


def _pending(url: str, names: Iterable[str]) -> PendingOrder:
    return PendingOrder(url[:MAX_URL], tuple(names)[:MAX_NAMES])


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(f"{what} is not an object")
    return value


def _from_json(data: Any) -> CertState:
    """The record, each field read by its own reader and the state made once (``status``
    reads every certificate's)."""
    data = _object(data, "the record")
    fields: dict[str, Any] = {}
    for key, field_name, read in _READERS:
        if (value := data.get(key)) is not None:
            fields[field_name] = read(value)
    return CertState(**fields)


def _last(value: Any) -> LastResult:
    last = _object(value, "last")
    result = text(last.get("result"), "last.result", 20)
    if result not in RESULTS:
        raise RecordError("last.result is not a known result")
    error = last.get("error")
    return LastResult(when(last.get("at"), "last.at"), result,
                      None if error is None else text(error, "last.error", MAX_ERROR))


def _schedule(value: Any) -> Schedule | None:
    """The ARI schedule; one that cannot be read is dropped, not the record damaged: it is
    the CA's advice, asked again on the next run, and a window a hostile CA made once must
    not stop the certificate's runs until someone edits the file."""
    try:
        return Schedule.from_json(value)
    except RecordError:
        return None


def _order(value: Any) -> PendingOrder:
    order = _object(value, "order")
    names = order.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RecordError("order.names is not a list of names")
    return _pending(text(order.get("url"), "order.url", MAX_URL), names)


def _deploys(value: Any) -> dict[str, DeployRecord]:
    deploys = _object(value, "deploy")
    if len(deploys) > MAX_TARGETS:
        raise RecordError(f"deploy has more than {MAX_TARGETS} targets")
    return {text(key, "deploy key", MAX_TARGET_KEY): _deploy_record(record, key)
            for key, record in deploys.items()}


def _revocation(value: Any) -> Revocation:
    revocation = _object(value, "revocation")
    return Revocation(serial_hex(revocation.get("serial"), "revocation.serial"),
                      when(revocation.get("at"), "revocation.at"),
                      revocation.get("confirmed") is True)


#: The record's keys in the order they are read (the first damaged one is named), each
#: with the state's field it fills and its reader.
_READERS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("last", "last", _last), ("backoff", "backoff", Backoff.from_json),
    ("ari", "ari", _schedule), ("order", "order", _order),
    ("deploy", "deploys", _deploys), ("alarm_at", "alarm_at", partial(when, what="alarm_at")),
    ("revocation", "revocation", _revocation))


def _deploy_record(value: Any, key: str) -> DeployRecord:
    what = f"deploy[{key[:80]!r}]"
    value = _object(value, what)
    at = when(value.get("at"), f"{what}.at")
    if value.get("error") is not None:
        return DeployRecord(at, error=text(value.get("error"), f"{what}.error", MAX_ERROR))
    version = value.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise RecordError(f"{what}.version is not a version number")
    return DeployRecord(at, serial_hex(value.get("serial"), f"{what}.serial"), version)


__all__ = ["CertState", "DeployRecord", "LastResult", "PendingOrder", "Revocation",
           "StateDamaged"]
