"""A stored certificate in the few values a run weighs: its ``Standing``. Touches nothing.

Planning, the renewal-information refresh, the expiry alarm and the metrics read these of
every certificate on every run, while the full version record and state record matter
only for the few certificates a run works on. So the index (``store.index``) caches the
standing of each certificate as a short JSON array, and a run over a hundred thousand
certificates where nothing is due never parses their records. ``of`` is the one place a
standing is derived; everything that decides from it (``plan``) sees the same values
whether they came from the index or from the records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .state import CertState
    from .store.meta import VersionMeta

MAX_KEY = 1400   # a target key, as state.MAX_TARGET_KEY
MAX_TEXT = 1000  # an error, as state.MAX_ERROR


class Standing(NamedTuple):
    """Times are POSIX seconds; ``names`` is empty when nothing was issued yet."""

    names: tuple[str, ...]
    key_type: str
    serial: int
    not_before: float
    not_after: float
    issued_at: float
    has_aki: bool                 # a renewal-information (RFC 9773) ID can be made
    ari_chosen: float | None      # the renewal time chosen in this serial's ARI window
    ari_fetch_at: float | None    # when to ask for this serial's window again (None: now)
    revoked: bool
    deployed: frozenset[str]      # targets recorded as holding this serial
    failures: int                 # failed attempts in a row (0: none)
    waiting_until: float | None   # no attempt before this (the backoff)
    last_error: str | None        # the last failure, when there is a backoff
    alarm_at: float | None        # when the expiry alarm last went off

    def time(self, field: float) -> datetime:
        return datetime.fromtimestamp(field, UTC)

    def waiting(self, now: datetime) -> datetime | None:
        """When the next attempt may be made, if that is still in the future."""
        until = self.waiting_until
        return self.time(until) if until is not None and until > now.timestamp() else None

    def ari_due(self, now: datetime) -> bool:
        """Whether to ask the CA for this serial's renewal window now."""
        return self.has_aki and (self.ari_fetch_at is None or now.timestamp() >= self.ari_fetch_at)

    def to_json(self) -> list[Any]:
        return [list(self.names), self.key_type, f"{self.serial:x}", self.not_before,
                self.not_after, self.issued_at, self.has_aki, self.ari_chosen,
                self.ari_fetch_at, self.revoked, sorted(self.deployed), self.failures,
                self.waiting_until, self.last_error, self.alarm_at]


NOTHING = Standing((), "", 0, 0.0, 0.0, 0.0, False, None, None, False, frozenset(), 0, None,
                   None, None)


def of(meta: VersionMeta | None, state: CertState) -> Standing:
    """The standing of a certificate from its active version (None: none) and record."""
    backoff = state.backoff
    failures = backoff.failures if backoff else 0
    waiting = backoff.until.timestamp() if backoff else None
    error = backoff.error if backoff else None
    alarm = state.alarm_at.timestamp() if state.alarm_at else None
    if meta is None:
        return NOTHING._replace(failures=failures, waiting_until=waiting, last_error=error,
                                alarm_at=alarm)
    serial = f"{meta.serial:x}"
    ari = state.ari if state.ari is not None and state.ari.serial == serial else None
    return Standing(
        meta.names, meta.key_type, meta.serial, meta.not_before_dt.timestamp(),
        meta.not_after_dt.timestamp(), datetime.fromisoformat(meta.issued_at).timestamp(),
        bool(meta.aki), ari.chosen.timestamp() if ari and ari.chosen else None,
        ari.next_fetch.timestamp() if ari else None, state.is_revoked(meta.serial),
        frozenset(k for k, r in state.deploys.items() if r.ok and r.serial == serial),
        failures, waiting, error, alarm)


def from_json(data: Any) -> Standing | None:
    """A standing read back from the index, or None if the entry is not one (the index is
    a cache: a bad entry is read again from the records, never trusted). Checked field by
    field in straight-line code: this runs once per certificate on every run."""
    if type(data) is not list or len(data) != 15:
        return None
    (names, key_type, serial, not_before, not_after, issued_at, has_aki, chosen, fetch_at,
     revoked, deployed, failures, waiting, error, alarm) = data
    if type(names) is not list or type(deployed) is not list or type(key_type) is not str \
            or type(serial) is not str or type(has_aki) is not bool \
            or type(revoked) is not bool or type(failures) is not int or failures < 0 \
            or not (error is None or (type(error) is str and len(error) <= MAX_TEXT)) \
            or not _times(not_before, not_after, issued_at) \
            or not _times_or_none(chosen, fetch_at, waiting, alarm):
        return None
    for item in names:
        if type(item) is not str:
            return None
    for item in deployed:
        if type(item) is not str or len(item) > MAX_KEY:
            return None
    try:
        number = int(serial, 16)
    except ValueError:
        return None
    return Standing(tuple(names), key_type, number, not_before, not_after, issued_at, has_aki,
                    chosen, fetch_at, revoked, frozenset(deployed), failures, waiting, error,
                    alarm)


_NUMBER = (float, int)
# POSIX seconds that ``Standing.time`` can turn back into a datetime: years 1 to 9999.
_EARLIEST, _LATEST = -62135596800, 253402300799


def _times(*values: Any) -> bool:
    for value in values:
        if type(value) not in _NUMBER or not _EARLIEST <= value <= _LATEST:
            return False
    return True


def _times_or_none(*values: Any) -> bool:
    for value in values:
        if value is not None and (type(value) not in _NUMBER
                                  or not _EARLIEST <= value <= _LATEST):
            return False
    return True
