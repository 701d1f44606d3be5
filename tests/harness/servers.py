"""Real ``hps serve`` processes on a given database, and what a client needs to reach them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.processes import ServerProcess

ADMIN_TOKEN = "test-admin-token"


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


def start_server(database_url: str, data_dir: Path, port: int = 0, **env: str) -> RunningServer:
    """Start ``hps serve`` on ``database_url`` (migrating it first for PostgreSQL); ``port`` 0 lets
    the OS pick a free port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if database_url.startswith("postgresql"):
        from hps.server.store.schema import upgrade

        upgrade(database_url)
    environment = {
        "HPS_DATABASE_URL": database_url,
        "HPS_ADMIN_TOKEN": ADMIN_TOKEN,
        "HPS_DATA_DIR": str(data_dir),
        # A module's tests share one server and send wrong tokens on purpose, all from 127.0.0.1; the
        # failed-authentication limit has tests of its own, on servers that set it.
        "HPS_AUTH_FAILURE_BURST": "100000",
        **env,
    }
    log = data_dir / f"server-{time.monotonic_ns()}.log"
    process = ServerProcess(environment, log, port=port)
    try:
        base_url = process.wait_ready()
    except BaseException:
        process.stop()
        raise
    return RunningServer(process, base_url, database_url, data_dir)


@contextmanager
def serving(database_url: str, data_dir: Path, **env: str) -> Iterator[RunningServer]:
    """:func:`start_server` for a ``with`` block: the server is stopped (by PID) when the block ends."""
    server = start_server(database_url, data_dir, **env)
    try:
        yield server
    finally:
        server.process.stop()


# Fixtures that start servers hand tests one of these.
ServerAt = Callable[..., RunningServer]
ServerFactory = Callable[..., RunningServer]
