"""What a run weighs of every certificate, fast: ``STATE/index.json``, a cache.

Touches ``index.json`` and reads the certificate directories. It holds each certificate's
``Standing`` (a short array), so a run over thousands of certificates reads one file, not
two per certificate, and parses no record it does not work on: the full version and state
records are read only when asked for (``Snapshot.meta``, ``Snapshot.state``). Each entry
is keyed by the certificate directory's mtime: activating a version or writing state
renames a file in that directory, which changes it. An entry younger than two seconds is
not trusted (a change within the same timestamp tick would go unseen), the way git treats
"racy" index entries. The index is only a cache: deleting it, or a stale one, costs time,
never correctness; a read-only store uses it but never writes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import fsutil
from ..errors import StoreError
from ..names import storage_name
from ..standing import Standing, from_json, of
from ..state import CertState
from .meta import VersionMeta

INDEX_LIMIT = 1 << 30  # ~500 bytes a certificate: room for two million
RACY_NS = 2_000_000_000
NO_STATE = CertState()
FORMAT = 2            # entries are [mtime, standing]; an index of another format is ignored


class Snapshot:
    """One certificate as a run sees it: its standing, its active version and state
    record, or why they cannot be read (``damage``: the certificate fails alone, the others
    go on). From the index, the records are read when first asked for."""

    __slots__ = ("_load", "_meta", "_state", "damage", "standing")

    def __init__(self, meta: VersionMeta | None, state: CertState, damage: str | None = None,
                 standing: Standing | None = None,
                 load: tuple[Callable[[str], Snapshot], str] | None = None):
        self._meta, self._state, self.damage, self._load = meta, state, damage, load
        self.standing = standing if standing is not None else of(meta, state)

    def _records(self) -> None:
        """Read the records the index stood in for (``load``: the reader and the name)."""
        if self._load is None:
            return
        read, name = self._load
        self._load = None
        snap = read(name)
        self._meta, self._state, self.damage = snap.meta, snap.state, snap.damage

    @property
    def meta(self) -> VersionMeta | None:
        self._records()
        return self._meta

    @property
    def state(self) -> CertState:
        self._records()
        return self._state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return (self.meta, self.state, self.damage) == (other.meta, other.state, other.damage)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Snapshot({self.meta!r}, {self.state!r}, {self.damage!r})"


def snapshot(root: Path, names: Sequence[str], read: Callable[[str], Snapshot],
             writable: bool) -> dict[str, Snapshot]:
    """Each name's ``Snapshot``: from the index where it is fresh, else ``read(name)``
    (whose standing, unless damaged, goes into the index when ``writable``)."""
    index_path = root / "index.json"
    try:
        data = json.loads(fsutil.read_small(index_path, INDEX_LIMIT))
        index = data.get("certs") if isinstance(data, dict) and \
            data.get("format") == FORMAT else None
        if not isinstance(index, dict):
            index = {}
    except (FileNotFoundError, StoreError, ValueError, RecursionError):
        index = {}
    result: dict[str, Snapshot] = {}
    racy = time.time_ns() - RACY_NS
    changed = False
    certs, stat = f"{root}/certs/", os.stat   # this loop runs once per certificate
    for name in names:
        folder = certs + storage_name(name)
        try:
            mtime = stat(folder).st_mtime_ns
        except FileNotFoundError:
            result[name] = Snapshot(None, CertState())
            continue
        except OSError as exc:
            result[name] = Snapshot(None, CertState(), f"{folder}: {exc.strerror}")
            continue
        entry = index.get(name)
        if type(entry) is list and len(entry) == 2 and entry[0] == mtime and mtime < racy \
                and (standing := from_json(entry[1])) is not None:
            result[name] = Snapshot(None, NO_STATE, None, standing, (read, name))
            continue
        result[name] = snap = read(name)
        if snap.damage is None:
            index[name] = [mtime if mtime < racy else 0, snap.standing.to_json()]
            changed = True
    if changed and writable:
        with contextlib.suppress(StoreError):  # a cache that cannot be written is no fault
            fsutil.write_atomic(index_path, json.dumps({"format": FORMAT, "certs": index},
                                                       separators=(",", ":")).encode(),
                                mode=0o600)
    return result
