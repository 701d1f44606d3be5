"""Schemathesis over /openapi.json against a real server on SQLite: every default check, authenticated,
zero failures (the one configured exception is explained in schemathesis.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.databases import sqlite_url
from harness.servers import ADMIN_TOKEN, RunningServer, start_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = os.environ.get("HPS_FUZZ_EXAMPLES", "30")


@pytest.fixture
def fuzz_target(tmp_path: Path) -> Iterator[RunningServer]:
    # The rate limit is off: the fuzzer sends thousands of requests with one token.
    server = start_server(sqlite_url(tmp_path), tmp_path, HPS_RATE_LIMIT_PER_SECOND="0")
    try:
        yield server
    finally:
        server.process.stop()


def test_schemathesis_finds_nothing(fuzz_target: RunningServer, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{fuzz_target.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--max-examples",
        EXAMPLES,
        "--seed",
        "20261129",
        "--generation-database",
        "none",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "passed" in done.stdout and "failures" not in done.stdout.split("SUMMARY")[-1], report
    assert "500 Internal Server Error" not in fuzz_target.process.output()
