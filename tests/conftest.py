"""Shared fixtures: real databases (SQLite and PostgreSQL) and real ``hps serve`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.databases import database
from harness.servers import RunningServer, start_server

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


@pytest.fixture(scope="module", params=BACKENDS)
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per test module and backend; tests give their studies unique names."""
    directory = tmp_path_factory.mktemp(f"server-{request.param}")
    with database(str(request.param), directory) as url:
        server = start_server(url, directory)
        try:
            yield server
        finally:
            server.process.stop()
