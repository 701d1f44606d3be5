"""Claiming work for a worker: pick a study fairly, then ask a trial in it.

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
from hps.server.sampling import OptunaFailed, Sampling
from hps.server.store.database import Database
from hps.server.store.studies import StudyRepository
from hps.server.store.trials import TrialRepository
from hps.server.store.workers import WorkerRepository
from hps.server.strategies import trial_seed
from hps.server.trials import AskedTrial, fail_broken_study, lock_study, start_next_trial


@dataclass(frozen=True, slots=True)
class Claim:
    """A trial for a worker, with everything it needs to run it."""

    trial: AskedTrial
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
) -> Claim | None:
    """A trial from the fairest study that has one, or None when there is nothing to do.

    The candidates are read first; with none, nothing is written (an idle claim must not take SQLite's
    write lock). Otherwise one transaction starts a trial in the first candidate that can still start one,
    and records the claim and the worker in the same commit."""
    moment = now or utcnow()
    candidates = _candidates(db, tasks, moment, project)
    while candidates:

        def work(session: Session, candidates: list[int] = candidates) -> Claim | None:
            return _claim_first(session, sampling, candidates, worker_id, device, tasks, moment, lease)

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
) -> Claim | None:
    for study_id in candidates:
        try:
            study = lock_study(session, study_id)
            asked = start_next_trial(session, sampling, study, worker_id, now, lease)
        except (Conflict, StudyNotFound):
            continue  # it filled up, finished or vanished since the candidates were read
        StudyRepository(session).mark_claimed(study_id, now)
        WorkerRepository(session).seen(worker_id, device, tasks, now, claimed=True)
        task = sampling.plan(study).spec.task
        if task is None:
            raise AssertionError(f"study {study_id} was a candidate without a task")
        return Claim(
            trial=asked,
            task=task.model_dump(mode="json"),
            metric=study.metric,
            direction=study.direction,
            seed=trial_seed(study.id, asked.number),
        )
    return None
