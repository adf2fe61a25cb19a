"""Shared pytest fixtures: the local Pebble test CA (see tools/pebble_lab.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_TOOLS_DIR = str(Path(__file__).resolve().parent.parent / "tools")
if _TOOLS_DIR not in sys.path:
    sys.path.insert(0, _TOOLS_DIR)

from pebble_lab import LabUnavailable, PebbleLab, find_binaries  # noqa: E402

PebbleLabFactory = Callable[..., PebbleLab]


def require(find: Callable[[], object], unavailable: type[Exception]) -> None:
    """Skip when a component is not installed, but fail under CI (CI=<non-empty>), so
    integration tests never silently skip there."""
    try:
        find()
    except unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} [CI is set: not skipping]", pytrace=False)
        pytest.skip(str(exc))


def require_pebble() -> None:
    require(find_binaries, LabUnavailable)


@pytest.fixture
def pebble_lab_factory(tmp_path: Path) -> Iterator[PebbleLabFactory]:
    """``make(env=None, config=None, *, strict=True) -> PebbleLab``: a started lab in a
    fresh tmp dir, stopped at teardown. For tests that need non-default knobs."""
    require_pebble()
    labs: list[PebbleLab] = []

    def make(
        env: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
        *,
        strict: bool = True,
    ) -> PebbleLab:
        lab = PebbleLab(tmp_path / f"pebble-{len(labs)}", env=env, config=config, strict=strict)
        labs.append(lab)
        return lab.start()

    try:
        yield make
    finally:
        for lab in reversed(labs):
            lab.stop()


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleLab]:
    """One lab with default knobs shared by the whole session. Its state (accounts,
    orders, DNS mocks) accumulates: use unique names, or pebble_lab_factory."""
    require_pebble()
    with PebbleLab(tmp_path_factory.mktemp("pebble")) as lab:
        yield lab
