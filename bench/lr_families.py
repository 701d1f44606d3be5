"""Which learning rates suit which model family: fine-tunes the bundled pretrained MiniLM on the bundled
reviews (the text task's defaults: 3 epochs of at most 20 steps, batch 16) with AdamW at a sweep of learning
rates, three seeds each, with hps's own training loop, and prints the validation accuracy of each.

This is the measurement behind ``workers/tasks/families.py`` (the transformer family's range and starts).
Run: ``.venv/bin/python bench/lr_families.py [--seeds 3]``; about 3 minutes a seed on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hps.catalog.builtins import TEXT_CLASSIFICATION, builtin_datasets, builtin_models
from hps.workers.tasks.text import make_task
from hps.workers.training import Decision, EpochResult, TrainingPlan, train

RATES = (1e-5, 2e-5, 5e-5, 1e-4, 3e-4, 1e-3, 3e-3)


def _continue(result: EpochResult) -> Decision:
    return Decision.CONTINUE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = next(entry for entry in builtin_models() if entry.name == TEXT_CLASSIFICATION.default_model)
    dataset = next(entry for entry in builtin_datasets() if entry.name == TEXT_CLASSIFICATION.default_dataset)
    task = make_task(model, dataset, Path(tempfile.mkdtemp()))
    print(f"{'lr':>8}  " + "  ".join(f"seed {seed}" for seed in range(args.seeds)) + "    median   s/trial")
    for lr in RATES:
        accuracies, started = [], time.perf_counter()
        for seed in range(args.seeds):
            plan = TrainingPlan(
                epochs=TEXT_CLASSIFICATION.default_epochs,
                batch_size=TEXT_CLASSIFICATION.default_batch_size,
                max_steps_per_epoch=TEXT_CLASSIFICATION.default_max_steps_per_epoch,
                metric="val_accuracy",
                direction="maximize",
                seed=seed,
                device=torch.device("cpu"),
            )
            outcome = train(task, {"optimizer": "adamw", "lr": lr}, plan, _continue)
            accuracies.append(outcome.value if outcome.value is not None else float("nan"))
        seconds = (time.perf_counter() - started) / args.seeds
        cells = "  ".join(f"{value:6.3f}" for value in accuracies)
        print(f"{lr:8.0e}  {cells}    {statistics.median(accuracies):6.3f}   {seconds:6.1f}")


if __name__ == "__main__":
    main()
