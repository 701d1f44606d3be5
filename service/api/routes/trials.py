"""Trials of a study: ask, report, heartbeat, complete, and reading them."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Body, Depends, Query

from hps.server import trials
from hps.server.api.auth import can_read, can_run, can_write
from hps.server.api.context import Hub, get_hub
from hps.server.api.paging import CURSOR_PATTERN, DEFAULT_PAGE, MAX_PAGE, cursor_after, encode_cursor
from hps.server.api.params import StudyId, TrialNumber
from hps.server.api.render import ask_out, report_out, trial_out
from hps.server.api.responses import COMMON, STUDY_NOT_FOUND, TRIAL_NOT_FOUND, Responses, error
from hps.server.tokens import Principal
from hps.wire.trials import (
    AskIn,
    AskOut,
    Completion,
    HeartbeatOut,
    LeaseOut,
    Report,
    ReportOut,
    TrialOut,
    TrialPage,
)

router = APIRouter(prefix="/v1/studies/{study_id}", tags=["trials"], responses=COMMON)

TrialState = Literal["running", "queued", "complete", "pruned", "diverged", "failed"]
_LEASE_LOST: Responses = {**TRIAL_NOT_FOUND, 409: error("The trial is not running: its lease is gone.")}


@router.post(
    "/trials",
    status_code=201,
    response_model=AskOut,
    responses={**STUDY_NOT_FOUND, 409: error("Budget spent, or the study is not running.")},
)
def ask(
    study_id: StudyId,
    body: AskIn | None = Body(default=None),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_write),
) -> AskOut:
    """Sample a new trial, or hand out a queued one, under a lease."""
    worker_id = body.worker_id if body else None
    with hub.metrics.time_ask():
        asked = trials.ask_trial(
            hub.db, hub.sampling, study_id, lease=hub.lease, worker_id=worker_id, project=who.project
        )
    return ask_out(asked)


@router.get("/trials", response_model=TrialPage, responses=STUDY_NOT_FOUND)
def list_trials(
    study_id: StudyId,
    state: TrialState | None = None,
    limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(default=None, pattern=CURSOR_PATTERN),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_read),
) -> TrialPage:
    """Trials in number order, a page at a time."""
    views, last = trials.list_trials(
        hub.db,
        hub.sampling,
        study_id,
        state=state,
        limit=limit,
        after_number=cursor_after(cursor),
        project=who.project,
    )
    return TrialPage(items=[trial_out(v) for v in views], next_cursor=encode_cursor(last))


@router.get("/trials/{number}", response_model=TrialOut, responses=TRIAL_NOT_FOUND)
def get_trial(
    study_id: StudyId, number: TrialNumber, hub: Hub = Depends(get_hub), who: Principal = Depends(can_read)
) -> TrialOut:
    """One trial: params, state, value, reason, learning curve, attrs."""
    return trial_out(trials.get_trial(hub.db, hub.sampling, study_id, number, project=who.project))


@router.get("/best", response_model=TrialOut, responses={404: error("No such study, or none complete yet.")})
def best(study_id: StudyId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_read)) -> TrialOut:
    """The best complete trial."""
    return trial_out(trials.best_trial(hub.db, hub.sampling, study_id, project=who.project))


@router.post("/trials/{number}/reports", response_model=ReportOut, responses=_LEASE_LOST)
def report(
    study_id: StudyId,
    number: TrialNumber,
    body: Report,
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_run),
) -> ReportOut:
    """Record an intermediate value; the answer says whether to prune or stop."""
    answer = trials.report_trial(
        hub.db, hub.sampling, study_id, number, body, lease=hub.lease, project=who.project
    )
    return report_out(answer)


@router.post("/trials/{number}/heartbeat", response_model=HeartbeatOut, responses=_LEASE_LOST)
def heartbeat(
    study_id: StudyId, number: TrialNumber, hub: Hub = Depends(get_hub), who: Principal = Depends(can_run)
) -> HeartbeatOut:
    """Extend the trial's lease."""
    expires, stop = trials.heartbeat_trial(hub.db, study_id, number, lease=hub.lease, project=who.project)
    return HeartbeatOut(lease=LeaseOut(expires_at=expires), should_stop=stop)


@router.post(
    "/trials/{number}/complete",
    response_model=TrialOut,
    responses={**TRIAL_NOT_FOUND, 409: error("Lease lost, or a different completion.")},
)
def complete(
    study_id: StudyId,
    number: TrialNumber,
    body: Completion,
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_run),
) -> TrialOut:
    """Finish the trial; an identical replay is answered 200 and changes nothing."""
    finished = trials.complete_trial(
        hub.db,
        hub.sampling,
        study_id,
        number,
        body,
        project=who.project,
        price_per_gpu_hour=hub.settings.price_per_gpu_hour,
    )
    return trial_out(finished)
