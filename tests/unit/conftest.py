"""Fixtures shared by the unit tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def silent_ca() -> Iterator[socket.socket]:
    """A listening socket standing for the CA: nothing may connect to it (a test checks
    with ``accept``, which must find no connection waiting)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        yield listener
