"""`hps demo`, the README's main command, runs end to end and prints its results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_a_study_to_completion(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "demo", "--trials", "8", "--data-dir", str(tmp_path)],
        env={key: value for key, value in os.environ.items() if not key.startswith("HPS_")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed: budget spent" in done.stdout
    assert "best val_accuracy" in done.stdout
    assert "per optimizer" in done.stdout and "adamw" in done.stdout
    assert (tmp_path / "hps.db").is_file() and (tmp_path / "cache" / "digits-cnn-v1.safetensors").is_file()
