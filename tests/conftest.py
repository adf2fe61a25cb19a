"""Shared pytest fixtures and hooks: the local Pebble test CA (see tools/pebble_lab.py),
the handling of a missing component or privilege, and the seed of randomised tests.

The seed: every random choice a test makes (the kill moments of tests/faults/test_kill9.py,
the examples of the hypothesis property tests) comes from one session seed, printed at the
end of every run and next to every failure; ``CERTFLEET_TEST_SEED=<seed>`` replays it.
A test's own seed is derived from the session seed and its node id, so the test replays
alone as well as in the whole suite.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

_TOOLS_DIR = str(Path(__file__).resolve().parent.parent / "tools")
if _TOOLS_DIR not in sys.path:
    sys.path.insert(0, _TOOLS_DIR)

import mutation_hooks  # noqa: E402
from pebble_lab import LabUnavailable, PebbleLab, find_binaries  # noqa: E402
from pg_lab import PgLab, PgUnavailable, find_bin_dir  # noqa: E402

PebbleLabFactory = Callable[..., PebbleLab]


def missing(reason: str) -> NoReturn:
    """Something a test needs is absent (a component, a tool, root): skip, but fail under
    CI (CI=<non-empty>), so that no test silently skips there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} [CI is set: not skipping]", pytrace=False)
    pytest.skip(reason)


def require(find: Callable[[], object], unavailable: type[Exception]) -> None:
    """``find()`` the component, or ``missing`` with the reason it gives."""
    try:
        find()
    except unavailable as exc:
        missing(str(exc))


def need_root(why: str) -> None:
    """The test does what only root may (chown to another user, mount, useradd)."""
    if os.geteuid() != 0:
        missing(f"needs root: {why}")


# -- the seed of randomised tests -------------------------------------------------------------

SEED_ENV = "CERTFLEET_TEST_SEED"
_SEED = pytest.StashKey[int]()


def _session_seed() -> int:
    text = os.environ.get(SEED_ENV, "").strip()
    if not text:
        return random.SystemRandom().randrange(2**32)
    try:
        return int(text)
    except ValueError:
        raise pytest.UsageError(f"{SEED_ENV}={text!r}: not an integer") from None


def _hypothesis_profile(config: pytest.Config, seed: int) -> None:
    """Property tests: no deadline (a loaded machine would trip it, and the suite bounds
    nothing by it), no too_slow health check (the same), no example database (what runs
    depends on the seed alone), the session seed unless ``--hypothesis-seed`` is given,
    and the reproduce_failure blob printed with a failure."""
    from hypothesis import HealthCheck, settings

    settings.register_profile("certfleet", deadline=None, print_blob=True, database=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("certfleet")
    if hasattr(config.option, "hypothesis_seed") and config.option.hypothesis_seed is None:
        config.option.hypothesis_seed = str(seed)  # the plugin's pytest_configure reads it


@pytest.hookimpl(tryfirst=True)  # before hypothesis's plugin reads --hypothesis-seed
def pytest_configure(config: pytest.Config) -> None:
    seed = _session_seed()
    config.stash[_SEED] = seed
    _hypothesis_profile(config, seed)
    if mutation_hooks.active():
        config.pluginmanager.register(mutation_hooks.Bound(), "mutation_hooks")
        config.pluginmanager.register(
            mutation_hooks.Order(os.environ["MUTANT_UNDER_TEST"], list(config.args)),
            "mutation_order")


def pytest_unconfigure(config: pytest.Config) -> None:
    mutation_hooks.collected(config)


def _replay(config: pytest.Config) -> str:
    seed = config.stash[_SEED]
    return f"{SEED_ENV}={seed} replays the random choices of this run"


def pytest_report_header(config: pytest.Config) -> str:
    return f"certfleet test seed: {config.stash[_SEED]}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    terminalreporter.write_line(f"certfleet test seed: {_replay(config)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(("certfleet test seed", _replay(item.config)))


@pytest.fixture
def rng_seed(request: pytest.FixtureRequest) -> int:
    """This test's seed: the session seed and the test's node id, so that the test replays
    the same alone or in the whole suite."""
    text = f"{request.config.stash[_SEED]}:{request.node.nodeid}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


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

    def psql_session(self, sql: str) -> subprocess.Popen[str]:
        return self.lab.psql_session(sql, database=self.name)


_DB_COUNT = iter(range(1 << 30))
