"""Shared fixtures: real databases (SQLite and PostgreSQL) and real ``hps serve`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.databases import database
from harness.processes import ServerProcess

ADMIN_TOKEN = "test-admin-token"
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


@dataclass
class RunningServer:
    """A live server and what a client needs to talk to it."""

    process: ServerProcess
    base_url: str
    database_url: str
    data_dir: Path

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        """An HTTP client that authenticates with ``token``."""
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )


def start_server(database_url: str, data_dir: Path, **env: str) -> RunningServer:
    """Start ``hps serve`` on ``database_url`` (migrating it first for PostgreSQL)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if database_url.startswith("postgresql"):
        from service.store.schema import upgrade

        upgrade(database_url)
    environment = {
        "HPS_DATABASE_URL": database_url,
        "HPS_ADMIN_TOKEN": ADMIN_TOKEN,
        "HPS_DATA_DIR": str(data_dir),
        **env,
    }
    process = ServerProcess(environment, data_dir / "server.log")
    try:
        base_url = process.wait_ready()
    except BaseException:
        process.stop()
        raise
    return RunningServer(process, base_url, database_url, data_dir)


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
