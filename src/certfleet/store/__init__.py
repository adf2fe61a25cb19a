"""The store: certificate versions, state records, accounts and locks.

``interface.CertStore`` is what the rest of certfleet may ask of a store. Two implement
it: ``files.Store``, the state directory (``meta.py`` holds the values it returns,
``versions.py`` a certificate's versions, ``index.py`` the planning cache, ``locks.py``
the per-certificate locks), and, with ``[store] backend = "postgresql"``,
``postgres.PgStore``: certificates, state, accounts and tokens shared in PostgreSQL, the
state directory for what stays on each Work host (docs/shared-store.md). ``open_store``
picks one, and only then is the driver imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .files import Store
from .index import Snapshot
from .interface import CertStore
from .locks import LOCK_WAIT
from .meta import PEM_FILES, StoredCert, VersionMeta, ca_id
from .versions import KEEP_VERSIONS, MIN_FREE_BYTES

if TYPE_CHECKING:
    from ..spec import JobConfig

__all__ = [
    "KEEP_VERSIONS",
    "LOCK_WAIT",
    "MIN_FREE_BYTES",
    "PEM_FILES",
    "CertStore",
    "Snapshot",
    "Store",
    "StoredCert",
    "VersionMeta",
    "ca_id",
    "open_store",
]


def open_store(job: JobConfig, *, create: bool = True) -> CertStore:
    """The store ``job`` names: the state directory alone, or PostgreSQL shared by several
    Work hosts with the state directory for what stays local. ``close()`` when done."""
    if not job.store.shared:
        return Store(job.state_dir, create=create)
    from .postgres import PgStore

    return PgStore(job.state_dir, job.store, create=create,
                   account_key_type=job.account_key_type)
