"""The strategies compared: random search, plain Optuna, the BERT grid, and hps's own (its defaults, and
its defaults with the lr range test), each a function of (trainer, seed) returning a ``History``."""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import TrialState

from hps.catalog.registry import Registry
from hps.report.confirmed import t95
from hps.search_spaces import CategoricalParam, CompiledSpace, FloatParam, SearchSpace, compile_space
from hps.search_spaces.lr_range import narrow_lr_range
from hps.server.plans import StudyPlan
from hps.server.range_tests import fit_lr, range_test_params
from hps.server.strategies import build_pruner, build_sampler, reseed_for_trial
from hps.server.studies import compile_study
from hps.wire.studies import (
    ConfirmSpec,
    LrRangeTestSpec,
    MedianPruner,
    NoPruner,
    PrunerSpec,
    StudySpec,
    SuccessiveHalvingPruner,
)
from hps.workers.lr_range_test import RangeTestPlan
from quality.records import GRID_PRESET, PRESET, Bench, History, RangeTestRecord, TrialRecord
from quality.trainers import CPU, Trainer, always_continue

Strategy = Callable[[Trainer, int], History]
RANDOM, OPTUNA, GRID, HPS, HPS_RANGE_TEST = "random", "optuna", "bert-grid", "hps", "hps+range-test"
HPS_CONFIRM = "hps+confirm"


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
        history.trials = [
            trainer.run(point, seed, number, always_continue) for number, point in enumerate(order)
        ]
        return history

    return strategy


def service_plan(
    bench: Bench, registry: Registry, *, range_test: bool, pruner: PrunerSpec | None = None
) -> StudyPlan:
    """The service's plan for a study that names only the task and the preset (and the range test);
    ``pruner``: one a study names instead of the default."""
    fields: dict[str, Any] = {} if pruner is None else {"pruner": pruner}
    spec = StudySpec(
        name="search-quality",
        task=bench.task,
        search_space=SearchSpace(preset=PRESET),
        lr_range_test=LrRangeTestSpec() if range_test else None,
        **fields,
    )
    return compile_study(spec, registry)


def hps_defaults(plan: StudyPlan, label: str = HPS) -> Strategy:
    """hps's defaults: the plan's space (fitted to the model's family), starts, sampler and pruner."""

    def strategy(trainer: Trainer, seed: int) -> History:
        sampler = build_sampler(plan.spec.sampler.model_copy(update={"seed": seed}), plan.space)
        starts = plan.spec.search_space.starts or []
        return run_search(
            History(label, seed), trainer, plan.space, sampler, build_pruner(plan.spec.pruner), starts,
            plan.spec.n_trials, reseed=True,
        )  # fmt: skip

    return strategy


def with_confirm(search: Strategy, n_trials: int, confirm: ConfirmSpec, label: str) -> Strategy:
    """``search``, then its ``confirm.top_k`` best distinct configurations re-run ``confirm.seeds`` times
    each on fresh seeds (trial numbers after the search's, so other seeds), never pruned; the recommendation
    is the configuration with the best pessimistic end of the 90% Student-t interval over its fresh runs,
    as the service's report ranks them (``hps.report.confirmed``)."""

    def strategy(trainer: Trainer, seed: int) -> History:
        history = search(trainer, seed)
        history.strategy = label
        chosen: dict[str, TrialRecord] = {}
        for trial in sorted(history.trials, key=lambda t: -(t.result if t.result is not None else -1.0)):
            if trial.result is not None:
                chosen.setdefault(json.dumps(trial.asked, sort_keys=True), trial)
        number = n_trials
        bounds: list[tuple[float, int, TrialRecord]] = []
        for rank, source in enumerate(list(chosen.values())[: confirm.top_k]):
            runs = []
            for _ in range(confirm.seeds):
                run = trainer.run(source.asked, seed, number, always_continue)
                history.trials.append(replace(run, confirms=source.number))
                runs.append(run)
                number += 1
            values = [run.result for run in runs if run.result is not None]
            if len(values) == len(runs):
                half = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
                bounds.append((statistics.fmean(values) - half, -rank, source))
        if bounds:
            history.recommended = max(bounds, key=lambda bound: bound[:2])[2]
        return history

    return strategy


def hps_with_range_test(plan: StudyPlan, label: str = HPS_RANGE_TEST) -> Strategy:
    """hps with ``lr_range_test``: a range test per optimizer over the space's whole lr range, then the
    search in each optimizer's narrowed range, the starts' lr fitted to it (``fit_lr``)."""
    spec, task = plan.spec, plan.spec.task
    lr, optimizer = plan.space.params["lr"], plan.space.params["optimizer"]
    assert spec.lr_range_test is not None and task is not None and task.batch_size is not None
    assert isinstance(lr, FloatParam) and isinstance(optimizer, CategoricalParam)
    steps, batch_size = spec.lr_range_test.steps, spec.lr_range_test.batch_size or task.batch_size

    def strategy(trainer: Trainer, seed: int) -> History:
        history = History(label, seed)
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


def strategies(
    bench: Bench, registry: Registry, *, grid: list[dict[str, Any]] | None, candidates: bool = False
) -> dict[str, Strategy]:
    """Every strategy of the task, the baselines first; ``grid``: the BERT grid's points, or None.
    ``candidates``: also the variants the defaults were chosen from (``candidate_strategies``)."""
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
    found[HPS_CONFIRM] = with_confirm(found[HPS], n_trials, ConfirmSpec(), HPS_CONFIRM)
    if candidates:
        found.update(candidate_strategies(bench, registry))
    return found


def candidate_pruners(epochs: int) -> dict[str, PrunerSpec]:
    """The pruners the default was chosen from, for trials of ``epochs`` epochs: successive halving from
    the first epoch (the default until issue 13), from half the epochs, the median rule after half the
    epochs, and none."""
    half = max(1, epochs // 2)
    return {
        "sh@1": SuccessiveHalvingPruner(name="successive_halving", min_resource=1, reduction_factor=3),
        "sh@half": SuccessiveHalvingPruner(name="successive_halving", min_resource=half, reduction_factor=3),
        "median@half": MedianPruner(name="median", n_startup_trials=5, n_warmup_steps=half - 1),
        "none": NoPruner(name="none"),
    }


def candidate_strategies(bench: Bench, registry: Registry) -> dict[str, Strategy]:
    """hps with each candidate pruner, with and without the range test, and hps with no prior for the
    model's family (the preset's whole lr range and its own starts: what a study of an unregistered
    family gets, and what the range test must beat)."""
    epochs = service_plan(bench, registry, range_test=False).spec.task
    assert epochs is not None and epochs.epochs is not None
    found: dict[str, Strategy] = {}
    for name, pruner in candidate_pruners(epochs.epochs).items():
        found[f"hps {name}"] = hps_defaults(
            service_plan(bench, registry, range_test=False, pruner=pruner), f"hps {name}"
        )
        with_test = service_plan(bench, registry, range_test=True, pruner=pruner)
        found[f"hps {name} +rt"] = hps_with_range_test(with_test, f"hps {name} +rt")
        # A study with the range test keeps the preset's whole range (the test is to narrow it): without
        # running the test, that is a study with no family prior.
        found[f"hps {name} no-prior"] = hps_defaults(with_test, f"hps {name} no-prior")
    return found
