"""A real ``hps serve`` per test module and backend (SQLite, PostgreSQL), and the ``hps`` CLI aimed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.cli import Hps
from harness.databases import database
from harness.servers import RunningServer, start_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per module and backend; the tests give their studies unique names."""
    directory = tmp_path_factory.mktemp(f"cli-server-{request.param}")
    with database(str(request.param), directory) as url:
        running = start_server(url, directory)
        try:
            yield running
        finally:
            running.process.stop()


@pytest.fixture
def hps(server: RunningServer) -> Hps:
    """The CLI, pointed at the module's server."""
    return Hps(server.base_url)
