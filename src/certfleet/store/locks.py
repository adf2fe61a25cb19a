"""Per-certificate locks: an ``flock`` on ``certs/<name>/lock``, held by one task at a time.

Touches the lock files only. The kernel drops an flock when its holder dies, so a killed
run never leaves a stale lock. Within one process the registry says which certificates
are held, so a second task asking for the same certificate waits like another process
would, and the store can check that a state change happens under the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ..errors import StoreError

LOCK_WAIT = 900.0   # seconds a run waits for a certificate another run holds
POLL = 0.05


class Locks:
    """The certificate locks this process holds."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def holds(self, name: str) -> bool:
        return name in self._held

    def try_lock(self, name: str, path: Path) -> bool:
        """Take the lock if it is free (in this process and every other)."""
        if name in self._held:
            return False
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot lock: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[name] = fd
        return True

    def unlock(self, name: str) -> None:
        fd = self._held.pop(name, None)
        if fd is not None:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def held(self, name: str, path: Path, wait: float = LOCK_WAIT) -> AsyncIterator[None]:
        """Hold the lock, waiting up to ``wait`` seconds without blocking other tasks."""
        import asyncio  # loaded already (a loop runs); not at import: `status` needs no loop

        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        delay = POLL
        while not self.try_lock(name, path):
            if loop.time() > deadline:
                raise StoreError(f"{name}: still locked by another run after {wait:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        try:
            yield
        finally:
            self.unlock(name)
