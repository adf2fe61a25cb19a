"""State directories of N stored certificates for the start-up and no-op figures.

Built by bench/_build_state.py in a child that imports the tree under test, and kept under
``.cache/bench/state-<N>-<key>/``: writing 100,000 certificates creates well over a million
files and takes many minutes, so it is done once. The key is a digest of the files the
tree writes for a certificate (its store format), of the builder and of N: a tree that
writes anything differently gets a state of its own, built afresh. A cached state also
expires (its certificates would come due, its renewal information would go stale).
What runs add at the top of a cached state (the planning index, clock.json, run markers)
is removed before each use, so each tree builds its own index in the warm-up run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _lab import BenchError, Tree

BUILDER = Path(__file__).resolve().parent / "_build_state.py"
MAX_AGE = timedelta(days=30)  # the builder's certificates are not due for 50 days
RACY = 2.5  # an index trusts no entry younger than 2 s (store/index.py): let them age


def note(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def builder(tree: Tree, *args: str) -> str:
    """Run the builder in the tree; its progress (stderr) goes to ours."""
    proc = subprocess.run([tree.python, str(BUILDER), *args], env=tree.env,
                          cwd=tempfile.gettempdir(), stdout=subprocess.PIPE, text=True,
                          check=False)
    if proc.returncode:
        raise BenchError(f"building a state directory with {tree.src} failed (its "
                         f"messages are above): {proc.stdout[-1000:]}")
    return proc.stdout.strip()


def build(tree: Tree, state: Path, count: int) -> None:
    note(f"writing {count} certificates through {tree.src}'s Store (fsync off)")
    note(builder(tree, "build", str(state), str(count)))
    time.sleep(RACY)


def _top(state: Path) -> list[str]:
    return sorted(p.name for p in state.iterdir())


def _stamp(folder: Path) -> dict[str, object] | None:
    try:
        stamp = json.loads((folder / "stamp.json").read_text())
        built = datetime.fromisoformat(stamp["built_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return stamp if datetime.now(UTC) - built < MAX_AGE else None


def _tidy(state: Path, pristine: list[str]) -> None:
    """Remove what runs added at the top of a cached state."""
    for name in set(_top(state)) - set(pristine):
        path = state / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _prune(cache: Path, keep: Path) -> None:
    """Remove expired cached states nobody is using."""
    for folder in cache.glob("state-*"):
        if folder == keep or not folder.is_dir() or _stamp(folder) is not None:
            continue
        with open(folder.with_suffix(".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def stored_state(tree: Tree, count: int, cache: Path | None) -> Iterator[Path]:
    """A state directory holding ``count`` certificates in ``tree``'s format (nothing due),
    from the cache when it has a matching one; held (flock) while in use."""
    if cache is None:
        with tempfile.TemporaryDirectory(prefix="certfleet-bench-state-") as tmp:
            build(tree, Path(tmp) / "state", count)
            yield Path(tmp) / "state"
        return
    fmt = builder(tree, "format")
    key = hashlib.sha256(f"{fmt} {count}".encode() + BUILDER.read_bytes()).hexdigest()[:16]
    cache.mkdir(parents=True, exist_ok=True)
    folder = cache / f"state-{count}-{key}"
    with open(folder.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = _stamp(folder)
        if stamp is None:
            shutil.rmtree(folder, ignore_errors=True)
            for leftover in cache.glob(f".{folder.name}.tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            building = cache / f".{folder.name}.tmp-{os.getpid()}"
            building.mkdir()
            note(f"no cached state of {count} certificates in this format; building it "
                 f"once into {folder}")
            build(tree, building / "state", count)
            stamp = {"count": count, "format": fmt, "built_at": datetime.now(UTC).isoformat(),
                     "built_with": str(tree.root), "pristine": _top(building / "state")}
            (building / "stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
            os.rename(building, folder)
            _prune(cache, folder)
        else:
            note(f"using the cached state of {count} certificates in {folder} (built "
                 f"{str(stamp['built_at'])[:16]})")
        pristine = stamp["pristine"]
        assert isinstance(pristine, list)
        _tidy(folder / "state", pristine)
        yield folder / "state"

