"""The queue of trials waiting to run: a search space's starts, warm-start configurations and retries.

A queued trial is an Optuna ``WAITING`` trial with ``fixed_params``, exactly what ``study.enqueue_trial``
makes, plus an ``hps_trials`` row in state ``queued``. Asks hand queued trials out oldest first, before
sampling anything new. Callers hold the study lock (trial numbers count the earlier trials).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from optuna.trial import TrialState
from sqlalchemy.orm import Session

from hps.search_spaces import CompiledSpace, ParamValue
from hps.server.store.optuna_tables import OptunaTables
from hps.server.store.trials import TrialRecord, TrialRepository


def enqueue_trial(
    session: Session,
    space: CompiledSpace,
    study_id: int,
    params: Mapping[str, ParamValue],
    now: datetime,
    *,
    attempt: int = 1,
    retry_of: int | None = None,
    confirms: int | None = None,
) -> int:
    """Queue a trial with these params (which must fit ``space``); returns its number. ``confirms``: the
    search trial a confirmation run re-runs."""
    trials = TrialRepository(session)
    number = trials.progress([study_id])[study_id].attempts
    fixed, _ = space.encode(params)
    optuna_trial_id = OptunaTables(session).insert_waiting_trial(study_id, number, fixed)
    trials.add(
        TrialRecord(
            id=0,
            study_id=study_id,
            number=number,
            optuna_trial_id=optuna_trial_id,
            state="queued",
            reason=None,
            value=None,
            params=dict(params),
            attrs={},
            attempt=attempt,
            retry_of=retry_of,
            retried_by=None,
            worker_id=None,
            lease_expires_at=None,
            completion=None,
            created_at=now,
            started_at=None,
            finished_at=None,
            confirms=confirms,
        )
    )
    return number


def drop_queued(session: Session, study_id: int, *, reason: str, now: datetime) -> None:
    """Fail every queued trial of a study (in Optuna too), e.g. when it is cancelled."""
    trials = TrialRepository(session)
    optuna_tables = OptunaTables(session)
    for queued in trials.queued(study_id):
        optuna_tables.finish_trial(queued.optuna_trial_id, TrialState.FAIL, None, {}, now)
        trials.update(queued.id, state="failed", reason=reason, finished_at=now)
