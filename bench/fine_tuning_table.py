"""A table of real fine-tuning runs, for replaying search strategies over many seeds.

Fine-tuning MiniLM takes seconds an epoch on this 2-core machine, so five strategies x five seeds x dozens
of trials cannot all be trained live. Like the tabular benchmarks of the HPO literature, this script trains
every point of a grid over the benchmark's search space (the ``fine-tuning`` preset: AdamW or SGD with
momentum 0.9 and the learning rate, at the task's batch size 16) with hps's own training loop, three seeds
each, and
records each run's learning curve, its time per epoch and its held-out test accuracy; plus the BERT paper's
grid (lr {2e-5, 3e-5, 5e-5} x batch {16, 32} x epochs {2, 3, 4}, AdamW, linear warm-up and decay) as it
trains, and the learning-rate range test of each optimizer. ``search_quality.py`` replays strategies
against it: a sampled lr takes the curve of the nearest tabulated lr (half a decade apart).

The first line of the table records its provenance (command, commit, date, machine, versions). Runs are
appended as they finish, one JSON object a line, and a rerun skips what the file already holds, so an
interrupted run resumes where it stopped.

    .venv/bin/python bench/fine_tuning_table.py [--output bench/tables/minilm-debian-packages.jsonl]

The committed table's time is in its last line (``kind: done``) and in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hps.catalog.registry import load_registry
from hps.workers.lr_range_test import RangeTestPlan, run_range_test
from hps.workers.tasks.base import Task
from hps.workers.tasks.text import make_task
from hps.workers.training import Decision, EpochResult, TrainingPlan, train

TASK, MODEL, DATASET = "text-classification", "minilm-l6", "debian-packages"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "tables" / "minilm-debian-packages.jsonl"
SEEDS = (0, 1, 2)
SEARCH_EPOCHS = 4
BATCH_SIZES = (16,)  # the task's; the BERT grid tries 16 and 32 itself
BERT_BATCH_SIZES = (16, 32)
OPTIMIZERS = ("adamw", "sgd")
# Half a decade apart over the preset's whole range, plus the BERT grid's rates (AdamW only). Half a decade
# is coarse, but a 2-core machine trains the table in hours, not days, at this resolution.
RATES = tuple(sorted({round(10 ** (k / 2), 12) for k in range(-12, 1)} | {2e-5, 3e-5, 5e-5}))
BERT_RATES = (2e-5, 3e-5, 5e-5)
BERT_EPOCHS = (2, 3, 4)
RANGE_TEST = {"low": 1e-6, "high": 1.0, "steps": 100, "batch_size": 16}


def optimizer_params(optimizer: str) -> dict[str, Any]:
    """What the ``fine-tuning`` preset fixes for each optimizer."""
    return {"optimizer": "sgd", "momentum": 0.9} if optimizer == "sgd" else {"optimizer": optimizer}


@dataclass(frozen=True)
class Job:
    """One run to tabulate: a training run (``epochs`` set) or a range test (``epochs`` None)."""

    params: dict[str, Any]
    batch_size: int
    seed: int
    epochs: int | None

    @property
    def key(self) -> str:
        kind = "range_test" if self.epochs is None else f"run/{self.epochs}"
        return json.dumps([kind, self.params, self.batch_size, self.seed], sort_keys=True)


def jobs() -> Iterator[Job]:
    """Seed by seed, so that a partial table already covers whole seeds: range tests, the search grid,
    then the BERT grid."""
    for seed in SEEDS:
        for optimizer in OPTIMIZERS:
            yield Job(optimizer_params(optimizer), int(RANGE_TEST["batch_size"]), seed, None)
        for batch_size in BATCH_SIZES:
            for optimizer in OPTIMIZERS:
                for lr in RATES:
                    if optimizer != "adamw" and lr in BERT_RATES:
                        continue
                    yield Job({**optimizer_params(optimizer), "lr": lr}, batch_size, seed, SEARCH_EPOCHS)
        for batch_size in BERT_BATCH_SIZES:
            for epochs in BERT_EPOCHS:
                for lr in BERT_RATES:
                    params = {
                        "optimizer": "adamw",
                        "lr": lr,
                        "schedule": "linear_warmup",
                        "warmup_ratio": 0.1,
                    }
                    yield Job(params, batch_size, seed, epochs)


def run_job(task: Task, job: Job) -> dict[str, Any]:
    """Train (or range-test) once and return the table row."""
    device = torch.device("cpu")
    if job.epochs is None:
        plan = RangeTestPlan(
            low=float(RANGE_TEST["low"]),
            high=float(RANGE_TEST["high"]),
            steps=int(RANGE_TEST["steps"]),
            batch_size=job.batch_size,
            max_steps_per_epoch=None,
            seed=job.seed,
            device=device,
        )
        test = run_range_test(task, job.params, plan)
        return {
            "kind": "range_test",
            "key": job.key,
            "params": job.params,
            "seed": job.seed,
            **RANGE_TEST,
            "points": [[point.lr, point.loss] for point in test.points],
            "stopped_early": test.stopped_early,
            "epochs": test.epochs,
            "wall_time_s": test.wall_time_s,
        }
    started = time.perf_counter()
    values: list[float] = []
    seconds: list[float] = []

    def report(result: EpochResult) -> Decision:
        values.append(result.value)
        seconds.append(time.perf_counter() - started)
        return Decision.CONTINUE

    training = TrainingPlan(
        epochs=job.epochs,
        batch_size=job.batch_size,
        max_steps_per_epoch=None,
        metric="val_accuracy",
        direction="maximize",
        seed=job.seed,
        device=device,
    )
    outcome = train(task, job.params, training, report)
    test_metrics = outcome.attrs.get("test_metrics") or {}
    return {
        "kind": "run",
        "key": job.key,
        "params": job.params,
        "batch_size": job.batch_size,
        "epochs": job.epochs,
        "seed": job.seed,
        "state": outcome.state,
        "reason": outcome.reason,
        "values": values,
        "seconds": seconds,
        "steps": outcome.attrs.get("steps"),
        "test_accuracy": test_metrics.get("test_accuracy"),
    }


def provenance() -> dict[str, Any]:
    """Where and how the table was made."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "kind": "provenance",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": commit,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "torch": torch.__version__,
        "task": TASK,
        "model": MODEL,
        "dataset": DATASET,
        "metric": "val_accuracy",
        "seeds": list(SEEDS),
        "search_epochs": SEARCH_EPOCHS,
        "rates": list(RATES),
        "range_test": RANGE_TEST,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    done: set[str] = set()
    if args.output.exists():
        for line in args.output.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("kind") != "done":  # a resumed run that finishes says so again
                done.add(row.get("key", ""))
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(provenance()) + "\n", encoding="utf-8")
    resolved = load_registry().resolve(task=TASK, model=MODEL, dataset=DATASET)
    task = make_task(resolved.model, resolved.dataset, Path(tempfile.mkdtemp()))
    todo = [job for job in jobs() if job.key not in done]
    print(f"{len(done)} rows already in {args.output}; {len(todo)} to run", flush=True)
    for count, job in enumerate(todo, start=1):
        started = time.perf_counter()
        row = run_job(task, job)
        with args.output.open("a", encoding="utf-8") as table:
            table.write(json.dumps(row) + "\n")
        print(f"[{count}/{len(todo)}] {job.key} {time.perf_counter() - started:.1f}s", flush=True)
    if todo:
        finished = {"kind": "done", "finished": datetime.now(UTC).isoformat(timespec="seconds")}
        with args.output.open("a", encoding="utf-8") as table:
            table.write(json.dumps(finished) + "\n")


if __name__ == "__main__":
    main()
