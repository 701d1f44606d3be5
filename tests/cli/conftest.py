"""The ``hps`` CLI aimed at the module's real server (the root conftest's ``api_server``: SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest

from harness.cli import Hps
from harness.servers import RunningServer


@pytest.fixture
def server(api_server: RunningServer) -> RunningServer:
    """The module's server, under the name the CLI tests use."""
    return api_server


@pytest.fixture
def hps(server: RunningServer) -> Hps:
    """The CLI, pointed at the module's server."""
    return Hps(server.base_url)
