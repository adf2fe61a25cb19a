"""Fill an empty state directory with COUNT issued certificates through the tree's Store.

    PYTHONPATH=TREE/src python bench/_build_state.py build STATE_DIR COUNT
    PYTHONPATH=TREE/src python bench/_build_state.py format

Run by bench/_state.py in a child whose PYTHONPATH is the tree under test, so the files are
in that tree's format. Setup only, never measured: fsync is switched off (in this process
only). Each certificate ``siteN.bench.example`` (with ``www.siteN.bench.example``) is 1 day
old, valid 90 days, and has a fresh answer of the CA's renewal information (RFC 9773): its
window is in 55-60 days and the CA is not to be asked again for 60 days. So a run finds
nothing due and has no reason to ask a CA. The PEM files are placeholders: deciding that
nothing is due must not need to read them.

``format`` prints a digest of what the tree writes for two certificates (names, serials
and dates aside): cached states are keyed by it, so trees that write the same files share
one cached state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SERIAL0 = 0xBE0C4000000000  # distinctive in hex, so that it can be found in the files
DATE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def name_of(i: int) -> str:
    return f"site{i}.bench.example"


def no_fsync(*_: object) -> None:
    return None


async def fill(store: Any, count: int, now: dt.datetime) -> None:
    from certfleet.protocol.ari import Schedule  # noqa: PLC0415 - after fsync is off
    from certfleet.store import PEM_FILES, VersionMeta  # noqa: PLC0415

    day = dt.timedelta(days=1)
    files = {pem: b"placeholder: " + pem.encode() + b"\n" for pem in PEM_FILES}
    for i in range(count):
        name, serial = name_of(i), SERIAL0 + i
        meta = VersionMeta(
            version=1, names=(name, f"www.{name}"), key_type="ec256", serial=serial,
            not_before=(now - day).isoformat(), not_after=(now + 89 * day).isoformat(),
            issuer="CN=certfleet bench", aki="b3e7c0a5d1f2e4b6a8c9d0e1f2a3b4c5d6e7f809",
            issued_at=(now - day).isoformat(), directory="https://127.0.0.1:9/dir",
            order_url="")
        store.activate(name, files, meta)
        schedule = Schedule(f"{serial:x}", next_fetch=now + 60 * day, start=now + 55 * day,
                            end=now + 60 * day, chosen=now + 57 * day)
        async with store.locked(name):
            store.update_state(name, lambda state, s=schedule: state.with_ari(s))
        if (i + 1) % 10_000 == 0:
            print(f"  .. {i + 1}/{count} written", file=sys.stderr, flush=True)


def store_format(root: Path) -> str:
    """Digest of every path, kind, mode and content the tree writes for two
    certificates, with their names, serials and dates replaced by placeholders."""
    from certfleet.store import Store  # noqa: PLC0415 - after fsync is off

    asyncio.run(fill(Store(root), 2, dt.datetime.now(dt.UTC)))
    found = []
    for path in sorted(root.rglob("*")):
        info = os.lstat(path)
        data = os.readlink(path).encode() if path.is_symlink() else (
            path.read_bytes() if path.is_file() else b"")
        rel = str(path.relative_to(root)).encode()
        for i in range(2):
            rel = rel.replace(name_of(i).encode(), b"{NAME}")
            data = data.replace(name_of(i).encode(), b"{NAME}")
            data = data.replace(f"{SERIAL0 + i:x}".encode(), b"{SERIAL}")
        found.append((rel, info.st_mode, DATE.sub(b"{DATE}", data)))
    return hashlib.sha256(repr(found).encode()).hexdigest()


def main() -> int:
    import certfleet  # noqa: PLC0415 - the tree's, checked here

    tree_src = Path(os.environ["PYTHONPATH"].split(os.pathsep)[0]).resolve()
    if not Path(certfleet.__file__).resolve().is_relative_to(tree_src):
        raise SystemExit(f"certfleet imported from {certfleet.__file__}, not {tree_src}")
    os.fsync = os.fdatasync = no_fsync
    os.sync = no_fsync
    if sys.argv[1:2] == ["format"]:
        with tempfile.TemporaryDirectory() as tmp:
            print(store_format(Path(tmp) / "state"))
        return 0
    root, count = Path(sys.argv[2]), int(sys.argv[3])
    from certfleet.store import Store  # noqa: PLC0415 - after fsync is off

    start = time.perf_counter()
    asyncio.run(fill(Store(root), count, dt.datetime.now(dt.UTC).replace(microsecond=0)))
    print(f"{count} certificates written in {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
