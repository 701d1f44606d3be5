"""Time per trial of the tasks issue 14 adds, on this machine's CPU, against the ResNet-18 image trial
measured in the same run.

    python bench/trial_times.py [--threads 1] [--cache DIR]

One trial each, with the task's default epochs, batch size and max_steps_per_epoch and AdamW at the family's
start (5e-5 for transformers, 1e-3 otherwise), through the workers' own training loop (``train``): the
built-in ``shapes-resnet18`` (the baseline), ``shapes-vgg11-bn`` and ``causal-lm``'s ``docstrings-gpt`` on
``debian-descriptions``. Prints wall seconds, CPU seconds (this process's, so a busy machine inflates only the
wall time), the ratio of CPU seconds to the baseline's and the final metric. Making the built-in models the
first time (pretraining) is timed apart, and not part of a trial.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from hps.catalog.registry import load_registry
from hps.workers.tasks.causal_lm import make_task as make_causal_lm
from hps.workers.tasks.image import make_task as make_image
from hps.workers.training import Decision, TrainingPlan, train

CASES = (
    ("image-classification", "shapes-resnet18", 1e-3),
    ("image-classification", "shapes-vgg11-bn", 1e-3),
    ("causal-lm", "docstrings-gpt", 5e-5),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hps-bench-cache")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = load_registry()
    baseline = None
    print(f"{'task':22} {'model':17} {'make s':>7} {'wall s':>7} {'cpu s':>7} {'cpu/resnet':>10}  metric")
    for task_name, model_name, lr in CASES:
        resolved = registry.resolve(task_name, model=model_name)
        factory = make_causal_lm if task_name == "causal-lm" else make_image
        began = time.perf_counter()
        task = factory(resolved.model, resolved.dataset, args.cache)
        made = time.perf_counter() - began
        plan = TrainingPlan(
            epochs=resolved.epochs,
            batch_size=resolved.batch_size,
            max_steps_per_epoch=resolved.max_steps_per_epoch,
            metric=f"val_{'loss' if task_name == 'causal-lm' else 'accuracy'}",
            direction="minimize" if task_name == "causal-lm" else "maximize",
            seed=0,
            device=torch.device("cpu"),
        )
        wall, cpu = time.perf_counter(), time.process_time()
        outcome = train(task, {"optimizer": "adamw", "lr": lr}, plan, lambda _: Decision.CONTINUE)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        baseline = baseline or cpu
        print(
            f"{task_name:22} {model_name:17} {made:7.1f} {wall:7.1f} {cpu:7.1f} {cpu / baseline:10.2f}  "
            f"{plan.metric}={outcome.value:.3f} ({outcome.state}, {outcome.attrs['steps']} steps)"
        )


if __name__ == "__main__":
    main()
