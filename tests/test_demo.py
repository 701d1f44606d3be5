"""`hps demo`, the README's main command, runs end to end and prints its results."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.processes import ManagedProcess


def test_demo_runs_a_study_to_completion(tmp_path: Path) -> None:
    args = [
        sys.executable,
        "-m",
        "service.cli",
        "demo",
        "--trials",
        "8",
        "--data-dir",
        str(tmp_path / "demo"),
    ]
    clean = {key: "" for key in os.environ if key.startswith("HPS_")}
    demo = ManagedProcess(args, clean, tmp_path / "demo.log")
    try:
        code = demo.wait(timeout=300)
    finally:
        demo.stop()
    output = demo.output()
    assert code == 0, output
    assert "completed: budget spent" in output
    assert "best val_accuracy" in output
    assert "per optimizer" in output and "adamw" in output
    assert (tmp_path / "demo" / "hps.db").is_file()
    assert (tmp_path / "demo" / "cache" / "digits-cnn-v1.safetensors").is_file()
