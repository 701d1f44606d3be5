"""The SDK examples run as real scripts against a real server and leave the study they promise."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.databases import sqlite_url
from harness.processes import ManagedProcess
from harness.servers import ADMIN_TOKEN, RunningServer, serving
from hps.client.http import HpsClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TRIALS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One SQLite server for both examples."""
    directory = tmp_path_factory.mktemp("examples-server")
    with serving(sqlite_url(directory), directory) as running:
        yield running


@pytest.mark.parametrize("script", ["torch_external.py", "keras_external.py"])
def test_example_drives_its_study_to_the_end(server: RunningServer, tmp_path: Path, script: str) -> None:
    args = [sys.executable, str(EXAMPLES / script), "--api", server.base_url, "--token", ADMIN_TOKEN]
    # One CPU thread each: the machine is shared, and the models are tiny.
    env = {"OMP_NUM_THREADS": "1", "KERAS_BACKEND": "jax"}  # the Keras example must choose torch itself
    example = ManagedProcess([*args, "--trials", str(TRIALS)], env, tmp_path / f"{script}.log")
    try:
        code = example.wait(timeout=240)
    finally:
        example.stop()
    output = example.output()
    assert code == 0, output
    found = re.search(r"^study (\d+) (\S+)", output, re.MULTILINE)
    assert found, output
    with HpsClient(server.base_url, ADMIN_TOKEN) as client:
        study = client.get_study(int(found.group(1)))
        trials = list(client.trials(study.id))
    assert study.name == found.group(2) and study.state == "completed"
    assert len(trials) == TRIALS and {t.state for t in trials} <= {"complete", "pruned"}
    assert all(t.intermediate_values for t in trials)  # every trial reported its epochs
    assert study.best is not None and 0.0 <= (study.best.value or -1) <= 1.0
    assert f"best val_accuracy {study.best.value:.3f}" in output
    if script.startswith("keras"):
        assert "on keras backend torch" in output
