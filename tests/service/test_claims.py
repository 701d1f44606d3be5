"""Workers' claims: fair across studies, within max_parallel, only for the tasks a worker runs."""

from __future__ import annotations

from typing import Any

from harness.stack import LEASE, Stack
from hps.server import claims, studies
from hps.wire.studies import StudySpec


def task_study(stack: Stack, name: str, task: str = "quadratic", **budget: Any) -> int:
    spec = StudySpec.model_validate(
        {
            "name": name,
            "task": {"name": task},
            "search_space": {"preset": "adam", "starts": []},
            "budget": {"n_trials": 20, **budget},
        }
    )
    return studies.create_study(stack.db, spec, stack.registry).record.id


def claim(stack: Stack, tasks: tuple[str, ...] = ("quadratic",), worker: str = "w") -> claims.Claim | None:
    return claims.claim_trial(
        stack.db, stack.sampling, worker_id=worker, device="cpu", tasks=tasks, lease=LEASE
    )


def test_claims_alternate_between_studies_so_none_starves(stack: Stack) -> None:
    first = task_study(stack, "first")
    second = task_study(stack, "second")
    served = []
    for _ in range(6):
        found = claim(stack)
        assert found is not None
        served.append(found.trial.study_id)
    assert served.count(first) == 3 and served.count(second) == 3


def test_a_claim_carries_the_task_with_its_defaults(stack: Stack) -> None:
    task_study(stack, "defaults", task="digits")
    found = claim(stack, tasks=("digits",))
    assert found is not None
    assert found.task == {
        "name": "digits",
        "model": "digits-cnn",
        "dataset": "digits-5to9",
        "epochs": 8,
        "batch_size": 32,
        "max_steps_per_epoch": None,
    }
    assert (found.metric, found.direction) == ("val_accuracy", "maximize")


def test_only_tasks_the_worker_runs_and_nothing_is_none(stack: Stack) -> None:
    task_study(stack, "digits-only", task="digits")
    assert claim(stack, tasks=("quadratic",)) is None
    assert claim(stack, tasks=("digits", "quadratic")) is not None


def test_max_parallel_is_respected_and_other_studies_still_served(stack: Stack) -> None:
    capped = task_study(stack, "capped", max_parallel=1)
    other = task_study(stack, "other")
    got = [claim(stack) for _ in range(3)]
    assert all(g is not None for g in got)
    studies_served = [g.trial.study_id for g in got if g is not None]
    assert studies_served.count(capped) == 1 and studies_served.count(other) == 2


def test_external_studies_are_never_claimed(stack: Stack) -> None:
    spec = StudySpec.model_validate({"name": "external", "search_space": {"preset": "adam"}})
    studies.create_study(stack.db, spec, stack.registry)
    assert claim(stack, tasks=("quadratic", "digits")) is None
