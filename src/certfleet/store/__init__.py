"""The store: certificate versions, state records, accounts and locks.

Touches the state directory (``files.py``); ``meta.py`` holds the values it returns,
``index.py`` the planning cache, ``locks.py`` the per-certificate locks.
"""

from __future__ import annotations

from .files import KEEP_VERSIONS, MIN_FREE_BYTES, Store
from .index import Snapshot
from .locks import LOCK_WAIT
from .meta import PEM_FILES, StoredCert, VersionMeta, ca_id

__all__ = ["KEEP_VERSIONS", "LOCK_WAIT", "MIN_FREE_BYTES", "PEM_FILES", "Snapshot", "Store",
           "StoredCert", "VersionMeta", "ca_id"]
