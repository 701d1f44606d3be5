"""Fault-test fixtures: a fresh server per test, with short leases and a fast reaper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.servers import RunningServer, start_server

FAST_LEASES = {
    "HPS_LEASE_SECONDS": "3",
    "HPS_HEARTBEAT_SECONDS": "1",
    "HPS_REAPER_INTERVAL_SECONDS": "0.5",
}

ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def make_server(database_url: str, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers on this test's database; every one is stopped when the test ends."""
    started: list[RunningServer] = []

    def make(port: int = 0, url: str | None = None, **env: str) -> RunningServer:
        server = start_server(url or database_url, tmp_path / "server", port=port, **{**FAST_LEASES, **env})
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.process.stop()
