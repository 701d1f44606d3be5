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
from hps.server.store.studies import StudyRecord, StudyRepository
from hps.server.store.trials import TrialRepository
from hps.server.store.workers import WorkerRepository
from hps.server.strategies import trial_seed
from hps.server.trials import (
    AskedTrial,
    check_can_start,
    check_running,
    fail_broken_study,
    lock_study,
    start_trial,
)


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
    """A trial from the fairest study that has one, or None when there is nothing to do."""
    moment = now or utcnow()
    for study in _candidates(db, tasks, moment, project):

        def work(session: Session, study_id: int = study.id) -> Claim:
            return _claim_in(session, sampling, study_id, worker_id, moment, lease)

        try:
            claim = db.run(work, write=True)
        except (Conflict, StudyNotFound):
            continue  # it filled up, finished or vanished since the candidates were read
        except OptunaFailed as failure:
            # One broken study must not stall every worker of its project: end it, serve the next.
            fail_broken_study(db, sampling, failure, moment)
            continue
        _seen(db, worker_id, device, tasks, moment, claimed=True)
        return claim
    _seen(db, worker_id, device, tasks, moment, claimed=False)
    return None


def _candidates(db: Database, tasks: Sequence[str], now: datetime, project: str | None) -> list[StudyRecord]:
    def work(session: Session) -> list[StudyRecord]:
        studies = StudyRepository(session).claimable(tasks, now, project)
        running = TrialRepository(session).progress([s.id for s in studies]) if studies else {}
        # Stable sort keeps "least recently served first" among studies with equal load.
        return sorted(studies, key=lambda s: running[s.id].running)

    return db.run(work, write=False) if tasks else []


def _claim_in(
    session: Session, sampling: Sampling, study_id: int, worker_id: str, now: datetime, lease: timedelta
) -> Claim:
    study = lock_study(session, study_id)
    check_running(study, now)
    runtime = sampling.runtime(study.id, study.optuna_name, study.spec)
    progress = check_can_start(session, study, runtime, now)
    queued = TrialRepository(session).next_queued(study_id) if progress.queued else None
    asked = start_trial(session, runtime, study, progress, queued, worker_id, now, lease)
    StudyRepository(session).mark_claimed(study_id, now)
    task = study.spec["task"]
    return Claim(
        trial=asked,
        task=dict(task),
        metric=study.metric,
        direction=study.direction,
        seed=trial_seed(study.id, asked.number),
    )


def _seen(
    db: Database, worker_id: str, device: str, tasks: Sequence[str], now: datetime, *, claimed: bool
) -> None:
    def work(session: Session) -> None:
        WorkerRepository(session).seen(worker_id, device, tasks, now, claimed)

    db.run(work, write=True)
