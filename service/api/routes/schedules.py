"""``/v1/schedules``: cron schedules that re-tune, their runs and their incumbent (docs/schedules.md)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Response

from hps.server import studies
from hps.server.api.auth import can_read, can_write
from hps.server.api.context import Hub, get_hub
from hps.server.api.paging import CURSOR_PATTERN, DEFAULT_PAGE, MAX_PAGE, cursor_before, encode_cursor
from hps.server.api.params import ScheduleId
from hps.server.api.render import run_out, schedule_out, study_out
from hps.server.api.responses import COMMON, SCHEDULE_NOT_FOUND, error
from hps.server.clock import utcnow
from hps.server.errors import Forbidden
from hps.server.schedules import use_cases as schedules
from hps.server.tokens import PROJECT_PATTERN, Principal
from hps.wire.schedules import (
    ScheduleOut,
    SchedulePage,
    SchedulePatch,
    ScheduleRunPage,
    ScheduleRunStarted,
    ScheduleSpec,
)

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=COMMON)


def _now(hub: Hub) -> datetime:
    # HPS_SCHEDULER_FIXED_NOW (tests only) lets restart tests put the whole server at a chosen moment.
    return hub.settings.scheduler_fixed_now or utcnow()


@router.post("", status_code=201, response_model=ScheduleOut, responses={409: error("The name is taken.")})
def create_schedule(
    spec: ScheduleSpec,
    project: str | None = Query(
        default=None, pattern=PROJECT_PATTERN, description="Admins only: the project to create it in."
    ),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_write),
) -> ScheduleOut:
    """Create a schedule in the token's project; its first run is the cron's first slot from now."""
    if who.project is not None and project not in (None, who.project):
        raise Forbidden(f"this token creates schedules in project {who.project!r} only")
    home = who.project or project or "default"
    return schedule_out(schedules.create_schedule(hub.db, spec, hub.registry, project=home, now=_now(hub)))


@router.get("", response_model=SchedulePage)
def list_schedules(
    limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(default=None, pattern=CURSOR_PATTERN),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_read),
) -> SchedulePage:
    """The token's project's schedules, newest first, a page at a time."""
    records, last = schedules.list_schedules(
        hub.db, limit=limit, before_id=cursor_before(cursor), project=who.project
    )
    return SchedulePage(items=[schedule_out(r) for r in records], next_cursor=encode_cursor(last))


@router.get("/{schedule_id}", response_model=ScheduleOut, responses=SCHEDULE_NOT_FOUND)
def get_schedule(
    schedule_id: ScheduleId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_read)
) -> ScheduleOut:
    """One schedule with its incumbent (the best params so far) and next run."""
    return schedule_out(schedules.get_schedule(hub.db, schedule_id, project=who.project))


@router.patch("/{schedule_id}", response_model=ScheduleOut, responses=SCHEDULE_NOT_FOUND)
def update_schedule(
    schedule_id: ScheduleId,
    patch: SchedulePatch,
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_write),
) -> ScheduleOut:
    """Change the fields sent; a new cron or time zone moves the next run."""
    record = schedules.update_schedule(
        hub.db, schedule_id, patch, hub.registry, project=who.project, now=_now(hub)
    )
    return schedule_out(record)


@router.delete("/{schedule_id}", status_code=204, response_class=Response, responses=SCHEDULE_NOT_FOUND)
def delete_schedule(
    schedule_id: ScheduleId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_write)
) -> Response:
    """Delete the schedule and its run history; the studies its runs created stay."""
    schedules.delete_schedule(hub.db, schedule_id, project=who.project)
    return Response(status_code=204)


@router.post("/{schedule_id}/pause", response_model=ScheduleOut, responses=SCHEDULE_NOT_FOUND)
def pause_schedule(
    schedule_id: ScheduleId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_write)
) -> ScheduleOut:
    """Stop firing slots until resumed."""
    return schedule_out(schedules.set_paused(hub.db, schedule_id, True, project=who.project, now=_now(hub)))


@router.post("/{schedule_id}/resume", response_model=ScheduleOut, responses=SCHEDULE_NOT_FOUND)
def resume_schedule(
    schedule_id: ScheduleId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_write)
) -> ScheduleOut:
    """Fire again from the next slot; slots that passed while paused are not run."""
    return schedule_out(schedules.set_paused(hub.db, schedule_id, False, project=who.project, now=_now(hub)))


@router.post(
    "/{schedule_id}/run",
    status_code=201,
    response_model=ScheduleRunStarted,
    responses={**SCHEDULE_NOT_FOUND, 409: error("The previous run still runs and concurrency is skip.")},
)
def run_schedule(
    schedule_id: ScheduleId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_write)
) -> ScheduleRunStarted:
    """Start a run now, outside the cron; the next scheduled run stays as it was."""
    run = schedules.run_schedule_now(hub.db, hub.registry, schedule_id, project=who.project, now=_now(hub))
    study = studies.get_study(hub.db, run.study_id, project=who.project) if run.study_id is not None else None
    return ScheduleRunStarted(run=run_out(run), study=study_out(study) if study is not None else None)


@router.get("/{schedule_id}/runs", response_model=ScheduleRunPage, responses=SCHEDULE_NOT_FOUND)
def list_runs(
    schedule_id: ScheduleId,
    limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(default=None, pattern=CURSOR_PATTERN),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_read),
) -> ScheduleRunPage:
    """The schedule's runs, newest first: started, skipped or failed, with promotion decisions."""
    runs, last = schedules.list_runs(
        hub.db, schedule_id, limit=limit, before_id=cursor_before(cursor), project=who.project
    )
    return ScheduleRunPage(items=[run_out(r) for r in runs], next_cursor=encode_cursor(last))
