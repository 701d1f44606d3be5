"""Fault-test fixtures: fresh servers per test, with short leases and a fast reaper."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.servers import RunningServer, ServerAt, ServerFactory, start_server

FAST_LEASES = {
    "HPS_LEASE_SECONDS": "3",
    "HPS_REAPER_INTERVAL_SECONDS": "0.5",
}


@pytest.fixture
def server_at(tmp_path: Path) -> Iterator[ServerAt]:
    """Start servers on a given database URL; every one is stopped when the test ends."""
    started: list[RunningServer] = []

    def make(url: str, port: int = 0, **env: str) -> RunningServer:
        server = start_server(url, tmp_path / "server", port=port, **{**FAST_LEASES, **env})
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.process.stop()


@pytest.fixture
def make_server(database_url: str, server_at: ServerAt) -> ServerFactory:
    """Start servers on this test's database (SQLite and PostgreSQL runs)."""

    def make(port: int = 0, **env: str) -> RunningServer:
        return server_at(database_url, port=port, **env)

    return make
