"""`hps serve` checks its settings and its database before it listens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from harness.databases import postgres_database
from hps.cli.main import listen


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hps.cli", "serve", "--port", "0"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_a_postgresql_schema_that_is_behind(tmp_path: Path) -> None:
    with postgres_database() as url:
        done = serve({"HPS_DATABASE_URL": url, "HPS_DATA_DIR": str(tmp_path)})
    assert done.returncode == 3
    assert "hps db upgrade" in done.stderr
    assert "Traceback" not in done.stderr


def test_nonsense_settings_fail_before_listening(tmp_path: Path) -> None:
    done = serve({"HPS_LEASE_SECONDS": "ten", "HPS_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "HPS_LEASE_SECONDS" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_database_fails_with_a_message(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:1/nothing"
    done = serve({"HPS_DATABASE_URL": url, "HPS_DATA_DIR": str(tmp_path)})
    assert done.returncode == 3
    assert "cannot open the database" in done.stderr and "Traceback" not in done.stderr


def test_the_listener_says_it_is_tcp_so_asyncio_turns_nagle_off() -> None:
    # With proto 0 (what socket.create_server makes), asyncio leaves Nagle's algorithm on for accepted
    # connections, and every response on a kept-alive connection waited ~40 ms for a delayed ACK.
    listener = listen("127.0.0.1", 0)
    try:
        assert listener.proto == socket.IPPROTO_TCP
        client = socket.create_connection(listener.getsockname()[:2])
        accepted, _ = listener.accept()
        assert accepted.proto == socket.IPPROTO_TCP
        accepted.close()
        client.close()
    finally:
        listener.close()
