"""``/v1/studies``: create, list, read, cancel, delete."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from service import studies
from service.api.auth import Principal, authenticate
from service.api.context import Hub, get_hub
from service.api.paging import DEFAULT_PAGE, MAX_PAGE, decode_cursor, encode_cursor
from service.api.render import study_out
from service.api.schemas import ErrorOut, StudyOut, StudyPage
from service.specs import StudySpec

router = APIRouter(prefix="/v1/studies", tags=["studies"])

StudyState = Literal["running", "paused", "completed", "cancelled", "failed"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such study."}}


@router.post(
    "",
    status_code=201,
    response_model=StudyOut,
    responses={
        409: {"model": ErrorOut, "description": "The name is taken."},
        422: {"model": ErrorOut, "description": "The spec is invalid."},
    },
)
def create_study(
    spec: StudySpec, hub: Hub = Depends(get_hub), _: Principal = Depends(authenticate)
) -> StudyOut:
    """Create a study from a spec (API.md, "A study request")."""
    return study_out(studies.create_study(hub.db, spec, hub.registry))


@router.get("", response_model=StudyPage)
def list_studies(
    state: StudyState | None = None,
    limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(default=None, max_length=200),
    hub: Hub = Depends(get_hub),
    _: Principal = Depends(authenticate),
) -> StudyPage:
    """Studies, newest first, a page at a time."""
    views, last = studies.list_studies(hub.db, state=state, limit=limit, before_id=decode_cursor(cursor))
    return StudyPage(items=[study_out(v) for v in views], next_cursor=encode_cursor(last))


@router.get("/{study_id}", response_model=StudyOut, responses=_NOT_FOUND)
def get_study(study_id: int, hub: Hub = Depends(get_hub), _: Principal = Depends(authenticate)) -> StudyOut:
    """One study with its progress counts and best trial."""
    return study_out(studies.get_study(hub.db, study_id))


@router.post("/{study_id}/cancel", response_model=StudyOut, responses=_NOT_FOUND)
def cancel_study(
    study_id: int, hub: Hub = Depends(get_hub), _: Principal = Depends(authenticate)
) -> StudyOut:
    """Stop handing out trials; running ones are told to stop at their next report."""
    return study_out(studies.cancel_study(hub.db, hub.sampling, study_id))


@router.delete("/{study_id}", status_code=204, response_class=Response, responses=_NOT_FOUND)
def delete_study(
    study_id: int, hub: Hub = Depends(get_hub), _: Principal = Depends(authenticate)
) -> Response:
    """Delete the study, its trials and its Optuna study."""
    studies.delete_study(hub.db, hub.sampling, study_id)
    return Response(status_code=204)
