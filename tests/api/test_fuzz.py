"""Schemathesis over /openapi.json against a real server on SQLite and on PostgreSQL: every default check
and every phase (examples, coverage, fuzzing, and the stateful phase that follows the document's links from
create to ask, report and complete), authenticated, zero failures (the configured exceptions are explained
in schemathesis.toml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.databases import database
from harness.servers import ADMIN_TOKEN, RunningServer, serving

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = os.environ.get("HPS_FUZZ_EXAMPLES", "30")


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    # The rate limits are off: the fuzzer sends thousands of requests, many with a wrong token.
    limits = {"HPS_RATE_LIMIT_PER_SECOND": "0", "HPS_AUTH_FAILURE_RATE_PER_SECOND": "0"}
    with database(str(request.param), tmp_path) as url, serving(url, tmp_path, **limits) as server:
        yield server


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
    # The stateful phase followed the document's links (create -> ask -> report/complete, claims, schedules).
    covered = re.search(r"API Links:\s+(\d+) covered", done.stdout)
    assert covered is not None and int(covered.group(1)) >= 10, report
