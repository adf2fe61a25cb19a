"""Fixtures of the adversarial tests: a fresh fake CA per test, and the harness that runs
certfleet against it in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fakeca import FakeCA
from .harness import Harness


@pytest.fixture
def ca() -> Iterator[FakeCA]:
    fake = FakeCA().start()
    yield fake
    fake.stop()


@pytest.fixture
def h(ca: FakeCA, tmp_path: Path) -> Harness:
    return Harness(ca, tmp_path)
