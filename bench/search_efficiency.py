"""How much fine-tuning compute does each search strategy spend on `digits`?

For several seeds and the same trial budget, one study per strategy tunes the `optimizers` preset on the
`digits` transfer task through hps's own use cases (ask → train → report/prune → complete on a SQLite
database; the HTTP layer is left out, it changes no decision): random search, TPE, TPE + Hyperband, and
hps's defaults for a study with a task. It prints, per strategy, the epochs spent until some trial first
reported a validation accuracy at or above the target, the epochs the whole trial budget cost, and the
best accuracy reached within an equal epoch budget, each as a ratio against random search measured in
the same run.

    python bench/search_efficiency.py [--seeds 8] [--trials 40] [--targets 0.985 0.99]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from hps.catalog.registry import load_registry
from hps.server import studies, trials
from hps.server.errors import Conflict
from hps.server.sampling import Sampling
from hps.server.store.database import Database
from hps.server.store.schema import upgrade
from hps.server.strategies import trial_seed
from hps.wire.studies import StudySpec
from hps.wire.trials import Completion, Report
from hps.workers.tasks.base import Task
from hps.workers.tasks.digits import make_task
from hps.workers.training import Decision, EpochResult, TrainingPlan, train

LEASE = timedelta(minutes=10)
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"sampler": {"name": "random"}, "pruner": {"name": "none"}},
    "tpe": {"sampler": {"name": "tpe"}, "pruner": {"name": "none"}},
    "tpe+hyperband": {"sampler": {"name": "tpe"}, "pruner": {"name": "hyperband"}},
    # What a user gets by naming only the task and the preset: the preset's starts, TPE and the
    # default pruner.
    "hps defaults": {"search_space": {"preset": "optimizers"}},
}


@dataclass
class Run:
    """One study's history: (epochs trained, val accuracy) per reported epoch, in order."""

    points: list[tuple[int, float]]

    def epochs_to(self, target: float) -> int | None:
        return next((spent for spent, value in self.points if value >= target), None)

    @property
    def total_epochs(self) -> int:
        return self.points[-1][0] if self.points else 0

    def best_within(self, epochs: int) -> float:
        return max((value for spent, value in self.points if spent <= epochs), default=0.0)


def run_study(task: Task, strategy: str, seed: int, n_trials: int, directory: Path) -> Run:
    slug = strategy.replace(" ", "-").replace("+", "-")
    url = f"sqlite:///{directory / f'{slug}-{seed}.db'}"
    upgrade(url)
    db, sampling = Database(url), Sampling(url)
    body: dict[str, Any] = {
        "name": "bench",
        "task": {"name": "digits"},
        "search_space": {"preset": "optimizers", "starts": []},
        "budget": {"n_trials": n_trials},
        **STRATEGIES[strategy],
    }
    body["sampler"] = {**body.get("sampler", {"name": "tpe"}), "seed": seed}
    study = studies.create_study(db, StudySpec.model_validate(body), load_registry()).record
    spent, points = 0, []
    for _ in range(n_trials):
        try:
            asked = trials.ask_trial(db, sampling, study.id, lease=LEASE)
        except Conflict:
            break

        def report(result: EpochResult, number: int = asked.number) -> Decision:
            nonlocal spent
            spent += 1
            points.append((spent, result.value))
            answer = trials.report_trial(
                db, sampling, study.id, number, Report(step=result.epoch, value=result.value), lease=LEASE
            )
            return Decision.PRUNE if answer.should_prune else Decision.CONTINUE

        plan = TrainingPlan(
            epochs=int(study.spec["task"]["epochs"]),
            batch_size=int(study.spec["task"]["batch_size"]),
            max_steps_per_epoch=None,
            metric="val_accuracy",
            direction="maximize",
            seed=trial_seed(seed, asked.number),
            device=torch.device("cpu"),
        )
        outcome = train(task, asked.params, plan, report)
        if outcome.state == "complete":
            completion = Completion(state="complete", value=outcome.value)
        else:
            completion = Completion(
                state=outcome.state if outcome.state != "stopped" else "pruned", reason=outcome.reason
            )
        trials.complete_trial(db, sampling, study.id, asked.number, completion)
    sampling.close()
    db.dispose()
    return Run(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.985, 0.99])
    args = parser.parse_args()
    torch.set_num_threads(2)
    runs: dict[str, list[Run]] = {name: [] for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp:
        task = make_task(None, None, Path(tmp) / "cache")
        for seed in range(args.seeds):
            for name in STRATEGIES:
                runs[name].append(run_study(task, name, seed, args.trials, Path(tmp)))
                last = runs[name][-1]
                reached = [last.epochs_to(target) for target in args.targets]
                print(
                    f"seed {seed} {name:14} epochs {last.total_epochs:4d}  to targets {reached}", flush=True
                )
    for target in args.targets:
        report(runs, target)


def report(runs: dict[str, list[Run]], target: float) -> None:
    """Per strategy, means over seeds, with ratios against random search."""

    # A study that never reached the target is charged every epoch it spent (a lower bound on its cost).
    def cost(run: Run) -> int:
        return run.epochs_to(target) or run.total_epochs

    equal = min(run.total_epochs for group in runs.values() for run in group)
    random_runs = runs["random"]
    base_cost = statistics.mean(cost(r) for r in random_runs)
    base_total = statistics.mean(r.total_epochs for r in random_runs)
    base_error = 1 - statistics.mean(r.best_within(equal) for r in random_runs)
    print(f"\ntarget val_accuracy {target}; equal compute = {equal} epochs (the smallest study's total)")
    print(
        f"{'strategy':14} {'reached':>8} {'epochs to target':>17} {'x fewer':>8} {'budget epochs':>14} "
        f"{'x fewer':>8} {'best @ equal':>13} {'error ratio':>12} {'best overall':>13}"
    )
    for name, group in runs.items():
        reached = sum(r.epochs_to(target) is not None for r in group)
        mean_cost = statistics.mean(cost(r) for r in group)
        total = statistics.mean(r.total_epochs for r in group)
        best = statistics.mean(r.best_within(equal) for r in group)
        overall = statistics.mean(r.best_within(r.total_epochs) for r in group)
        error_ratio = (1 - best) / max(1e-9, base_error)
        print(
            f"{name:14} {reached:>5}/{len(group):<2} {mean_cost:>17.1f} {base_cost / mean_cost:>8.2f} "
            f"{total:>14.1f} {base_total / total:>8.2f} {best:>13.4f} {error_ratio:>12.2f} {overall:>13.4f}"
        )


if __name__ == "__main__":
    main()
