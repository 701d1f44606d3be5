"""Trials of a study: ask, report, heartbeat, complete, and reading them."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query

from service import trials
from service.api.auth import Principal, authenticate
from service.api.context import Hub, get_hub
from service.api.paging import DEFAULT_PAGE, MAX_PAGE, decode_cursor, encode_cursor
from service.api.render import ask_out, report_out, trial_out
from service.api.schemas import (
    AskIn,
    AskOut,
    ErrorOut,
    HeartbeatOut,
    LeaseOut,
    ReportOut,
    TrialOut,
    TrialPage,
)
from service.specs import Completion, Report

router = APIRouter(prefix="/v1/studies/{study_id}", tags=["trials"])

TrialState = Literal["running", "queued", "complete", "pruned", "diverged", "failed"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such study or trial."}
}
_LEASE_LOST: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {"model": ErrorOut, "description": "The trial is not running: its lease is gone."},
}


@router.post(
    "/trials",
    status_code=201,
    response_model=AskOut,
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorOut, "description": "Budget spent, or the study is not running."},
    },
)
def ask(
    study_id: int,
    body: AskIn | None = Body(default=None),
    hub: Hub = Depends(get_hub),
    _: Principal = Depends(authenticate),
) -> AskOut:
    """Sample a new trial, or hand out a queued retry, under a lease."""
    worker_id = body.worker_id if body else None
    asked = trials.ask_trial(hub.db, hub.sampling, study_id, lease=hub.lease, worker_id=worker_id)
    return ask_out(asked)


@router.get("/trials", response_model=TrialPage, responses=_NOT_FOUND)
def list_trials(
    study_id: int,
    state: TrialState | None = None,
    limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(default=None, max_length=200),
    hub: Hub = Depends(get_hub),
    _: Principal = Depends(authenticate),
) -> TrialPage:
    """Trials in number order, a page at a time."""
    views, last = trials.list_trials(
        hub.db, study_id, state=state, limit=limit, after_number=decode_cursor(cursor)
    )
    return TrialPage(items=[trial_out(v) for v in views], next_cursor=encode_cursor(last))


@router.get("/trials/{number}", response_model=TrialOut, responses=_NOT_FOUND)
def get_trial(
    study_id: int, number: int, hub: Hub = Depends(get_hub), _: Principal = Depends(authenticate)
) -> TrialOut:
    """One trial: params, state, value, reason, learning curve, attrs."""
    return trial_out(trials.get_trial(hub.db, study_id, number))


@router.get(
    "/best",
    response_model=TrialOut,
    responses={404: {"model": ErrorOut, "description": "No such study, or none complete yet."}},
)
def best(study_id: int, hub: Hub = Depends(get_hub), _: Principal = Depends(authenticate)) -> TrialOut:
    """The best complete trial."""
    return trial_out(trials.best_trial(hub.db, study_id))


@router.post("/trials/{number}/reports", response_model=ReportOut, responses=_LEASE_LOST)
def report(
    study_id: int,
    number: int,
    body: Report,
    hub: Hub = Depends(get_hub),
    _: Principal = Depends(authenticate),
) -> ReportOut:
    """Record an intermediate value; the answer says whether to prune or stop."""
    answer = trials.report_trial(hub.db, hub.sampling, study_id, number, body, lease=hub.lease)
    return report_out(answer)


@router.post("/trials/{number}/heartbeat", response_model=HeartbeatOut, responses=_LEASE_LOST)
def heartbeat(
    study_id: int, number: int, hub: Hub = Depends(get_hub), _: Principal = Depends(authenticate)
) -> HeartbeatOut:
    """Extend the trial's lease."""
    expires, stop = trials.heartbeat_trial(hub.db, study_id, number, lease=hub.lease)
    return HeartbeatOut(lease=LeaseOut(expires_at=expires), should_stop=stop)


@router.post(
    "/trials/{number}/complete",
    response_model=TrialOut,
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorOut, "description": "Lease lost, or a different completion."},
    },
)
def complete(
    study_id: int,
    number: int,
    body: Completion,
    hub: Hub = Depends(get_hub),
    _: Principal = Depends(authenticate),
) -> TrialOut:
    """Finish the trial; an identical replay is answered 200 and changes nothing."""
    return trial_out(trials.complete_trial(hub.db, hub.sampling, study_id, number, body))
