"""The collector paused over work that makes no garbage, and frozen after first-use imports."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from certfleet.gcpause import importing, paused


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector on, nothing frozen; as it was afterwards."""
    was = gc.isenabled()
    gc.unfreeze()
    gc.enable()
    yield
    gc.unfreeze()
    (gc.enable if was else gc.disable)()


def test_paused_restores_the_collector_as_it_was(collector: None) -> None:
    with paused():
        assert not gc.isenabled()
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    with paused():
        pass
    assert not gc.isenabled()


def test_what_a_first_use_import_made_is_frozen(collector: None, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "certfleet_test_long_lived.py").write_text(
        "TABLE = [[i] for i in range(1000)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with importing():
        assert not gc.isenabled()
        import certfleet_test_long_lived
    assert gc.isenabled()
    assert gc.get_freeze_count() >= 1000
    assert gc.get_count()[0] < 100    # the import's objects left the youngest generation
    del sys.modules["certfleet_test_long_lived"]
    assert certfleet_test_long_lived.TABLE[999] == [999]


def test_nothing_is_frozen_when_nothing_was_imported(collector: None) -> None:
    with importing():
        import json  # noqa: F401 - imported already: nothing new
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_a_failed_import_freezes_nothing_and_restores_the_collector(
        collector: None) -> None:
    with pytest.raises(ModuleNotFoundError), importing():
        import certfleet_no_such_module  # noqa: F401
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
