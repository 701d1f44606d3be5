"""Search quality on real fine-tuning (GitHub issue 13): does hps find a good configuration sooner than
random search, plain Optuna and the BERT paper's grid, and is what it recommends better on held-out data?

Two tasks, each searched over the ``fine-tuning`` preset (AdamW or SGD with momentum 0.9, lr 1e-6..1 on a
log scale, at the task's batch size) by every strategy except the grid:

* text: the pretrained MiniLM (``minilm-l6``) fine-tuned on ``debian-packages`` (12 classes, chance 0.083),
  4 epochs a trial, REPLAYED from the table of real runs that ``bench/fine_tuning_table.py`` wrote (its
  provenance, first line of the table, is copied into the results). A sampled configuration takes the
  tabulated run of the same optimizer and batch size at the nearest tabulated lr (in log space; half a
  decade apart in the committed table), of table seed (strategy seed + trial number) mod (number of table
  seeds); a trial pruned after epoch k costs epochs 1..k, and the median seconds the table's runs of its
  batch size took to epoch k (wall time hardly depends on the lr, and the median leaves out what other
  processes cost the table's timings). Only seeds the table holds completely are used; the results say
  which.
* digits: the small pretrained CNN re-headed on ``digits-5to9-few`` (10 training and 20 validation images a
  digit, chance 0.2), trained LIVE with the task's default 8 epochs (a trial takes ~0.2 s).

Strategies, each over several strategy seeds, with the service's default budget (20 trials):

* ``random``: Optuna's random sampler, no pruner, no starts, the preset's whole lr range.
* ``optuna``: plain Optuna defaults: TPE (seeded, otherwise default), no pruner, no starts, whole range.
* ``bert-grid`` (text only): the ``bert-grid`` preset's 18 points (AdamW, linear warm-up, lr {2,3,5}e-5 x
  batch {16,32} x epochs {2,3,4}), in a seeded random order per strategy seed.
* ``hps``: what the service does for a study that names only the task and the preset, taken from its own
  code (``compile_study``): the lr range and starts fitted to the model's family, TPE reseeded per trial,
  successive halving from half the trial's epochs (``default_pruner``); trials are told to Optuna as hps
  tells them (a diverged trial is PRUNED at its last finite value).
* ``hps+range-test``: the same study with ``lr_range_test``: one range test per optimizer over the preset's
  whole range (no family fitting), each optimizer's lr searched in the range read off its curve, the
  starts' lr moved to their range's geometric middle. The tests' epochs and seconds are charged before the
  first trial.
* ``hps+confirm``: ``hps``, then ``budget.confirm``'s defaults: the 3 best distinct configurations re-run
  3 times each on fresh seeds (replayed: the table's other seeds), never pruned, charged after the search;
  the recommendation is the one whose fresh runs have the best lower end of a 90% Student-t interval.

``--candidates`` adds the variants the defaults were chosen from: hps with each candidate pruner
(successive halving from epoch 1 or from half the epochs, the median rule after half the epochs, none),
each with the range test (``+rt``) and with no prior for the model's family (``no-prior``: the preset's
whole range and starts, what a study of an unregistered family gets, and what the range test must beat).
The candidates raise the bar of "the best result any strategy found", so their ratios are read against
each other, not against a run without them.

Measures, per task (a trial's result is its validation accuracy after its last epoch, complete trials only,
as Optuna's best trial):

* compute to target: epochs and seconds spent until the first result within the MARGIN of the best result
  any strategy found on the task in this run (text: 0.02; digits: 0.03, three of its 100 validation
  images, about one binomial standard error there; 0.02 is about one on text's 384). Median over seeds; a
  seed that never gets there is charged all it spent and counted as not reached (when most seeds of a
  strategy never got there, its median is a lower bound, marked '>'). Ratios are random's (or the grid's)
  median over the strategy's: > 1 is better.
* best at equal compute: the mean over seeds of the best result within E epochs (and within S seconds),
  E and S the smallest median totals among the strategies (chance when a seed has no result by then).
* test: the held-out test accuracy of each seed's recommended configuration (its best result), averaged
  over three training seeds (text: the table's seeds; digits: seeds 0-2, trained live), then over seeds;
  for ``hps+confirm``, of the configuration its confirmation chose.

Also printed: the spread of random configurations' results (why each task is hard enough). The full mode
further re-trains, live, the text configuration each strategy recommends for strategy seed 0 with two fresh
seeds and shows its validation and test accuracy next to the table's. The last line of stdout is one
summary line of ratios. Results, every trial included, go to ``--output`` as JSON.

    .venv/bin/python bench/search_quality.py --quick   # 5 seeds, no live text check
    .venv/bin/python bench/search_quality.py           # 10 seeds and the live text check
    .venv/bin/python bench/search_quality.py --quick --candidates   # the defaults' candidates too

On this 2-core machine, idle, ``--quick`` took 41 s and the full run 6 min 17 s (5 min of it the live text
check); ``--quick``'s digits part took 1 min 42 s while ``fine_tuning_table.py`` kept both cores busy. The
committed results: ``bench/results/search_quality.json`` (full), ``search_quality-quick.json`` and
``search_quality-candidates.json`` (run before the default changed: its ``hps`` is ``hps sh@1``).

The parts live in ``bench/quality/``: ``records`` (the tasks, what each trial and run did),
``trainers`` (live and replayed training), ``strategies`` and ``measures``; this script runs and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import optuna
import torch
from quality.measures import Measured, measure, or_chance, report, spread, summary_part
from quality.records import BENCH, DIGITS, METRIC, Bench, History, recommend, text_bench
from quality.strategies import RANDOM, Strategy, grid_points, strategies
from quality.trainers import CPU, LiveTrainer, ReplayTrainer, Table, Trainer, load_task

from hps.catalog.registry import Registry, load_registry
from hps.workers.tasks.base import Task
from hps.workers.training import Decision, TrainingPlan, train

DEFAULT_TABLE = BENCH / "tables" / "minilm-debian-packages.jsonl"
RESULTS = BENCH / "results"
LIVE_SEEDS = (100, 101)  # fresh seeds for the live text check: the table's are 0..2


def run_all(
    found: Mapping[str, Strategy], trainer: Trainer, seeds: range, label: str
) -> dict[str, list[History]]:
    histories: dict[str, list[History]] = {}
    for name, strategy in found.items():
        started = time.perf_counter()
        histories[name] = [strategy(trainer, seed) for seed in seeds]
        print(f"  {label} {name}: {len(seeds)} seeds in {time.perf_counter() - started:.1f}s", flush=True)
    return histories


def confirm_live(
    histories: Mapping[str, list[History]], trainer: ReplayTrainer, registry: Registry, bench: Bench
) -> list[dict[str, Any]]:
    """Re-train, live, the configuration each strategy recommends on its first seed, with fresh seeds."""
    resolved = registry.resolve(bench.task.name, bench.task.model, bench.task.dataset)
    task = load_task(resolved)
    trained: dict[str, list[tuple[float | None, float | None]]] = {}
    rows = []
    for name, runs in histories.items():
        best = recommend(runs[0])
        if best is None:
            continue
        key = json.dumps(best.params, sort_keys=True)
        if key not in trained:
            trained[key] = [
                _train_once(task, best.params, trainer.table.search_epochs, s) for s in LIVE_SEEDS
            ]
        live = trained[key]
        rows.append({
            "strategy": name,
            "params": best.params,
            "table_val": trainer.mean_val(best.params),
            "table_test": trainer.test_accuracy(best.params),
            "live_seeds": list(LIVE_SEEDS),
            "live_val": statistics.mean(or_chance(val, bench.chance) for val, _ in live),
            "live_test": statistics.mean(or_chance(test, bench.chance) for _, test in live),
            "live_runs": [{"val": val, "test": test} for val, test in live],
        })  # fmt: skip
    return rows


def _train_once(
    task: Task, params: Mapping[str, Any], epochs: int, seed: int
) -> tuple[float | None, float | None]:
    """One full run of ``params``: its final validation and test accuracy (None: it diverged)."""
    plan = TrainingPlan(
        epochs=epochs, batch_size=int(params["batch_size"]), max_steps_per_epoch=None, metric=METRIC,
        direction="maximize", seed=seed, device=CPU,
    )  # fmt: skip
    outcome = train(task, params, plan, lambda result: Decision.CONTINUE)
    return outcome.value, (outcome.attrs.get("test_metrics") or {}).get("test_accuracy")


def run_text(args: argparse.Namespace, registry: Registry, seeds: range) -> tuple[str, dict[str, Any]]:
    grid = grid_points()
    table = Table(args.table, grid)
    if not table.seeds:
        raise SystemExit(
            f"{args.table} holds no complete seed yet (partial: {list(table.ignored_seeds)}); "
            "run bench/fine_tuning_table.py, or pass --tasks digits"
        )
    bench = text_bench(table.search_epochs)
    resolved = registry.resolve(bench.task.name, bench.task.model, bench.task.dataset)
    trainer = ReplayTrainer(table, bench.chance, resolved.batch_size)
    found = strategies(bench, registry, grid=grid, candidates=args.candidates)
    histories = run_all(found, trainer, seeds, bench.label)
    measured = measure(bench, histories, trainer)
    random_spread = spread(bench, histories[RANDOM])
    header = (
        f"text: {bench.task.model} on {bench.task.dataset}, {table.search_epochs} epochs a searched trial, "
        f"replayed from {args.table.name} (table seeds used {list(table.seeds)}, ignored as incomplete "
        f"{list(table.ignored_seeds)}); {len(seeds)} strategy seeds"
    )
    print("\n".join(report(bench, measured, random_spread, header)), flush=True)
    result: dict[str, Any] = {"table": table.describe()}
    if not args.quick:
        started = time.perf_counter()
        result["live_confirmation"] = confirm_live(histories, trainer, registry, bench)
        print(f"\nlive check of each strategy's recommended configuration (seed 0), seeds {list(LIVE_SEEDS)} "
              f"({time.perf_counter() - started:.0f}s):")  # fmt: skip
        for row in result["live_confirmation"]:
            print(
                f"  {row['strategy']:15} val table {row['table_val']:.4f} live {row['live_val']:.4f}   "
                f"test table {row['table_test']:.4f} live {row['live_test']:.4f}   "
                f"{json.dumps(row['params'], sort_keys=True)}"
            )
    return summary_part(bench, measured, len(seeds)), {
        **result,
        **_task_json(bench, measured, random_spread, histories),
    }


def run_digits(args: argparse.Namespace, registry: Registry, seeds: range) -> tuple[str, dict[str, Any]]:
    bench = DIGITS
    resolved = registry.resolve(bench.task.name, bench.task.model, bench.task.dataset)
    trainer = LiveTrainer(load_task(resolved), resolved, bench.chance)
    found = strategies(bench, registry, grid=None, candidates=args.candidates)
    histories = run_all(found, trainer, seeds, bench.label)
    measured = measure(bench, histories, trainer)
    random_spread = spread(bench, histories[RANDOM])
    header = (
        f"digits: {resolved.model.name if resolved.model else '-'} on {bench.task.dataset}, "
        f"{resolved.epochs} epochs a trial, trained live; {len(seeds)} strategy seeds"
    )
    print("\n".join(report(bench, measured, random_spread, header)), flush=True)
    return summary_part(bench, measured, len(seeds)), _task_json(bench, measured, random_spread, histories)


def _task_json(
    bench: Bench,
    measured: Measured,
    random_spread: Mapping[str, float],
    histories: Mapping[str, list[History]],
) -> dict[str, Any]:
    return {
        "task": bench.task.model_dump(),
        "margin": bench.margin,
        "chance": bench.chance,
        "best": measured.best,
        "target": measured.target,
        "equal_epochs": measured.equal_epochs,
        "equal_seconds": measured.equal_seconds,
        "summaries": {name: asdict(s) for name, s in measured.summaries.items()},
        "ratios": {
            f"vs {base}": {name: {"epochs": e, "seconds": s} for name, (e, s) in by.items()}
            for base, by in measured.versus.items()
        },
        "random_spread": dict(random_spread),
        "runs": {name: [asdict(h) for h in runs] for name, runs in histories.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 seeds, no live text check (minutes)")
    parser.add_argument("--seeds", type=int, default=None, help="strategy seeds (default: 5 quick, 10 full)")
    parser.add_argument("--tasks", nargs="+", choices=["text", "digits"], default=["text", "digits"])
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument(
        "--candidates", action="store_true", help="also the variants the defaults were chosen from"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="default: bench/results/search_quality[-quick].json"
    )
    args = parser.parse_args(argv)
    # The machine's other cores may be busy (the table script); one thread keeps timings comparable.
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.perf_counter()
    seeds = range(args.seeds or (5 if args.quick else 10))
    registry = load_registry()
    parts, tasks = [], {}
    if "text" in args.tasks:
        part, tasks["text"] = run_text(args, registry, seeds)
        parts.append(part)
    if "digits" in args.tasks:
        part, tasks["digits"] = run_digits(args, registry, seeds)
        parts.append(part)
    summary = "summary: " + " | ".join(parts)
    wall = time.perf_counter() - started
    output = args.output or RESULTS / ("search_quality-quick.json" if args.quick else "search_quality.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    results = {"mode": "quick" if args.quick else "full", "seeds": list(seeds), "wall_time_s": wall,
               "tasks": tasks, "summary": summary}  # fmt: skip
    output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"\n{wall:.0f}s in all; results in {output}", flush=True)
    print(summary)


if __name__ == "__main__":
    main()
