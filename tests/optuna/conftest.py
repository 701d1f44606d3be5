"""Fixtures of the Optuna-storage tests: one real ``hps serve`` per module and backend, and per test a
token of a fresh project (so each test sees only its own studies, as Optuna's suite expects of a
fresh storage)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.api import unique
from harness.databases import database
from harness.servers import RunningServer, serving
from hps.optuna import HpsStorage

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module", params=BACKENDS)
def optuna_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server per module and backend; rate limits off (an Optuna program makes several calls per
    trial) and a fast reaper (heartbeat tests)."""
    directory: Path = tmp_path_factory.mktemp(f"optuna-{request.param}")
    env = {"HPS_RATE_LIMIT_PER_SECOND": "0", "HPS_REAPER_INTERVAL_SECONDS": "1"}
    with database(str(request.param), directory) as url, serving(url, directory, **env) as server:
        yield server


def project_token(server: RunningServer, scopes: tuple[str, ...] = ("write",)) -> tuple[str, str]:
    """A new token of a new project: (project, secret)."""
    project = unique("p")
    with server.client() as admin:
        answer = admin.post("/v1/tokens", json={"name": project, "scopes": list(scopes), "project": project})
        answer.raise_for_status()
    return project, str(answer.json()["token"])


@pytest.fixture
def new_token(optuna_server: RunningServer) -> Callable[..., tuple[str, str]]:
    """Makes tokens of new projects on the module's server: ``new_token(scopes=("read",))``."""

    def make(scopes: tuple[str, ...] = ("write",)) -> tuple[str, str]:
        return project_token(optuna_server, scopes)

    return make


@pytest.fixture
def project_storage(optuna_server: RunningServer) -> tuple[str, str, HpsStorage]:
    """(project, token, storage) for a fresh project."""
    project, token = project_token(optuna_server)
    return project, token, HpsStorage(optuna_server.base_url, token=token)
