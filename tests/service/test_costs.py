"""Cost as data and cost-aware studies, on a real database (SQLite and PostgreSQL): what a completion's
cost becomes in the trial and the study's totals, money at the price of the moment, two-objective Optuna
studies and the checks at the door."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from harness.stack import LEASE, Stack
from hps.server import studies, trials
from hps.server.errors import InvalidInput
from hps.wire.studies import StudySpec
from hps.wire.trials import Completion, Report


def spec(name: str, **overrides: Any) -> StudySpec:
    body: dict[str, Any] = {
        "name": name,
        "direction": "maximize",
        "metric": "val_accuracy",
        "search_space": {"preset": "optimizers", "starts": []},
        "sampler": {"name": "tpe", "seed": 7, "n_startup_trials": 2},
        "budget": {"n_trials": 6},
    }
    body.update(overrides)
    return StudySpec.model_validate(body)


COST_AWARE = {"objectives": [{"metric": "val_accuracy"}, {"cost": "gpu_seconds"}]}


def finish(
    stack: Stack, study_id: int, value: float, cost: dict[str, Any] | None, price: float | None = None
) -> Any:
    asked = trials.ask_trial(stack.db, stack.sampling, study_id, lease=LEASE)
    body: dict[str, Any] = {"state": "complete", "value": value}
    if cost is not None:
        body["cost"] = cost
    completion = Completion.model_validate(body)
    return trials.complete_trial(
        stack.db, stack.sampling, study_id, asked.number, completion, price_per_gpu_hour=price
    )


def test_costs_are_stored_with_money_at_the_price_of_the_moment_and_totalled(stack: Stack) -> None:
    study_id = studies.create_study(stack.db, spec("costed"), stack.registry).record.id
    first = finish(
        stack, study_id, 0.5, {"device_seconds": 7200.0, "gpus": 0.5, "peak_memory_mb": 900.0, "samples": 640}
    )
    second = finish(
        stack, study_id, 0.6, {"device_seconds": 3600.0, "gpus": 1.0, "peak_memory_mb": 1200.0}, price=2.0
    )
    finish(stack, study_id, 0.7, None)  # an external client that measured nothing

    assert first.record.gpu_seconds == 3600.0 and first.record.money is None
    assert first.record.samples == 640
    assert second.record.gpu_seconds == 3600.0 and second.record.money == pytest.approx(2.0)
    view = studies.get_study(stack.db, study_id)
    totals = view.cost
    assert totals.trials == 2
    assert totals.device_seconds == 10_800.0
    assert totals.gpu_seconds == 7_200.0
    assert totals.samples == 640
    assert totals.peak_memory_mb == 1200.0
    assert (totals.priced, totals.money) == (1, pytest.approx(2.0))


def test_a_cost_aware_study_is_a_two_objective_optuna_study(stack: Stack) -> None:
    created = studies.create_study(stack.db, spec("pareto", **COST_AWARE), stack.registry)
    stored = StudySpec.model_validate(created.record.spec)
    assert stored.pruner.name == "none"  # Optuna's pruners judge one objective
    assert stored.cost_objective == "gpu_seconds"
    study_id = created.record.id
    asked = trials.ask_trial(stack.db, stack.sampling, study_id, lease=LEASE)
    answer = trials.report_trial(
        stack.db, stack.sampling, study_id, asked.number, Report(step=1, value=0.3), lease=LEASE
    )
    assert not answer.should_prune
    done = trials.complete_trial(
        stack.db,
        stack.sampling,
        study_id,
        asked.number,
        Completion.model_validate(
            {"state": "complete", "value": 0.8, "cost": {"device_seconds": 10.0, "gpus": 1.0}}
        ),
    )
    assert done.record.value == 0.8  # hps's value stays the metric: best trial and promotion use it
    for value, seconds in ((0.9, 30.0), (0.7, 5.0), (0.6, 40.0)):
        finish(stack, study_id, value, {"device_seconds": seconds, "gpus": 1.0})

    loaded = optuna.load_study(study_name="pareto", storage=stack.url)
    assert loaded.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert loaded.metric_names == ["val_accuracy", "gpu_seconds"]
    assert sorted(t.values for t in loaded.best_trials) == [[0.7, 5.0], [0.8, 10.0], [0.9, 30.0]]
    assert studies.get_study(stack.db, study_id).best is not None
    # Optuna's multi-objective TPE samples from this history.
    assert trials.ask_trial(stack.db, stack.sampling, study_id, lease=LEASE).params


def test_a_cost_aware_trial_completes_only_with_its_cost(stack: Stack) -> None:
    study_id = studies.create_study(stack.db, spec("needs-cost", **COST_AWARE), stack.registry).record.id
    with pytest.raises(InvalidInput) as raised:
        finish(stack, study_id, 0.5, None)
    assert raised.value.field == "cost"
    # A failed trial carries no values and needs no cost.
    asked = trials.ask_trial(stack.db, stack.sampling, study_id, lease=LEASE)
    failed = Completion.model_validate({"state": "failed", "reason": "error: boom"})
    assert (
        trials.complete_trial(stack.db, stack.sampling, study_id, asked.number, failed).record.state
        == "failed"
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"objectives": [{"metric": "val_accuracy"}, {"metric": "val_loss"}]}, "objectives.1"),
        ({"objectives": [{"metric": "val_accuracy"}]}, "objectives"),
        ({"objectives": [{"cost": "gpu_seconds"}, {"cost": "money"}]}, "objectives"),
        ({**COST_AWARE, "metric": "val_loss"}, "objectives.0.metric"),
        ({**COST_AWARE, "pruner": {"name": "median"}}, "pruner.name"),
        ({**COST_AWARE, "sampler": {"name": "cmaes"}}, "sampler.name"),
        ({"recommend": {"rule": "best_under", "max_cost": 10}}, "recommend"),
        ({"objectives": [{"metric": "val_accuracy"}, {"cost": "money"}]}, "objectives.1.cost"),
    ],
)
def test_bad_objectives_are_refused_naming_the_field(
    stack: Stack, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        studies.create_study(stack.db, spec("bad", **overrides), stack.registry)
    assert raised.value.field == field


def test_money_objective_with_a_price(stack: Stack) -> None:
    body = {"objectives": [{"metric": "val_accuracy"}, {"cost": "money"}]}
    study_id = studies.create_study(
        stack.db, spec("money", **body), stack.registry, price_per_gpu_hour=3.0
    ).record.id
    done = finish(stack, study_id, 0.5, {"device_seconds": 1200.0, "gpus": 1.0}, price=3.0)
    assert done.record.money == pytest.approx(1.0)
    (trial,) = optuna.load_study(study_name="money", storage=stack.url).trials
    assert trial.values == [0.5, pytest.approx(1.0)]
