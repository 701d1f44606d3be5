"""How long does a speech-recognition trial take on this CPU, against a digits trial measured in the same run?

Builds the built-in tasks once (the espeak-ng corpus and the pretrained network are made in the cache dir
first if it lacks them; that one-time cost is printed separately), then runs trials with the tasks' default
settings through the workers' own training loop (``hps.workers.training.train``), Adam at 1e-3, and prints
seconds per trial, the ratio to digits, and where val_cer went.

    python bench/speech_trial.py [--cache-dir var/bench-cache] [--trials 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from hps.catalog.builtins import DIGITS, SPEECH_RECOGNITION
from hps.catalog.tasks import TaskInfo
from hps.workers.tasks import digits, speech
from hps.workers.tasks.base import Task
from hps.workers.training import Decision, TrainingPlan, train


def _trial_seconds(task: Task, info: TaskInfo, seed: int) -> tuple[float, list[float]]:
    plan = TrainingPlan(
        epochs=info.default_epochs,
        batch_size=info.default_batch_size,
        max_steps_per_epoch=info.default_max_steps_per_epoch,
        metric=info.default_metric,
        direction=info.metrics[info.default_metric],
        seed=seed,
        device=torch.device("cpu"),
    )
    started = time.perf_counter()
    outcome = train(task, {"optimizer": "adam", "lr": 1e-3}, plan, lambda _: Decision.CONTINUE)
    curve = [float(point[info.default_metric] or 0.0) for point in outcome.attrs["learning_curve"]]
    return time.perf_counter() - started, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=Path("var/bench-cache"))
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    speech_task = speech.make_task(None, None, args.cache_dir)
    print(
        f"speech task built (corpus and pretraining made if missing): {time.perf_counter() - started:.1f} s"
    )
    digits_task = digits.make_task(None, None, args.cache_dir)

    rows = []
    for name, task, info in (("digits", digits_task, DIGITS), ("speech", speech_task, SPEECH_RECOGNITION)):
        runs = [_trial_seconds(task, info, seed) for seed in range(args.trials)]
        seconds = statistics.median(run[0] for run in runs)
        rows.append((name, seconds))
        curve = ", ".join(f"{value:.3f}" for value in runs[0][1])
        print(f"{name}: {seconds:.1f} s a trial (median of {args.trials}); {info.default_metric}: {curve}")
    print(f"speech / digits: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
