"""Claiming work for a worker: pick a study fairly, then ask a trial in it (or, in a study that waits for
its learning-rate range tests, hand out one of those to a worker that says it runs them).

Fairness: among the running studies of the tasks a worker can run, the claim tries those with the fewest
running trials first, and among equals the one served longest ago; a study that cannot start a trial now
(budget handed out, ``max_parallel`` reached) is skipped. Every study with work left is therefore served
within a few claims, however many trials another study has queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from hps.server.clock import utcnow
from hps.server.errors import Conflict, StudyNotFound
from hps.server.range_tests import StartedRangeTest, awaiting_range_tests, start_range_test
from hps.server.sampling import OptunaFailed, Sampling
from hps.server.store.database import Database
from hps.server.store.studies import StudyRepository
from hps.server.store.trials import TrialRepository
from hps.server.store.workers import WorkerRepository
from hps.server.strategies import trial_seed
from hps.server.trials import AskedTrial, fail_broken_study, lock_study, start_next_trial


@dataclass(frozen=True, slots=True)
class Claim:
    """Work for a worker, with everything it needs to run it: a trial, or a range test."""

    study_id: int
    trial: AskedTrial | None
    range_test: StartedRangeTest | None
    task: dict[str, Any]
    metric: str
    direction: str
    seed: int


def claim_trial(
    db: Database,
    sampling: Sampling,
    *,
    worker_id: str,
    device: str,
    tasks: Sequence[str],
    lease: timedelta,
    project: str | None = None,
    now: datetime | None = None,
    range_tests: bool = False,
) -> Claim | None:
    """A trial from the fairest study that has one, or None when there is nothing to do. With
    ``range_tests``, a study waiting for its lr range tests hands out one of those instead.

    The candidates are read first; with none, nothing is written (an idle claim must not take SQLite's
    write lock). Otherwise one transaction starts a trial in the first candidate that can still start one,
    and records the claim and the worker in the same commit."""
    moment = now or utcnow()
    candidates = _candidates(db, tasks, moment, project)
    while candidates:

        def work(session: Session, candidates: list[int] = candidates) -> Claim | None:
            return _claim_first(
                session, sampling, candidates, worker_id, device, tasks, moment, lease, range_tests
            )

        try:
            return db.run(work, write=True)
        except OptunaFailed as failure:
            # One broken study must not stall every worker of its project: end it, serve the next.
            fail_broken_study(db, sampling, failure, moment)
            candidates = [study_id for study_id in candidates if study_id != failure.study_id]
    return None


def _candidates(db: Database, tasks: Sequence[str], now: datetime, project: str | None) -> list[int]:
    def work(session: Session) -> list[int]:
        studies = StudyRepository(session).claimable(tasks, now, project)
        running = TrialRepository(session).progress([s.id for s in studies]) if studies else {}
        # Stable sort keeps "least recently served first" among studies with equal load.
        return [s.id for s in sorted(studies, key=lambda s: running[s.id].running)]

    return db.run(work, write=False) if tasks else []


def _claim_first(
    session: Session,
    sampling: Sampling,
    candidates: Sequence[int],
    worker_id: str,
    device: str,
    tasks: Sequence[str],
    now: datetime,
    lease: timedelta,
    range_tests: bool,
) -> Claim | None:
    for study_id in candidates:
        asked: AskedTrial | None = None
        started: StartedRangeTest | None = None
        try:
            study = lock_study(session, study_id)
            plan = sampling.plan(study)
            if range_tests and study.state == "running" and awaiting_range_tests(plan, study):
                started = start_range_test(session, plan, study, worker_id, now, lease)
                if started is None:
                    continue  # its tests are all running: nothing to do there until they end
            else:
                asked = start_next_trial(session, sampling, study, worker_id, now, lease)
        except (Conflict, StudyNotFound):
            continue  # it filled up, finished or vanished since the candidates were read
        StudyRepository(session).mark_claimed(study_id, now)
        WorkerRepository(session).seen(worker_id, device, tasks, now, claimed=True)
        task = plan.spec.task
        if task is None:
            raise AssertionError(f"study {study_id} was a candidate without a task")
        # A range test's seed is the trial seed of a number no trial has (trials count up from 0).
        number = asked.number if asked is not None else -1 - (started.test.id if started else 0)
        return Claim(
            study_id=study.id,
            trial=asked,
            range_test=started,
            task=task.model_dump(mode="json"),
            metric=study.metric,
            direction=study.direction,
            seed=trial_seed(study.id, number),
        )
    return None
