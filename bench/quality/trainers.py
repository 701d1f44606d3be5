"""Trainers: what runs a strategy's trials and range tests, live with hps's own training loop or replayed
from a table of real runs that ``bench/fine_tuning_table.py`` wrote."""

from __future__ import annotations

import importlib
import json
import math
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from hps.catalog.registry import ResolvedTask
from hps.search_spaces.lr_range import RangeTestPoint
from hps.server.strategies import trial_seed
from hps.workers.lr_range_test import RangeTestPlan, run_range_test
from hps.workers.tasks.base import Task
from hps.workers.training import Decision, EpochResult, TrainingPlan, train
from quality.records import BENCH, METRIC, Judge, TrialRecord

TEST_SEEDS = (0, 1, 2)  # training seeds of a recommended configuration's test accuracy (digits, live)
CPU = torch.device("cpu")


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


def always_continue(epoch: int, value: float) -> bool:
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
