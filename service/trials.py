"""Trial use cases: ask, report, heartbeat, complete, and reading trials.

One path for workers and external clients. Every write happens in one transaction that holds the study
lock where trial numbers or the budget are concerned, so ten clients asking at once never get trial n+1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from optuna.trial import TrialState
from sqlalchemy.orm import Session

from hps.search_spaces import ParamValue
from hps.server.access import require_study
from hps.server.clock import utcnow
from hps.server.confirm import enqueue_confirmations
from hps.server.costs import cost_columns, objective_values
from hps.server.errors import (
    BudgetExhausted,
    CompletionConflict,
    LeaseLost,
    NotFound,
    ParallelLimitReached,
    RangeTestPending,
    StudyBroken,
    StudyNotRunning,
    StudyOutOfTime,
    TrialNotFound,
)
from hps.server.optuna_storage import storage_best, storage_trial, storage_trials
from hps.server.plans import StudyPlan
from hps.server.queue import drop_queued, enqueue_trial
from hps.server.sampling import OptunaFailed, Sampling, StudyRuntime
from hps.server.store.database import Database
from hps.server.store.draft import NEW_TRIAL_ID, Draft
from hps.server.store.optuna_storage import is_storage_study
from hps.server.store.optuna_tables import OptunaTables
from hps.server.store.studies import StudyRecord, StudyRepository
from hps.server.store.trials import Progress, TrialRecord, TrialRepository
from hps.server.views import TrialView, trial_views
from hps.wire.reasons import RETRYABLE, ReasonCode, reason_code
from hps.wire.trials import Completion, Report

log = logging.getLogger(__name__)


_OPTUNA_STATE = {
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    # Optuna's samplers skip FAIL trials. A diverged configuration is a real, bad result that TPE
    # must learn to avoid, so Optuna sees it as PRUNED at its last finite value.
    "diverged": TrialState.PRUNED,
    "failed": TrialState.FAIL,
}


@dataclass(frozen=True, slots=True)
class AskedTrial:
    """A trial handed out under a lease."""

    study_id: int
    number: int
    params: dict[str, ParamValue]
    attempt: int
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class ReportAnswer:
    """What the reporter should do next."""

    should_prune: bool
    should_stop: bool


def ask_trial(
    db: Database,
    sampling: Sampling,
    study_id: int,
    *,
    lease: timedelta,
    worker_id: str | None = None,
    project: str | None = None,
    now: datetime | None = None,
) -> AskedTrial:
    """Hand out the oldest queued retry, or sample a new trial; within the budget, exactly."""
    moment = now or utcnow()

    def work(session: Session) -> AskedTrial:
        return start_next_trial(
            session, sampling, lock_study(session, study_id, project), worker_id, moment, lease
        )

    try:
        return db.run(work, write=True)
    except OptunaFailed as failure:
        fail_broken_study(db, sampling, failure, moment)
        raise StudyBroken(study_id, failure.reason) from None


def fail_broken_study(db: Database, sampling: Sampling, failure: OptunaFailed, now: datetime) -> None:
    """End a study Optuna cannot go on with as ``failed``, with the reason, so that it stops failing
    every ask and every claim; its queued trials are dropped, its running ones told to stop."""
    log.error("study %s failed: %s", failure.study_id, failure.reason)

    def work(session: Session) -> None:
        study = StudyRepository(session).lock(failure.study_id)
        if study is None or study.state not in ("running", "paused"):
            return
        drop_queued(session, study.id, reason="study failed", now=now)
        StudyRepository(session).set_state(study.id, "failed", reason=failure.reason, now=now)

    db.run(work, write=True)
    sampling.forget(failure.study_id)


def lock_study(session: Session, study_id: int, project: str | None = None) -> StudyRecord:
    """Lock the study (visible to ``project``) for this unit of work (see ``StudyRepository.lock``)."""
    return require_study(session, study_id, project, lock=True)


def check_running(study: StudyRecord, now: datetime) -> None:
    """Raise unless the study hands out trials now (checked before its Optuna objects are built)."""
    if study.state != "running":
        raise StudyNotRunning(study.id, study.state)
    if study.deadline_at is not None and now >= study.deadline_at:
        raise StudyOutOfTime(study.id)


def start_next_trial(
    session: Session,
    sampling: Sampling,
    study: StudyRecord,
    worker_id: str | None,
    now: datetime,
    lease: timedelta,
) -> AskedTrial:
    """The one way a trial starts, for an ask and for a worker's claim alike: in the locked study, if it
    may start one more now, hand out the oldest queued trial or sample a new one, under a lease."""
    check_running(study, now)
    plan = sampling.plan(study)
    progress = check_can_start(session, study, plan, now)
    queued = TrialRepository(session).next_queued(study.id) if progress.queued else None
    return start_trial(session, sampling.runtime(study), study, progress, queued, worker_id, now, lease)


def check_can_start(session: Session, study: StudyRecord, plan: StudyPlan, now: datetime) -> Progress:
    """Raise unless the locked study may start one more trial now; return its progress."""
    check_running(study, now)
    if plan.spec.lr_range_test is not None and study.lr_ranges is None:
        raise RangeTestPending(study.id)
    budget = plan.spec.budget
    progress = TrialRepository(session).progress([study.id])[study.id]
    if budget.max_parallel is not None and progress.running >= budget.max_parallel:
        raise ParallelLimitReached(study.id, budget.max_parallel)
    if progress.queued == 0 and progress.counted >= plan.spec.n_trials:
        raise BudgetExhausted(study.id, plan.spec.n_trials)
    return progress


def start_trial(
    session: Session,
    runtime: StudyRuntime,
    study: StudyRecord,
    progress: Progress,
    queued: TrialRecord | None,
    worker_id: str | None,
    now: datetime,
    lease: timedelta,
) -> AskedTrial:
    """Sample (or restart a queued attempt) and write the trial with its lease, under the lock."""
    optuna_tables = OptunaTables(session)
    trials = TrialRepository(session)
    if queued is not None:
        fixed, _ = runtime.space.encode(queued.params)
        draft = Draft(
            study_id=study.id,
            number=queued.number,
            trial_id=queued.optuna_trial_id,
            datetime_start=now,
            system_attrs={"fixed_params": fixed},
        )
    else:
        draft = Draft(study.id, progress.attempts, NEW_TRIAL_ID, now)
    sampled, params = runtime.sample(draft)
    optuna_trial_id = optuna_tables.write_draft(sampled)
    expires = now + lease
    if queued is not None:
        trials.update(
            queued.id,
            state="running",
            worker_id=worker_id,
            lease_expires_at=expires,
            started_at=now,
        )
        return AskedTrial(study.id, queued.number, params, queued.attempt, expires)
    trials.add(
        TrialRecord(
            id=0,
            study_id=study.id,
            number=sampled.number,
            optuna_trial_id=optuna_trial_id,
            state="running",
            reason=None,
            value=None,
            params=params,
            attrs={},
            attempt=1,
            retry_of=None,
            retried_by=None,
            worker_id=worker_id,
            lease_expires_at=expires,
            completion=None,
            created_at=now,
            started_at=now,
            finished_at=None,
        )
    )
    return AskedTrial(study.id, sampled.number, params, 1, expires)


def report_trial(
    db: Database,
    sampling: Sampling,
    study_id: int,
    number: int,
    report: Report,
    *,
    lease: timedelta,
    project: str | None = None,
    now: datetime | None = None,
) -> ReportAnswer:
    """Record a learning-curve point, extend the lease, and ask the study's pruner; what the pruner
    records on the trial is written in the same transaction."""
    moment = now or utcnow()

    def work(session: Session) -> ReportAnswer:
        study, trial = _running_trial(session, study_id, number, project)
        optuna_tables = OptunaTables(session)
        optuna_tables.set_intermediate_value(trial.optuna_trial_id, report.step, report.value)
        TrialRepository(session).update(trial.id, lease_expires_at=moment + lease)
        if must_stop(study, moment):
            return ReportAnswer(should_prune=False, should_stop=True)
        if not math.isfinite(report.value):
            return ReportAnswer(should_prune=True, should_stop=False)
        if trial.confirms is not None:
            # A confirmation run measures a configuration already chosen: it runs to its end.
            return ReportAnswer(should_prune=False, should_stop=False)
        if sampling.plan(study).spec.cost_objective is not None:
            # A cost-aware study has no pruner (Optuna's pruners judge one objective).
            return ReportAnswer(should_prune=False, should_stop=False)
        runtime = sampling.runtime(study)
        draft = runtime.draft_of(number, study.id)
        if draft is None:
            return ReportAnswer(should_prune=False, should_stop=False)
        draft.intermediate_values[report.step] = report.value
        prune, pruned = runtime.prune(draft)
        recorded = {key: pruned.system_attrs[key] for key in pruned.new_system_attr_keys}
        optuna_tables.set_trial_system_attrs(trial.optuna_trial_id, recorded)
        return ReportAnswer(should_prune=prune, should_stop=False)

    try:
        return db.run(work, write=True)
    except OptunaFailed as failure:
        fail_broken_study(db, sampling, failure, moment)
        # The study has stopped, so the report is recorded without asking the pruner, and answered
        # with should_stop.
        return db.run(work, write=True)


def heartbeat_trial(
    db: Database,
    study_id: int,
    number: int,
    *,
    lease: timedelta,
    project: str | None = None,
    now: datetime | None = None,
) -> tuple[datetime, bool]:
    """Extend a running trial's lease; returns the new expiry and whether the trial should stop."""
    moment = now or utcnow()

    def work(session: Session) -> tuple[datetime, bool]:
        study, trial = _running_trial(session, study_id, number, project)
        expires = moment + lease
        TrialRepository(session).update(trial.id, lease_expires_at=expires)
        return expires, must_stop(study, moment)

    return db.run(work, write=True)


def complete_trial(
    db: Database,
    sampling: Sampling,
    study_id: int,
    number: int,
    completion: Completion,
    *,
    project: str | None = None,
    now: datetime | None = None,
    price_per_gpu_hour: float | None = None,
) -> TrialView:
    """Finish a running trial. Replaying the same completion is harmless; a different one is a
    conflict, and so is completing a trial whose lease was reaped (its retry's result wins).
    ``price_per_gpu_hour`` (the operator's, now) turns the completion's GPU-seconds into money."""
    moment = now or utcnow()
    sent = completion_record(completion)

    def work(session: Session) -> tuple[TrialView, bool]:
        study = lock_study(session, study_id, project)
        trials = TrialRepository(session)
        trial = trials.get(study_id, number, lock=True)
        if trial is None:
            raise TrialNotFound(study_id, number)
        if trial.state != "running":
            if trial.completion == sent:
                return trial_views(session, [trial])[0], False
            if trial.completion is None:
                raise LeaseLost(study_id, number, trial.state)
            raise CompletionConflict(study_id, number, trial.state)
        plan = sampling.plan(study)
        finished = finish_trial(
            session, plan, trial, completion, moment, price_per_gpu_hour=price_per_gpu_hour
        )
        ended = settle_study(session, study, plan, moment)
        return trial_views(session, [finished])[0], ended

    try:
        view, ended = db.run(work, write=True)
    except OptunaFailed as failure:
        fail_broken_study(db, sampling, failure, moment)
        raise StudyBroken(study_id, failure.reason) from None
    if ended:
        sampling.forget(study_id)
    return view


def finish_trial(
    session: Session,
    plan: StudyPlan,
    trial: TrialRecord,
    completion: Completion,
    now: datetime,
    *,
    by_service: bool = False,
    price_per_gpu_hour: float | None = None,
) -> TrialRecord:
    """Write the outcome to Optuna and hps, queue a retry for an infrastructure failure, and return
    the finished record.
    ``by_service`` marks outcomes the service decided (a reaped lease): they keep no completion, so
    that the late worker's own completion is answered "lease lost". A cost-aware study's Optuna trial gets
    two values, the metric and the cost (:mod:`hps.server.costs`); hps's ``value`` is the metric alone."""
    optuna_tables = OptunaTables(session)
    trials = TrialRepository(session)
    state = _OPTUNA_STATE[completion.state]
    costs = cost_columns(completion.cost, price_per_gpu_hour)
    value: float | list[float] | None = completion.value
    if plan.spec.cost_objective is not None:
        value = objective_values(plan.spec, completion, costs, trial.number)
    elif completion.state in ("pruned", "diverged"):
        value = _last_finite(optuna_tables, trial.optuna_trial_id)
    optuna_tables.finish_trial(trial.optuna_trial_id, state, value, optuna_user_attrs(completion), now)
    retry_number = None
    if completion.state == "failed" and should_retry(plan, trial.attempt, completion.reason):
        # A trial handed back by a stopping worker was not tried out: its retry keeps the attempt number.
        # A worker asked to stop (SIGTERM, preemption) hands its trial back: never a failure.
        handed_back = reason_code(completion.reason) == ReasonCode.INTERRUPTED
        retry_number = enqueue_trial(
            session,
            plan.space,
            trial.study_id,
            trial.params,
            now,
            attempt=trial.attempt if handed_back else trial.attempt + 1,
            retry_of=trial.number,
            confirms=trial.confirms,
        )
    changes: dict[str, Any] = {
        "state": completion.state,
        "value": completion.value,
        "reason": completion.reason,
        "attrs": dict(completion.attrs),
        "completion": None if by_service else completion_record(completion),
        "lease_expires_at": None,
        "finished_at": now,
        "retried_by": retry_number,
        **costs,
    }
    trials.update(trial.id, **changes)
    return replace(trial, **changes)


def completion_record(completion: Completion) -> dict[str, Any]:
    """A completion as stored to recognise its replay; without ``cost`` when it sent none, as completions
    stored before costs existed are (so their replay still matches)."""
    return completion.model_dump(mode="json", exclude={"cost"} if completion.cost is None else None)


def optuna_user_attrs(completion: Completion) -> dict[str, Any]:
    """What Optuna's user attrs show of a trial's outcome: ``hps_state`` (so a diverged trial, PRUNED to
    Optuna, can be found by it), the reason, and the scalar attrs. Lists and mappings (a learning curve)
    stay in hps's trial only: the dashboard shows each user attr on one unbroken line, and the curve of the
    study's metric is already Optuna's intermediate values."""
    shown = {key: value for key, value in completion.attrs.items() if not isinstance(value, list | dict)}
    shown["hps_state"] = completion.state
    if completion.reason is not None:
        shown["hps_reason"] = completion.reason
    return shown


def settle_study(session: Session, study: StudyRecord, plan: StudyPlan, now: datetime) -> bool:
    """Move a running study to ``failed`` or ``completed`` once its trials say so; True if it ended."""
    if study.state != "running":
        return False
    budget = plan.spec.budget
    progress = TrialRepository(session).progress([study.id])[study.id]
    studies = StudyRepository(session)
    if progress.failed >= budget.max_failed:
        drop_queued(session, study.id, reason="study failed", now=now)
        reason = f"{progress.failed} trials failed (budget.max_failed is {budget.max_failed})"
        studies.set_state(study.id, "failed", reason=reason, now=now)
        return True
    if progress.running == 0 and progress.queued == 0:
        if progress.finished >= plan.spec.n_trials:
            if enqueue_confirmations(session, plan, study, now):
                return False
            studies.set_state(study.id, "completed", reason="budget spent", now=now)
            return True
        if study.deadline_at is not None and now >= study.deadline_at:
            studies.set_state(study.id, "completed", reason="budget.timeout_s reached", now=now)
            return True
    return False


def list_trials(
    db: Database,
    sampling: Sampling,
    study_id: int,
    *,
    state: str | None,
    limit: int,
    after_number: int | None,
    project: str | None = None,
) -> tuple[list[TrialView], int | None]:
    """A page of trials in number order, and the cursor of the next page (None at the end). A study an
    Optuna client made has its trials in Optuna's rows only (:mod:`hps.server.optuna_storage`)."""

    def work(session: Session) -> tuple[StudyRecord, list[TrialView], int | None]:
        study = require_study(session, study_id, project)
        if is_storage_study(study):
            return study, [], None
        records = TrialRepository(session).page(
            study_id, state=state, limit=limit + 1, after_number=after_number
        )
        more = len(records) > limit
        records = records[:limit]
        return study, trial_views(session, records), records[-1].number if more else None

    study, views, last = db.run(work, write=False)
    if not is_storage_study(study):
        return views, last
    after = -1 if after_number is None else after_number
    shown = storage_trials(sampling.storage, study_id, state)
    following = [view for view in shown if view.record.number > after]
    page = following[:limit]
    return page, page[-1].record.number if len(following) > limit else None


def get_trial(
    db: Database, sampling: Sampling, study_id: int, number: int, *, project: str | None = None
) -> TrialView:
    """One trial with its learning curve."""

    def work(session: Session) -> TrialView | None:
        if is_storage_study(require_study(session, study_id, project)):
            return None  # read from Optuna's rows below
        trial = TrialRepository(session).get(study_id, number)
        if trial is None:
            raise TrialNotFound(study_id, number)
        return trial_views(session, [trial])[0]

    view = db.run(work, write=False)
    return storage_trial(sampling.storage, study_id, number) if view is None else view


def best_trial(db: Database, sampling: Sampling, study_id: int, *, project: str | None = None) -> TrialView:
    """The best complete trial, or ``NotFound`` until one completes. A study an Optuna client made ranks
    by its first objective (:func:`hps.server.optuna_storage.storage_best`)."""

    def work(session: Session) -> tuple[StudyRecord, TrialView | None]:
        study = require_study(session, study_id, project)
        if is_storage_study(study):
            return study, None
        best = TrialRepository(session).best([study_id], {study_id: study.direction})
        return study, trial_views(session, [best[study_id]])[0] if study_id in best else None

    study, view = db.run(work, write=False)
    if is_storage_study(study):
        view = storage_best(sampling.storage, study_id)
    if view is None:
        raise NotFound(f"study {study_id} has no complete trial yet", field="study_id")
    return view


def _running_trial(
    session: Session, study_id: int, number: int, project: str | None
) -> tuple[StudyRecord, TrialRecord]:
    study = require_study(session, study_id, project)
    trial = TrialRepository(session).get(study_id, number, lock=True)
    if trial is None:
        raise TrialNotFound(study_id, number)
    if trial.state != "running":
        raise LeaseLost(study_id, number, trial.state)
    return study, trial


def must_stop(study: StudyRecord, now: datetime) -> bool:
    """Whether running work of the study should stop: it no longer runs, or ran past its timeout."""
    out_of_time = study.deadline_at is not None and now >= study.deadline_at
    return study.state != "running" or out_of_time


def _last_finite(optuna_tables: OptunaTables, optuna_trial_id: int) -> float | None:
    curve = optuna_tables.intermediate_values([optuna_trial_id])[optuna_trial_id]
    finite = [value for _, value in curve if math.isfinite(value)]
    return finite[-1] if finite else None


def should_retry(plan: StudyPlan, attempt: int, failure: str | None) -> bool:
    """Whether work that failed with reason ``failure`` on ``attempt`` is queued again: always when it was
    handed back (interrupted), for an infrastructure failure while ``budget.max_retries`` allows."""
    code = reason_code(failure)
    if code == ReasonCode.INTERRUPTED:
        return True
    return code in RETRYABLE and attempt <= plan.spec.budget.max_retries
