"""What planning needs of every certificate, fast: ``STATE/index.json``, a cache.

Touches ``index.json`` and reads the certificate directories. Planning over thousands of
certificates would otherwise read two files each. Each entry is keyed by the certificate
directory's mtime: activating a version or writing state renames a file in that directory,
which changes it. An entry younger than two seconds is not trusted (a change within the
same timestamp tick would go unseen), the way git treats "racy" index entries. The index is
only a cache: deleting it, or a stale one, costs time, never correctness; a read-only store
uses it but never writes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import fsutil
from ..errors import StoreError
from ..names import storage_name
from ..state import CertState, StateDamaged
from .meta import VersionMeta

INDEX_LIMIT = 1 << 30  # ~500 bytes a certificate: room for two million
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Snapshot:
    """One certificate as planning sees it: its active version, its state record, or why
    they cannot be read (``damage``: the certificate fails alone, the others go on)."""

    meta: VersionMeta | None
    state: CertState
    damage: str | None = None


def snapshot(root: Path, names: Sequence[str], read: Callable[[str], Snapshot],
             writable: bool) -> dict[str, Snapshot]:
    """Each name's ``Snapshot``: from the index where it is fresh, else ``read(name)``
    (whose answer, unless damaged, goes into the index when ``writable``)."""
    index_path = root / "index.json"
    try:
        index = json.loads(fsutil.read_small(index_path, INDEX_LIMIT))
        if not isinstance(index, dict):
            index = {}
    except (FileNotFoundError, StoreError, ValueError, RecursionError):
        index = {}
    result: dict[str, Snapshot] = {}
    racy = time.time_ns() - RACY_NS
    changed = False
    for name in names:
        folder = os.path.join(root, "certs", storage_name(name))
        try:
            mtime = os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            result[name] = Snapshot(None, CertState())
            continue
        except OSError as exc:
            result[name] = Snapshot(None, CertState(), f"{folder}: {exc.strerror}")
            continue
        entry = index.get(name)
        if isinstance(entry, dict) and entry.get("mtime") == mtime and mtime < racy:
            with contextlib.suppress(StoreError, StateDamaged):
                result[name] = _from_entry(entry, str(index_path))
                continue
        result[name] = read(name)
        if result[name].damage is None:
            meta = result[name].meta
            index[name] = {"mtime": mtime if mtime < racy else 0,
                           "meta": meta.to_json() if meta else None,
                           "state": result[name].state.to_json()}
            changed = True
    if changed and writable:
        with contextlib.suppress(StoreError):  # a cache that cannot be written is no fault
            fsutil.write_atomic(index_path, json.dumps(index).encode(), mode=0o600)
    return result


def _from_entry(entry: dict[str, Any], where: str) -> Snapshot:
    raw = entry.get("meta")
    meta = VersionMeta.from_json(raw, where) if raw else None
    return Snapshot(meta, CertState.from_json(entry.get("state") or {}))
