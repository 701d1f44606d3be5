"""Use cases on a real database (SQLite and PostgreSQL): ask → report → complete, budgets, retries,
study states, and what Optuna itself sees."""

from __future__ import annotations

import math
import threading
from typing import Any

import optuna
import pytest

from harness.stack import LEASE, Stack
from hps.server import studies, trials
from hps.server.errors import (
    BudgetExhausted,
    CompletionConflict,
    LeaseLost,
    ParallelLimitReached,
    StudyNotRunning,
    TrialNotFound,
)
from hps.wire.studies import StudySpec
from hps.wire.trials import Completion, Report


def make_spec(name: str, **overrides: Any) -> StudySpec:
    body: dict[str, Any] = {
        "name": name,
        "search_space": {"preset": "optimizers", "starts": []},
        "sampler": {"name": "tpe", "seed": 7},
        "budget": {"n_trials": 6},
    }
    body.update(overrides)
    return StudySpec.model_validate(body)


def create(stack: Stack, name: str = "study", **overrides: Any) -> int:
    return studies.create_study(stack.db, make_spec(name, **overrides), stack.registry).record.id


def ask(stack: Stack, study_id: int) -> trials.AskedTrial:
    return trials.ask_trial(stack.db, stack.sampling, study_id, lease=LEASE)


def complete(stack: Stack, study_id: int, number: int, **body: Any) -> Any:
    completion = Completion.model_validate(body)
    return trials.complete_trial(stack.db, stack.sampling, study_id, number, completion)


def test_ask_report_complete_is_what_optuna_sees(stack: Stack) -> None:
    study_id = create(stack, direction="maximize")
    asked = ask(stack, study_id)
    for step, value in enumerate([0.2, 0.5, 0.7]):
        answer = trials.report_trial(
            stack.db, stack.sampling, study_id, asked.number, Report(step=step, value=value), lease=LEASE
        )
        assert not answer.should_stop
    view = complete(stack, study_id, asked.number, state="complete", value=0.7, attrs={"epochs": 3})
    assert view.record.state == "complete"
    assert view.intermediate_values == [(0, 0.2), (1, 0.5), (2, 0.7)]

    loaded = optuna.load_study(study_name="study", storage=stack.url)
    (trial,) = loaded.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == 0.7
    assert trial.intermediate_values == {0: 0.2, 1: 0.5, 2: 0.7}
    assert trial.user_attrs == {"epochs": 3, "hps_state": "complete"}
    plan = stack.sampling.plan(studies.get_study(stack.db, study_id).record)
    assert plan.space.decode(trial.params) == asked.params
    assert loaded.direction == optuna.study.StudyDirection.MAXIMIZE


def test_seeded_sampler_never_repeats_and_is_reproducible(stack: Stack, database_url: str) -> None:
    study_id = create(stack, sampler={"name": "random", "seed": 3})
    first = [ask(stack, study_id).params for _ in range(4)]
    assert len({repr(p) for p in first}) == 4
    twin_id = create(stack, name="twin", sampler={"name": "random", "seed": 3})
    again = [ask(stack, twin_id).params for _ in range(4)]
    assert again == first


def test_budget_is_exact_under_concurrent_asks(stack: Stack) -> None:
    study_id = create(stack, budget={"n_trials": 5})
    granted: list[int] = []
    refused: list[Exception] = []

    def client() -> None:
        for _ in range(3):
            try:
                granted.append(ask(stack, study_id).number)
            except BudgetExhausted as exc:
                refused.append(exc)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(granted) == [0, 1, 2, 3, 4]
    assert len(refused) == 13


def test_study_completes_when_the_budget_is_spent(stack: Stack) -> None:
    study_id = create(stack, budget={"n_trials": 2})
    for _ in range(2):
        asked = ask(stack, study_id)
        complete(stack, study_id, asked.number, state="complete", value=1.0)
    view = studies.get_study(stack.db, study_id)
    assert view.record.state == "completed"
    assert (view.progress.complete, view.remaining) == (2, 0)
    with pytest.raises(StudyNotRunning):
        ask(stack, study_id)


def test_replay_is_harmless_and_a_different_completion_conflicts(stack: Stack) -> None:
    study_id = create(stack)
    number = ask(stack, study_id).number
    first = complete(stack, study_id, number, state="complete", value=2.0)
    replay = complete(stack, study_id, number, state="complete", value=2.0)
    assert replay.record == first.record
    with pytest.raises(CompletionConflict):
        complete(stack, study_id, number, state="complete", value=3.0)
    with pytest.raises(LeaseLost):
        trials.report_trial(
            stack.db, stack.sampling, study_id, number, Report(step=9, value=1.0), lease=LEASE
        )
    with pytest.raises(TrialNotFound):
        complete(stack, study_id, 99, state="complete", value=1.0)


def test_an_infrastructure_failure_is_retried_with_the_same_params(stack: Stack) -> None:
    study_id = create(stack, budget={"n_trials": 3, "max_retries": 1})
    first = ask(stack, study_id)
    complete(stack, study_id, first.number, state="failed", reason="oom: CUDA out of memory")
    retry = ask(stack, study_id)
    assert (retry.params, retry.attempt) == (first.params, 2)
    retried = trials.get_trial(stack.db, stack.sampling, study_id, retry.number).record
    assert retried.retry_of == first.number
    complete(stack, study_id, retry.number, state="failed", reason="oom")
    # max_retries is 1: the third attempt is not made, the failure counts.
    progress = studies.get_study(stack.db, study_id).progress
    assert (progress.failed, progress.queued) == (1, 0)
    assert ask(stack, study_id).params != first.params


def test_a_task_error_is_not_retried_and_max_failed_fails_the_study(stack: Stack) -> None:
    study_id = create(stack, budget={"n_trials": 10, "max_failed": 2})
    for _ in range(2):
        number = ask(stack, study_id).number
        complete(stack, study_id, number, state="failed", reason="ValueError: bad data")
    view = studies.get_study(stack.db, study_id)
    assert view.record.state == "failed"
    assert "max_failed" in (view.record.state_reason or "")


def test_diverged_is_pruned_in_optuna_at_its_last_finite_value(stack: Stack) -> None:
    study_id = create(stack)
    number = ask(stack, study_id).number
    for step, value in enumerate([0.9, 0.4, math.nan]):
        answer = trials.report_trial(
            stack.db, stack.sampling, study_id, number, Report(step=step, value=value), lease=LEASE
        )
    assert answer.should_prune
    view = complete(stack, study_id, number, state="diverged", reason="loss is nan")
    assert view.intermediate_values[-1] == (2, None)
    (trial,) = optuna.load_study(study_name="study", storage=stack.url).trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.value == 0.4
    assert trial.user_attrs["hps_state"] == "diverged"


def test_max_parallel_limits_running_trials(stack: Stack) -> None:
    study_id = create(stack, budget={"n_trials": 5, "max_parallel": 2})
    ask(stack, study_id)
    ask(stack, study_id)
    with pytest.raises(ParallelLimitReached):
        ask(stack, study_id)


def test_cancel_drops_queued_retries_and_tells_running_trials_to_stop(stack: Stack) -> None:
    study_id = create(stack)
    running = ask(stack, study_id)
    failed = ask(stack, study_id)
    complete(stack, study_id, failed.number, state="failed", reason="worker-lost")
    assert studies.get_study(stack.db, study_id).progress.queued == 1
    view = studies.cancel_study(stack.db, stack.sampling, study_id)
    assert view.record.state == "cancelled"
    assert view.progress.queued == 0
    answer = trials.report_trial(
        stack.db, stack.sampling, study_id, running.number, Report(step=0, value=1.0), lease=LEASE
    )
    assert answer.should_stop
    complete(stack, study_id, running.number, state="complete", value=1.0)


def test_delete_removes_the_optuna_study_too(stack: Stack) -> None:
    study_id = create(stack)
    complete(stack, study_id, ask(stack, study_id).number, state="complete", value=1.0)
    studies.delete_study(stack.db, stack.sampling, study_id)
    assert optuna.get_all_study_names(storage=stack.url) == []
    recreated = create(stack)
    assert ask(stack, recreated).number == 0


@pytest.mark.parametrize(
    "sampler", ["tpe", "random", "gp", "cmaes", "qmc"], ids=lambda name: f"sampler-{name}"
)
def test_every_sampler_samples(stack: Stack, sampler: str) -> None:
    study_id = create(
        stack, sampler={"name": sampler, "seed": 1}, search_space={"preset": "adamw", "starts": []}
    )
    seen = []
    for value in range(4):
        asked = ask(stack, study_id)
        seen.append(asked.params["lr"])
        complete(stack, study_id, asked.number, state="complete", value=float(value))
    assert len(set(seen)) == 4


def test_grid_search_visits_every_point_once(stack: Stack) -> None:
    study_id = create(
        stack, sampler={"name": "grid", "seed": 0}, search_space={"preset": "bert-grid"}, budget={}
    )
    assert studies.get_study(stack.db, study_id).remaining == 18
    points = set()
    for _ in range(18):
        asked = ask(stack, study_id)
        points.add((asked.params["lr"], asked.params["batch_size"], asked.params["epochs"]))
        complete(stack, study_id, asked.number, state="complete", value=0.0)
    assert len(points) == 18
    assert studies.get_study(stack.db, study_id).record.state == "completed"


@pytest.mark.parametrize(
    "pruner",
    [
        {"name": "none"},
        {"name": "median", "n_startup_trials": 1},
        {"name": "percentile", "percentile": 50.0, "n_startup_trials": 1},
        {"name": "successive_halving"},
        {"name": "hyperband", "max_resource": 4},
    ],
    ids=lambda p: p["name"],
)
def test_every_pruner_answers(stack: Stack, pruner: dict[str, Any]) -> None:
    study_id = create(stack, pruner=pruner, budget={"n_trials": 6})
    answers = []
    for index in range(6):
        number = ask(stack, study_id).number
        for step in range(4):
            # Later trials are worse at every step: pruners other than "none" should prune some.
            value = float(index * 10 + step)
            answer = trials.report_trial(
                stack.db, stack.sampling, study_id, number, Report(step=step, value=value), lease=LEASE
            )
            answers.append(answer.should_prune)
            if answer.should_prune:
                complete(stack, study_id, number, state="pruned", reason="pruned")
                break
        else:
            complete(stack, study_id, number, state="complete", value=float(index * 10 + 3))
    assert any(answers) == (pruner["name"] != "none")


def test_a_presets_starts_run_first_then_sampling_takes_over(stack: Stack) -> None:
    study_id = create(stack, search_space={"preset": "optimizers"}, budget={"n_trials": 7})
    view = studies.get_study(stack.db, study_id)
    assert view.progress.queued == 5 and view.remaining == 2
    first = [ask(stack, study_id).params for _ in range(5)]
    assert [p["optimizer"] for p in first] == ["adamw", "adam", "sgd", "adagrad", "lbfgs"]
    assert first[0]["lr"] == 1e-3 and first[0]["beta2"] == 0.999
    sampled = ask(stack, study_id)
    assert sampled.number == 5 and sampled.attempt == 1
    loaded = optuna.load_study(study_name="study", storage=stack.url)
    assert loaded.trials[0].params["optimizer"] == "adamw"
    assert loaded.trials[0].system_attrs["fixed_params"]["lr"] == 1e-3


def test_starts_beyond_the_budget_are_not_queued(stack: Stack) -> None:
    study_id = create(stack, search_space={"preset": "optimizers"}, budget={"n_trials": 2})
    assert studies.get_study(stack.db, study_id).progress.queued == 2


def test_what_a_pruner_records_is_written_with_the_report(stack: Stack) -> None:
    study_id = create(stack, pruner={"name": "successive_halving", "min_resource": 1, "reduction_factor": 2})
    for index in range(3):
        number = ask(stack, study_id).number
        trials.report_trial(
            stack.db, stack.sampling, study_id, number, Report(step=1, value=float(index)), lease=LEASE
        )
    loaded = optuna.load_study(study_name="study", storage=stack.url)
    rungs = [t.system_attrs.get("completed_rung_0") for t in loaded.trials]
    assert rungs == [0.0, 1.0, 2.0]
