"""Workers' claims: fair across studies, within max_parallel, only for the tasks a worker runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text

from harness.databases import sqlite_url
from harness.stack import LEASE, Stack
from hps.catalog.registry import load_registry
from hps.server import claims, studies
from hps.server.sampling import Sampling
from hps.server.store.database import Database
from hps.server.store.schema import upgrade
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


def test_an_idle_claim_writes_nothing_even_while_another_writer_holds_sqlite(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    upgrade(url)
    db, sampling = Database(url, busy_timeout_s=0.3), Sampling(url)
    stack = Stack(url, db, sampling, load_registry())
    try:
        task_study(stack, "idle-check", task="quadratic")
        writer = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # SQLite's one write lock, held by someone else
        try:
            # No study of this task: the claim reads, finds nothing, and must not wait for the lock.
            assert claim(stack, tasks=("image-classification",)) is None
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM hps_workers")).scalar_one() == 0
        assert claim(stack) is not None  # a claim that gets a trial records the worker, in its commit
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT trials_claimed FROM hps_workers")).scalar_one() == 1
    finally:
        sampling.close()
        db.dispose()
