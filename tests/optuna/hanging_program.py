"""An Optuna program with heartbeats whose first trial hangs until the process is killed (started by
tests/optuna/test_heartbeats.py). Arguments: hps URL, token, a file to write once the trial runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna

from hps.optuna import HpsStorage


def main() -> None:
    url, token, marker = sys.argv[1:4]
    storage = HpsStorage(url, token=token, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="resumable", storage=storage)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        Path(marker).write_text(f"{x!r}")
        time.sleep(600)  # killed long before this ends
        return x

    study.optimize(objective, n_trials=1)


if __name__ == "__main__":
    main()
