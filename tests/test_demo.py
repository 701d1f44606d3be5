"""`hps demo`, the README's main command, runs end to end and prints its results."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import optuna

from harness.processes import ManagedProcess
from harness.servers import serving


def test_demo_runs_a_study_to_completion(tmp_path: Path) -> None:
    args = [
        sys.executable,
        "-m",
        "hps.cli",
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
    # What next: the commands it prints work as printed (the server on a free port instead of 8000).
    lines = [line.strip() for line in output.splitlines()]
    serve = next(line for line in lines if line.endswith(" serve") and "HPS_ADMIN_TOKEN=" in line)
    env = dict(part.split("=", 1) for part in shlex.split(serve) if "=" in part)
    assert Path(env["HPS_DATA_DIR"]) == (tmp_path / "demo").resolve()
    database = f"sqlite:///{Path(env['HPS_DATA_DIR']) / 'hps.db'}"
    with serving(database, tmp_path / "again", HPS_ADMIN_TOKEN=env["HPS_ADMIN_TOKEN"]) as server:
        report = shlex.split(next(line for line in lines if " report " in line and "--token" in line))
        report[report.index("--api") + 1] = server.base_url
        report[report.index("-o") + 1] = str(tmp_path / "report.html")
        command = [sys.executable, "-m", "hps.cli", *report[1:]]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, env={**os.environ, **clean}
        )
        assert done.returncode == 0 and (tmp_path / "report.html").is_file(), done.stderr
    loading = next(line for line in lines if line.startswith("optuna.load_study("))
    loaded = eval(loading, {"optuna": optuna})  # the line exactly as printed
    assert len(loaded.trials) == 8 and loaded.metric_names == ["val_accuracy"]
