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
from pg_lab import PgLab, PgUnavailable, find_bin_dir  # noqa: E402

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


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgLab]:
    """One unprivileged PostgreSQL cluster for the session (tools/pg_lab.py): TLS on a
    loopback port, its CA in ``ca_file``, the password in ``password_file``."""
    require(find_bin_dir, PgUnavailable)
    with PgLab(tmp_path_factory.mktemp("postgres")) as lab:
        yield lab


@pytest.fixture
def postgres(postgres_cluster: PgLab, request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    """A fresh database of the session's cluster for one test, dropped after it."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + \
        f"_{os.getpid()}_{next(_DB_COUNT)}"
    postgres_cluster.psql(f"CREATE DATABASE {name}", database="postgres")
    try:
        yield PgDatabase(postgres_cluster, name)
    finally:
        postgres_cluster.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                              database="postgres")


class PgDatabase:
    """One database of a ``PgLab``: its DSN and the files a certfleet.toml names."""

    def __init__(self, lab: PgLab, name: str) -> None:
        self.lab, self.name = lab, name
        self.dsn = f"postgresql://certfleet@localhost:{lab.port}/{name}"
        self.ca_file, self.password_file = lab.ca_file, lab.password_file

    def psql(self, sql: str) -> str:
        return self.lab.psql(sql, database=self.name)


_DB_COUNT = iter(range(1 << 30))
