"""The reaper: fails trials whose lease expired and re-queues their params; ends studies past their deadline.

Optuna's own heartbeat only works inside ``study.optimize``; hps's workers and external clients hold
leases instead, and this runs inside every API process as a background task. Several replicas may reap at
once: each expired trial is re-checked under the study lock and its own row lock, so it is reaped once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hps.server.clock import utcnow
from hps.server.errors import DomainError
from hps.server.optuna_storage import reap_stale_storage_trials
from hps.server.queue import drop_queued
from hps.server.range_tests import reap_expired_range_tests
from hps.server.sampling import OptunaFailed, Sampling
from hps.server.store.database import Database
from hps.server.store.studies import StudyRepository
from hps.server.store.trials import TrialRepository
from hps.server.trials import fail_broken_study, finish_trial, lock_study, settle_study
from hps.wire.reasons import ReasonCode, reason
from hps.wire.trials import Completion

log = logging.getLogger(__name__)

_BATCH = 100


def reap_expired(db: Database, sampling: Sampling, now: datetime | None = None) -> int:
    """Fail every running trial whose lease ran out (re-queueing its params if retries are left);
    returns how many were reaped."""
    moment = now or utcnow()
    candidates = db.run(lambda session: TrialRepository(session).expired(moment, _BATCH), write=False)
    reaped = 0
    for candidate in candidates:

        def work(
            session: Session, study_id: int = candidate.study_id, number: int = candidate.number
        ) -> bool:
            return _reap_one(session, sampling, study_id, number, moment)

        try:
            reaped += db.run(work, write=True)
        except DomainError as error:  # e.g. the study was deleted meanwhile
            log.info("not reaping trial %s/%s: %s", candidate.study_id, candidate.number, error)
        except OptunaFailed as failure:
            fail_broken_study(db, sampling, failure, moment)
    return reaped


def _reap_one(session: Session, sampling: Sampling, study_id: int, number: int, now: datetime) -> bool:
    study = lock_study(session, study_id)
    trial = TrialRepository(session).get(study_id, number, lock=True)
    if trial is None or trial.state != "running":
        return False  # another replica, or the worker itself, got there first
    if trial.lease_expires_at is not None and trial.lease_expires_at >= now:
        return False  # extended meanwhile
    # The plan, not the sampler: a study whose sampler cannot be built still has its leases reaped.
    plan = sampling.plan(study)
    since = trial.lease_expires_at.isoformat() if trial.lease_expires_at else "never leased"
    completion = Completion(
        state="failed", reason=reason(ReasonCode.LEASE_EXPIRED, f"no heartbeat; lease ended {since}")
    )
    finish_trial(session, plan, trial, completion, now, by_service=True)
    if settle_study(session, study, plan, now):
        sampling.forget(study.id)
    log.warning("reaped trial %s of study %s (worker %s)", number, study_id, trial.worker_id)
    return True


def settle_deadlines(db: Database, sampling: Sampling, now: datetime | None = None) -> int:
    """End running studies past their ``timeout_s``: queued trials are dropped; the study completes
    once nothing runs. Returns how many studies were looked at."""
    moment = now or utcnow()
    overdue = db.run(lambda session: StudyRepository(session).past_deadline(moment), write=False)
    for study_id in overdue:

        def work(session: Session, study_id: int = study_id) -> None:
            study = lock_study(session, study_id)
            if study.state != "running":
                return
            drop_queued(session, study_id, reason="budget.timeout_s reached", now=moment)
            if settle_study(session, study, sampling.plan(study), moment):
                sampling.forget(study.id)

        db.run(work, write=True)
    return len(overdue)


async def run_reaper(
    db: Database,
    sampling: Sampling,
    interval_s: float,
    stop: asyncio.Event,
    on_reaped: Callable[[int], None] | None = None,
) -> None:
    """Reap every ``interval_s`` seconds until ``stop`` is set; failures are logged, never fatal.
    ``on_reaped`` hears how many trials each round reaped (the metrics' counter)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
            return
        except TimeoutError:
            pass
        try:
            reaped = await run_in_threadpool(reap_expired, db, sampling)
            reaped += await run_in_threadpool(reap_stale_storage_trials, db)
            await run_in_threadpool(reap_expired_range_tests, db, sampling)
            if on_reaped is not None:
                on_reaped(reaped)
            await run_in_threadpool(settle_deadlines, db, sampling)
        except DomainError as error:  # the database is away: try again next round
            log.warning("reaper skipped a round: %s", error.detail)
        except Exception:
            log.exception("reaper round failed")
