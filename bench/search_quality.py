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
  successive halving; trials are told to Optuna as hps tells them (a diverged trial is PRUNED at its last
  finite value).
* ``hps+range-test``: the same study with ``lr_range_test``: one range test per optimizer over the preset's
  whole range (no family fitting), each optimizer's lr searched in the range read off its curve, the
  starts' lr moved to their range's geometric middle. The tests' epochs and seconds are charged before the
  first trial.

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
  over three training seeds (text: the table's seeds; digits: seeds 0-2, trained live), then over seeds.

Also printed: the spread of random configurations' results (why each task is hard enough). The full mode
further re-trains, live, the text configuration each strategy recommends for strategy seed 0 with two fresh
seeds and shows its validation and test accuracy next to the table's. The last line of stdout is one
summary line of ratios. Results, every trial included, go to ``--output`` as JSON.

    .venv/bin/python bench/search_quality.py --quick   # 5 seeds, no live text check
    .venv/bin/python bench/search_quality.py           # 10 seeds and the live text check

On this 2-core machine, idle, ``--quick`` took 41 s and the full run 6 min 17 s (5 min of it the live text
check); ``--quick``'s digits part took 1 min 42 s while ``fine_tuning_table.py`` kept both cores busy. The
committed results: ``bench/results/search_quality.json`` (full) and ``search_quality-quick.json``.

Strategies are functions of (trainer, seed) returning a ``History``; a later phase (re-running the top
configurations with fresh seeds, say) can wrap one and append trials without touching the measures.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import os
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import optuna
import torch
from optuna.pruners import BasePruner, NopPruner
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import TrialState

from hps.catalog.registry import Registry, ResolvedTask, load_registry
from hps.search_spaces import CategoricalParam, CompiledSpace, FloatParam, SearchSpace, compile_space
from hps.search_spaces.lr_range import LrRange, RangeTestPoint, narrow_lr_range
from hps.server.plans import StudyPlan
from hps.server.range_tests import fit_lr, range_test_params
from hps.server.strategies import build_pruner, build_sampler, reseed_for_trial, trial_seed
from hps.server.studies import compile_study
from hps.wire.studies import LrRangeTestSpec, StudySpec, TaskSpec
from hps.workers.lr_range_test import RangeTestPlan, run_range_test
from hps.workers.tasks.base import Task
from hps.workers.training import Decision, EpochResult, TrainingPlan, train

BENCH = Path(__file__).resolve().parent
DEFAULT_TABLE = BENCH / "tables" / "minilm-debian-packages.jsonl"
RESULTS = BENCH / "results"
PRESET, GRID_PRESET = "fine-tuning", "bert-grid"
METRIC = "val_accuracy"
TEST_SEEDS = (0, 1, 2)  # training seeds of a recommended configuration's test accuracy (digits, live)
LIVE_SEEDS = (100, 101)  # fresh seeds for the live text check: the table's are 0..2
CPU = torch.device("cpu")

# Told after each epoch of a trial: (epoch, value) -> go on?
Judge = Callable[[int, float], bool]


@dataclass(frozen=True)
class Bench:
    """One task of the benchmark: the study's task, the margin of "as good as the best", and chance."""

    label: str
    task: TaskSpec
    margin: float
    chance: float


def text_bench(epochs: int) -> Bench:
    return Bench(
        "text",
        TaskSpec(name="text-classification", model="minilm-l6", dataset="debian-packages", epochs=epochs),
        margin=0.02,
        chance=1 / 12,
    )


DIGITS = Bench("digits", TaskSpec(name="digits", dataset="digits-5to9-few"), margin=0.03, chance=1 / 5)


# --- What a strategy did ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """One trial: the configuration the strategy asked for and the one trained (for a replay, the
    tabulated one: same optimizer and batch size, the nearest lr), how it ended
    (``complete``, ``pruned`` or ``diverged``), the validation value after each epoch it trained and the
    seconds it cost. Its epochs are those it completed: a diverged run's last, partial epoch is not
    charged (the table does not time it), which flatters the strategies that diverge most, the baselines."""

    number: int
    asked: dict[str, Any]
    params: dict[str, Any]
    state: str
    values: tuple[float, ...]
    seconds: float

    @property
    def epochs(self) -> int:
        return len(self.values)

    @property
    def result(self) -> float | None:
        """The value Optuna's best trial is chosen by: the last epoch's, for a complete trial only."""
        return self.values[-1] if self.state == "complete" and self.values else None


@dataclass(frozen=True)
class RangeTestRecord:
    """One optimizer's range test as the strategy used it: the range read off the curve, and its cost."""

    optimizer: str
    chosen: LrRange
    epochs: float
    seconds: float


@dataclass
class History:
    """One strategy's run on one seed: compute spent before the first trial (range tests), then trials."""

    strategy: str
    seed: int
    trials: list[TrialRecord] = field(default_factory=list)
    range_tests: list[RangeTestRecord] = field(default_factory=list)

    @property
    def setup_epochs(self) -> float:
        return sum(test.epochs for test in self.range_tests)

    @property
    def setup_seconds(self) -> float:
        return sum(test.seconds for test in self.range_tests)

    def timeline(self) -> list[tuple[float, float, TrialRecord]]:
        """(epochs, seconds) spent in all when each trial ended, with the trial."""
        epochs, seconds = self.setup_epochs, self.setup_seconds
        points = []
        for trial in self.trials:
            epochs, seconds = epochs + trial.epochs, seconds + trial.seconds
            points.append((epochs, seconds, trial))
        return points

    @property
    def total_epochs(self) -> float:
        return self.setup_epochs + sum(trial.epochs for trial in self.trials)

    @property
    def total_seconds(self) -> float:
        return self.setup_seconds + sum(trial.seconds for trial in self.trials)

    def best_within(self, *, epochs: float = math.inf, seconds: float = math.inf) -> float | None:
        """The best result of the trials that ended within ``epochs`` and ``seconds`` (None: none had)."""
        found = [
            trial.result
            for spent, took, trial in self.timeline()
            if spent <= epochs and took <= seconds and trial.result is not None
        ]
        return max(found, default=None)


def recommend(history: History) -> TrialRecord | None:
    """The configuration a strategy recommends: its best result (the earliest of equals)."""
    complete = [trial for trial in history.trials if trial.result is not None]
    return max(complete, key=lambda trial: trial.result or 0.0, default=None)


# --- Trainers: live, or replayed from the table ------------------------------------------------------------


class Trainer(Protocol):
    """Runs a strategy's trials and range tests, and measures a configuration on held-out data."""

    def run(self, params: Mapping[str, Any], seed: int, number: int, judge: Judge) -> TrialRecord:
        """Trial ``number`` of a strategy run with seed ``seed``, told epoch by epoch to ``judge``."""
        ...

    def range_test(self, params: Mapping[str, Any], plan: RangeTestPlan) -> RangeTestRun:
        """The range test of the optimizer ``params`` describe."""
        ...

    def test_accuracy(self, params: Mapping[str, Any]) -> float:
        """Mean held-out accuracy of ``params`` over three training seeds (diverged: chance)."""
        ...


@dataclass(frozen=True)
class RangeTestRun:
    """A range test's curve and its cost."""

    points: list[RangeTestPoint]
    epochs: float
    seconds: float


def _always(epoch: int, value: float) -> bool:
    return True


class Table:
    """The runs of the fine-tuning table (``bench/fine_tuning_table.py``) of its complete seeds: those
    holding every searched configuration any seed holds, every point of ``grid`` and every range test."""

    def __init__(self, path: Path, grid: list[dict[str, Any]]) -> None:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.path = path
        self.provenance: dict[str, Any] = json.loads(lines[0])
        if self.provenance.get("kind") != "provenance":
            raise ValueError(f"{path}: the first line is not the table's provenance")
        self.search_epochs = int(self.provenance["search_epochs"])
        rows = [json.loads(line) for line in lines[1:]]
        self.runs: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.range_tests: dict[tuple[str, int], dict[str, Any]] = {}
        for row in rows:
            if row["kind"] == "run":
                key = _config_key(row["params"], row["batch_size"], row["epochs"])
                self.runs[(*key, row["seed"])] = row
            elif row["kind"] == "range_test":
                self.range_tests[(row["params"]["optimizer"], row["seed"])] = row
        searched = {key[:-1] for key in self.runs if key[0] == "search"}
        grid_keys = {_config_key(point, point["batch_size"], point["epochs"]) for point in grid}
        present = sorted({row["seed"] for row in rows if row["kind"] in ("run", "range_test")})
        self.seeds = tuple(seed for seed in present if self._complete(seed, searched | grid_keys))
        self.ignored_seeds = tuple(seed for seed in present if seed not in self.seeds)
        self.finished = [row for row in rows if row["kind"] == "done"]
        rates: dict[tuple[str, int], list[float]] = {}
        for _, optimizer, batch_size, lr in sorted(searched):
            rates.setdefault((optimizer, batch_size), []).append(lr)
        self.rates = {key: tuple(values) for key, values in rates.items()}
        spent: dict[tuple[int, int], list[float]] = {}
        for key, row in self.runs.items():
            if key[-1] in self.seeds:
                for epoch, seconds in enumerate(row["seconds"], start=1):
                    spent.setdefault((row["batch_size"], epoch), []).append(seconds)
        self.epoch_seconds = {key: statistics.median(values) for key, values in spent.items()}

    def _complete(self, seed: int, configurations: set[tuple[Any, ...]]) -> bool:
        optimizers = {key[1] for key in configurations if key[0] == "search"}
        return all((*key, seed) in self.runs for key in configurations) and all(
            (optimizer, seed) in self.range_tests for optimizer in optimizers
        )

    def row(self, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The run of ``params`` on table seed ``seed``: a grid point exactly, a searched configuration at
        the nearest tabulated lr (in log space) of its optimizer and batch size."""
        batch_size = int(params["batch_size"])
        if "schedule" in params:
            return self.runs[(*_config_key(params, batch_size, int(params["epochs"])), seed)]
        optimizer, lr = str(params["optimizer"]), float(params["lr"])
        nearest = min(self.rates[(optimizer, batch_size)], key=lambda rate: abs(math.log(rate / lr)))
        return self.runs[("search", optimizer, batch_size, nearest, seed)]

    def seconds(self, batch_size: int, epochs: int) -> float:
        """What the first ``epochs`` epochs of a run cost: the median time the table's runs with this batch
        size took to get there. A run's time hardly depends on its lr or optimizer, but the table's timings
        also hold whatever else the machine ran meanwhile, which the median leaves out."""
        return self.epoch_seconds[(batch_size, epochs)] if epochs else 0.0

    def rows(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The runs of ``params`` on every seed used."""
        return [self.row(params, seed) for seed in self.seeds]

    def describe(self) -> dict[str, Any]:
        """What the results record of the table."""
        return {
            "path": str(
                self.path.relative_to(BENCH.parent) if self.path.is_relative_to(BENCH.parent) else self.path
            ),
            "provenance": self.provenance,
            "seeds_used": list(self.seeds),
            "seeds_ignored_incomplete": list(self.ignored_seeds),
            "finished": self.finished,
        }


def _config_key(params: Mapping[str, Any], batch_size: int, epochs: int) -> tuple[Any, ...]:
    """A tabulated configuration: a grid point by (lr, batch size, epochs), a searched one by optimizer,
    batch size and lr (its epochs are the table's)."""
    if "schedule" in params:
        return ("grid", float(params["lr"]), batch_size, epochs)
    return ("search", str(params["optimizer"]), batch_size, float(params["lr"]))


def _trained(row: Mapping[str, Any]) -> dict[str, Any]:
    """The params a table row trained, as a trial's params (a grid point's epochs are one of them)."""
    params = {**row["params"], "batch_size": row["batch_size"]}
    if "schedule" in params:
        params["epochs"] = row["epochs"]
    return params


@dataclass
class ReplayTrainer:
    """Trials replayed from the table: trial ``number`` of seed ``seed`` takes table seed
    (seed + number) mod (seeds used). Params that name no batch size train at the study's."""

    table: Table
    chance: float
    batch_size: int

    def run(self, params: Mapping[str, Any], seed: int, number: int, judge: Judge) -> TrialRecord:
        seed = self.table.seeds[(seed + number) % len(self.table.seeds)]
        row = self.table.row({"batch_size": self.batch_size, **params}, seed)
        if row["state"] not in ("complete", "diverged"):
            raise ValueError(f"{self.table.path}: a run ended {row['state']!r}: {row['key']}")
        state, asked, trained = str(row["state"]), dict(params), _trained(row)
        ran: list[float] = []
        for epoch, value in enumerate(row["values"], start=1):
            ran.append(value)
            if not judge(epoch, value):
                state = "pruned"
                break
        return TrialRecord(
            number, asked, trained, state, tuple(ran), self.table.seconds(row["batch_size"], len(ran))
        )

    def range_test(self, params: Mapping[str, Any], plan: RangeTestPlan) -> RangeTestRun:
        seed = self.table.seeds[plan.seed % len(self.table.seeds)]
        row = self.table.range_tests[(str(params["optimizer"]), seed)]
        tabulated = (row["low"], row["high"], row["steps"], row["batch_size"])
        if tabulated != (plan.low, plan.high, plan.steps, plan.batch_size):
            raise ValueError(
                f"the table's range tests ran (low, high, steps, batch size) {tabulated}; the study's "
                f"would run {(plan.low, plan.high, plan.steps, plan.batch_size)}"
            )
        points = [RangeTestPoint(lr, loss) for lr, loss in row["points"]]
        return RangeTestRun(points, float(row["epochs"]), float(row["wall_time_s"]))

    def test_accuracy(self, params: Mapping[str, Any]) -> float:
        tests = [row["test_accuracy"] for row in self.table.rows({"batch_size": self.batch_size, **params})]
        return statistics.mean(self.chance if test is None else float(test) for test in tests)

    def mean_val(self, params: Mapping[str, Any]) -> float:
        """The tabulated final validation accuracy of ``params``, mean over seeds (diverged: chance)."""
        rows = self.table.rows({"batch_size": self.batch_size, **params})
        return statistics.mean(
            row["values"][-1] if row["state"] == "complete" else self.chance for row in rows
        )


@dataclass
class LiveTrainer:
    """Trials trained now with hps's training loop; trial ``number`` of seed ``seed`` trains with the
    seed the service would give it (``trial_seed``)."""

    task: Task
    resolved: ResolvedTask
    chance: float
    tests: dict[str, float] = field(default_factory=dict)

    def plan(self, seed: int) -> TrainingPlan:
        return TrainingPlan(
            epochs=self.resolved.epochs,
            batch_size=self.resolved.batch_size,
            max_steps_per_epoch=self.resolved.max_steps_per_epoch,
            metric=METRIC,
            direction="maximize",
            seed=seed,
            device=CPU,
        )

    def run(self, params: Mapping[str, Any], seed: int, number: int, judge: Judge) -> TrialRecord:
        values: list[float] = []

        def report(result: EpochResult) -> Decision:
            values.append(result.value)
            return Decision.CONTINUE if judge(result.epoch, result.value) else Decision.PRUNE

        started = time.perf_counter()
        outcome = train(self.task, params, self.plan(trial_seed(seed, number)), report)
        took = time.perf_counter() - started
        return TrialRecord(number, dict(params), dict(params), outcome.state, tuple(values), took)

    def range_test(self, params: Mapping[str, Any], plan: RangeTestPlan) -> RangeTestRun:
        outcome = run_range_test(self.task, params, plan)
        return RangeTestRun(outcome.points, outcome.epochs, outcome.wall_time_s)

    def test_accuracy(self, params: Mapping[str, Any]) -> float:
        key = json.dumps(dict(params), sort_keys=True)
        if key not in self.tests:
            tests = []
            for seed in TEST_SEEDS:
                outcome = train(self.task, params, self.plan(seed), lambda result: Decision.CONTINUE)
                test = (outcome.attrs.get("test_metrics") or {}).get("test_accuracy")
                tests.append(self.chance if test is None else float(test))
            self.tests[key] = statistics.mean(tests)
        return self.tests[key]


def load_task(resolved: ResolvedTask) -> Task:
    """The registry's task, built by its own factory as a worker builds it."""
    module, _, attribute = resolved.info.implementation.partition(":")
    factory = getattr(importlib.import_module(module), attribute)
    task: Task = factory(resolved.model, resolved.dataset, Path(tempfile.mkdtemp(prefix="hps-bench-")))
    return task


# --- Strategies -------------------------------------------------------------------------------------------

Strategy = Callable[[Trainer, int], History]
RANDOM, OPTUNA, GRID, HPS, HPS_RANGE_TEST = "random", "optuna", "bert-grid", "hps", "hps+range-test"


def run_search(
    history: History,
    trainer: Trainer,
    space: CompiledSpace,
    sampler: BaseSampler,
    pruner: BasePruner,
    starts: Iterable[Mapping[str, Any]],
    n_trials: int,
    *,
    reseed: bool,
) -> History:
    """Ask, train, tell ``n_trials`` times on an in-memory study, as the service does: the starts queued
    first, each epoch reported and the pruner asked, a diverged trial told PRUNED. ``reseed``: reseed the
    sampler before each trial from the seed and the trial number (the service does for a seeded study)."""
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    for start in starts:
        study.enqueue_trial(space.encode(start)[0])
    for number in range(n_trials):
        if reseed:
            reseed_for_trial(sampler, history.seed, number)
        trial = study.ask()
        params = space.suggest(trial)

        def judge(epoch: int, value: float, trial: optuna.Trial = trial) -> bool:
            trial.report(value, epoch)
            return not trial.should_prune()

        record = trainer.run(params, history.seed, trial.number, judge)
        history.trials.append(record)
        if record.result is not None:
            study.tell(trial, record.result)
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return history


def random_search(space: CompiledSpace, n_trials: int) -> Strategy:
    """Random search over the preset's whole space: no pruner, no starts."""

    def strategy(trainer: Trainer, seed: int) -> History:
        sampler = RandomSampler(seed=seed)
        return run_search(
            History(RANDOM, seed), trainer, space, sampler, NopPruner(), [], n_trials, reseed=False
        )

    return strategy


def optuna_defaults(space: CompiledSpace, n_trials: int) -> Strategy:
    """Plain Optuna: TPE with its defaults (seeded), no pruner, no starts, the preset's whole space."""

    def strategy(trainer: Trainer, seed: int) -> History:
        sampler = TPESampler(seed=seed)
        return run_search(
            History(OPTUNA, seed), trainer, space, sampler, NopPruner(), [], n_trials, reseed=False
        )

    return strategy


def grid_points() -> list[dict[str, Any]]:
    """The ``bert-grid`` preset's points, in a fixed order."""
    grid = compile_space(SearchSpace(preset=GRID_PRESET)).grid_values()
    assert grid is not None  # the preset is a grid
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def grid_search(points: list[dict[str, Any]]) -> Strategy:
    """Every grid point, in a random order drawn from the seed (so that compute to target means something)."""

    def strategy(trainer: Trainer, seed: int) -> History:
        order = list(points)
        random.Random(seed).shuffle(order)
        history = History(GRID, seed)
        history.trials = [trainer.run(point, seed, number, _always) for number, point in enumerate(order)]
        return history

    return strategy


def service_plan(bench: Bench, registry: Registry, *, range_test: bool) -> StudyPlan:
    """The service's plan for a study that names only the task and the preset (and the range test)."""
    spec = StudySpec(
        name="search-quality",
        task=bench.task,
        search_space=SearchSpace(preset=PRESET),
        lr_range_test=LrRangeTestSpec() if range_test else None,
    )
    return compile_study(spec, registry)


def hps_defaults(plan: StudyPlan) -> Strategy:
    """hps's defaults: the plan's space (fitted to the model's family), starts, sampler and pruner."""

    def strategy(trainer: Trainer, seed: int) -> History:
        sampler = build_sampler(plan.spec.sampler.model_copy(update={"seed": seed}), plan.space)
        starts = plan.spec.search_space.starts or []
        return run_search(
            History(HPS, seed), trainer, plan.space, sampler, build_pruner(plan.spec.pruner), starts,
            plan.spec.n_trials, reseed=True,
        )  # fmt: skip

    return strategy


def hps_with_range_test(plan: StudyPlan) -> Strategy:
    """hps with ``lr_range_test``: a range test per optimizer over the space's whole lr range, then the
    search in each optimizer's narrowed range, the starts' lr fitted to it (``fit_lr``)."""
    spec, task = plan.spec, plan.spec.task
    lr, optimizer = plan.space.params["lr"], plan.space.params["optimizer"]
    assert spec.lr_range_test is not None and task is not None and task.batch_size is not None
    assert isinstance(lr, FloatParam) and isinstance(optimizer, CategoricalParam)
    steps, batch_size = spec.lr_range_test.steps, spec.lr_range_test.batch_size or task.batch_size

    def strategy(trainer: Trainer, seed: int) -> History:
        history = History(HPS_RANGE_TEST, seed)
        for choice in optimizer.choices:
            test_plan = RangeTestPlan(
                low=lr.low, high=lr.high, steps=steps, batch_size=batch_size,
                max_steps_per_epoch=task.max_steps_per_epoch, seed=seed, device=CPU,
            )  # fmt: skip
            tested = trainer.range_test(range_test_params(plan.space, str(choice)), test_plan)
            chosen = narrow_lr_range(tested.points, lr.low, lr.high)
            history.range_tests.append(RangeTestRecord(str(choice), chosen, tested.epochs, tested.seconds))
        ranges = {test.optimizer: [test.chosen.low, test.chosen.high] for test in history.range_tests}
        narrowed = {test.optimizer for test in history.range_tests if test.chosen.narrowed}
        space = plan.space.with_lr_ranges({name: (low, high) for name, (low, high) in ranges.items()})
        starts = [
            fit_lr(start, ranges, narrowed, keep_inside=False) for start in spec.search_space.starts or []
        ]
        sampler = build_sampler(spec.sampler.model_copy(update={"seed": seed}), space)
        return run_search(history, trainer, space, sampler, build_pruner(spec.pruner), starts,
                          spec.n_trials, reseed=True)  # fmt: skip

    return strategy


def strategies(bench: Bench, registry: Registry, *, grid: list[dict[str, Any]] | None) -> dict[str, Strategy]:
    """Every strategy of the task, the baselines first; ``grid``: the BERT grid's points, or None."""
    plan = service_plan(bench, registry, range_test=False)
    whole = compile_space(SearchSpace(preset=PRESET))
    n_trials = plan.spec.n_trials
    found: dict[str, Strategy] = {
        RANDOM: random_search(whole, n_trials),
        OPTUNA: optuna_defaults(whole, n_trials),
    }
    if grid is not None:
        found[GRID] = grid_search(grid)
    found[HPS] = hps_defaults(plan)
    found[HPS_RANGE_TEST] = hps_with_range_test(service_plan(bench, registry, range_test=True))
    return found


# --- Measures ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """Compute spent until the first result at or above the target (all of it when ``reached`` is False)."""

    epochs: float
    seconds: float
    reached: bool


def reach(history: History, target: float) -> Reach:
    for epochs, seconds, trial in history.timeline():
        if trial.result is not None and trial.result >= target:
            return Reach(epochs, seconds, True)
    return Reach(history.total_epochs, history.total_seconds, False)


@dataclass(frozen=True)
class Summary:
    """One strategy on one task over its seeds: medians of compute, means of results."""

    strategy: str
    seeds: int
    reached: int
    epochs_to_target: float
    seconds_to_target: float
    total_epochs: float
    total_seconds: float
    best_at_equal_epochs: float
    best_at_equal_seconds: float
    best: float
    test: float

    @property
    def censored(self) -> bool:
        """Whether most seeds never reached the target: the medians of compute are then lower bounds."""
        return 2 * self.reached < self.seeds


@dataclass(frozen=True)
class Measured:
    """A task's measures: the best result of any strategy, the target, the equal-compute budget in epochs,
    each strategy's summary and its ratios (epochs, seconds) against random and, on text, the grid."""

    best: float
    target: float
    equal_epochs: float
    equal_seconds: float
    summaries: dict[str, Summary]
    versus: dict[str, dict[str, tuple[float, float]]]


def measure(bench: Bench, histories: Mapping[str, list[History]], trainer: Trainer) -> Measured:
    """The measures of the module docstring."""
    results = [
        t.result for runs in histories.values() for h in runs for t in h.trials if t.result is not None
    ]
    best = max(results)
    target = best - bench.margin
    equal_epochs = min(statistics.median(h.total_epochs for h in runs) for runs in histories.values())
    equal_seconds = min(statistics.median(h.total_seconds for h in runs) for runs in histories.values())
    summaries = {}
    for name, runs in histories.items():
        reaches = [reach(h, target) for h in runs]
        recommended = [recommend(h) for h in runs]
        summaries[name] = Summary(
            strategy=name,
            seeds=len(runs),
            reached=sum(r.reached for r in reaches),
            epochs_to_target=statistics.median(r.epochs for r in reaches),
            seconds_to_target=statistics.median(r.seconds for r in reaches),
            total_epochs=statistics.median(h.total_epochs for h in runs),
            total_seconds=statistics.median(h.total_seconds for h in runs),
            best_at_equal_epochs=statistics.mean(
                _or(h.best_within(epochs=equal_epochs), bench.chance) for h in runs
            ),
            best_at_equal_seconds=statistics.mean(
                _or(h.best_within(seconds=equal_seconds), bench.chance) for h in runs
            ),
            best=statistics.mean(_or(t.result if t else None, bench.chance) for t in recommended),
            test=statistics.mean(trainer.test_accuracy(t.params) if t else bench.chance for t in recommended),
        )
    versus = {base: _ratios(summaries, base) for base in (RANDOM, GRID) if base in summaries}
    return Measured(best, target, equal_epochs, equal_seconds, summaries, versus)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _ratios(summaries: Mapping[str, Summary], base: str) -> dict[str, tuple[float, float]]:
    """The base's median compute to target over each strategy's, epochs and seconds (> 1: less compute)."""
    of = summaries[base]
    return {
        name: (of.epochs_to_target / s.epochs_to_target, of.seconds_to_target / s.seconds_to_target)
        for name, s in summaries.items()
    }


def spread(bench: Bench, runs: list[History]) -> dict[str, float]:
    """How random configurations fare: quantiles of their results (a trial with none, diverged, counts as
    chance) and the share within the margin of chance."""
    results = sorted(_or(t.result, bench.chance) for h in runs for t in h.trials)
    q25, median, q75 = statistics.quantiles(results, n=4, method="inclusive")
    return {
        "trials": len(results),
        "min": results[0],
        "q25": q25,
        "median": median,
        "q75": q75,
        "max": results[-1],
        "at_chance": sum(r <= bench.chance + bench.margin for r in results) / len(results),
        "diverged": sum(t.state == "diverged" for h in runs for t in h.trials),
    }


# --- Running and reporting --------------------------------------------------------------------------------


def run_all(
    found: Mapping[str, Strategy], trainer: Trainer, seeds: range, label: str
) -> dict[str, list[History]]:
    histories: dict[str, list[History]] = {}
    for name, strategy in found.items():
        started = time.perf_counter()
        histories[name] = [strategy(trainer, seed) for seed in seeds]
        print(f"  {label} {name}: {len(seeds)} seeds in {time.perf_counter() - started:.1f}s", flush=True)
    return histories


def report(bench: Bench, measured: Measured, random_spread: Mapping[str, float], header: str) -> list[str]:
    """The task's table, as lines."""
    lines = [
        "",
        header,
        f"target: within {bench.margin} of the best result any strategy found ({measured.best:.4f}), i.e. "
        f">= {measured.target:.4f}. epochs, seconds: median compute to target ('>': most seeds never got "
        "there, so a lower bound); x rand, x grid: their median over the strategy's (> 1: less compute); "
        f"best@E, best@S: mean best result within E = {measured.equal_epochs:g} epochs, S = "
        f"{measured.equal_seconds:.1f} s (the smallest median totals); best: of the recommended "
        "configuration; test: its held-out accuracy",
        f"{'strategy':15} {'reached':>7} {'epochs':>7} {'x rand':>6} {'x grid':>6} {'seconds':>8} "
        f"{'x rand':>6} {'x grid':>6} {'total ep':>8} {'total s':>8} {'best@E':>7} {'best@S':>7} {'best':>7} "
        f"{'test':>7}",
    ]
    for name, s in measured.summaries.items():
        mark = ">" if s.censored else " "
        by_random = measured.versus[RANDOM][name]
        by_grid = measured.versus.get(GRID, {}).get(name)
        grid = (f"{by_grid[0]:6.2f}", f"{by_grid[1]:6.2f}") if by_grid else ("     -", "     -")
        lines.append(
            f"{name:15} {s.reached:>4}/{s.seeds:<2} {mark}{s.epochs_to_target:6.1f} {by_random[0]:6.2f} "
            f"{grid[0]} {mark}{s.seconds_to_target:7.1f} {by_random[1]:6.2f} {grid[1]} "
            f"{s.total_epochs:8.1f} {s.total_seconds:8.1f} {s.best_at_equal_epochs:7.4f} "
            f"{s.best_at_equal_seconds:7.4f} {s.best:7.4f} {s.test:7.4f}"
        )
    r = random_spread
    lines.append(
        f"random configurations ({r['trials']:g} trials of random search): results min {r['min']:.3f} / q25 "
        f"{r['q25']:.3f} / median {r['median']:.3f} / q75 {r['q75']:.3f} / max {r['max']:.3f}; "
        f"{r['at_chance']:.0%} within {bench.margin} of chance ({bench.chance:.3f}); "
        f"{r['diverged']:g} diverged"
    )
    return lines


def summary_part(bench: Bench, measured: Measured, seeds: int) -> str:
    """The task's part of the summary line: compute ratios (with how many seeds reached the target) and
    test accuracies."""
    names, summaries = list(measured.summaries), measured.summaries

    def ratios(base: str, which: int) -> str:
        return ", ".join(
            f"{n} {measured.versus[base][n][which]:.2f}x ({summaries[n].reached}/{summaries[n].seeds})"
            for n in names
            if n != base
        )

    part = (
        f"{bench.label} (margin {bench.margin}, {seeds} seeds; in brackets: seeds that reached the target): "
    )
    part += f"epochs-to-target vs random ({summaries[RANDOM].reached}/{seeds}) {ratios(RANDOM, 0)}"
    if GRID in measured.versus:
        part += f"; vs grid ({summaries[GRID].reached}/{seeds}) {ratios(GRID, 0)}"
    part += f"; seconds vs random {', '.join(f'{n} {measured.versus[RANDOM][n][1]:.2f}x' for n in names[1:])}"
    tests = ", ".join(f"{n} {s.test:.3f}" for n, s in summaries.items())
    return part + f"; test {tests}"


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
            "live_val": statistics.mean(_or(val, bench.chance) for val, _ in live),
            "live_test": statistics.mean(_or(test, bench.chance) for _, test in live),
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
    histories = run_all(strategies(bench, registry, grid=grid), trainer, seeds, bench.label)
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


def run_digits(registry: Registry, seeds: range) -> tuple[str, dict[str, Any]]:
    bench = DIGITS
    resolved = registry.resolve(bench.task.name, bench.task.model, bench.task.dataset)
    trainer = LiveTrainer(load_task(resolved), resolved, bench.chance)
    histories = run_all(strategies(bench, registry, grid=None), trainer, seeds, bench.label)
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
        part, tasks["digits"] = run_digits(registry, seeds)
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
