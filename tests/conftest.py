"""Shared fixtures: real databases (SQLite and PostgreSQL), the in-process objects use cases need, and real
``hps serve`` processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# The suite runs in several processes on few cores: one thread of linear algebra each (and in the
# servers and workers they start, which inherit it) instead of every process taking every core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest

from harness.databases import database
from harness.servers import RunningServer, serving
from harness.stack import Stack
from hps.catalog.registry import load_registry
from hps.server.sampling import Sampling
from hps.server.store.database import Database
from hps.server.store.schema import upgrade

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of the test's backend."""
    with database(db_kind, tmp_path) as url:
        yield url


@pytest.fixture
def stack(database_url: str) -> Iterator[Stack]:
    """A migrated database with the objects use cases need (for use-case, store and scheduler tests)."""
    upgrade(database_url)
    db = Database(database_url)
    sampling = Sampling(database_url)
    try:
        yield Stack(database_url, db, sampling, load_registry())
    finally:
        sampling.close()
        db.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per test module and backend; tests give their studies unique names."""
    directory = tmp_path_factory.mktemp(f"server-{request.param}")
    with database(str(request.param), directory) as url, serving(url, directory) as server:
        yield server
