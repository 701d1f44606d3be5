"""A real SQLite ``hps serve`` per test module, and the ``hps`` CLI pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.cli import Hps
from harness.databases import sqlite_url
from harness.servers import RunningServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One SQLite server for the module's tests; they give their studies unique names."""
    directory = tmp_path_factory.mktemp("cli-server")
    running = start_server(sqlite_url(directory), directory)
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
def hps(server: RunningServer) -> Hps:
    """The CLI, pointed at the module's server."""
    return Hps(server.base_url)
