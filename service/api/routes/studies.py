"""``/v1/studies``: create, list, read, cancel, delete, and the optimizer report."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Response

from hps.report.build import TOP_CURVES, build_report
from hps.server import studies
from hps.server.api.auth import can_read, can_write
from hps.server.api.context import Hub, get_hub
from hps.server.api.paging import CURSOR_PATTERN, DEFAULT_PAGE, MAX_PAGE, cursor_before, encode_cursor
from hps.server.api.params import StudyId
from hps.server.api.render import range_test_out, study_out, trial_out
from hps.server.api.responses import COMMON, STUDY_NOT_FOUND, error
from hps.server.errors import Forbidden
from hps.server.evidence import gather_evidence
from hps.server.tokens import PROJECT_PATTERN, Principal
from hps.wire.reports import StudyReport
from hps.wire.studies import NAME_PATTERN, StudyOut, StudyPage, StudySpec

router = APIRouter(prefix="/v1/studies", tags=["studies"], responses=COMMON)

StudyState = Literal["running", "paused", "completed", "cancelled", "failed"]


@router.post("", status_code=201, response_model=StudyOut, responses={409: error("The name is taken.")})
def create_study(
    spec: StudySpec,
    project: str | None = Query(
        default=None, pattern=PROJECT_PATTERN, description="Admins only: the project to create it in."
    ),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_write),
) -> StudyOut:
    """Create a study from a spec (API.md, "A study request"), in the token's project."""
    if who.project is not None and project not in (None, who.project):
        raise Forbidden(f"this token creates studies in project {who.project!r} only")
    home = who.project or project or "default"
    created = studies.create_study(
        hub.db,
        spec,
        hub.registry,
        project=home,
        plans=hub.sampling.plans,
        price_per_gpu_hour=hub.settings.price_per_gpu_hour,
    )
    return study_out(created)


@router.get("", response_model=StudyPage)
def list_studies(
    state: StudyState | None = None,
    name: str | None = Query(
        default=None,
        pattern=NAME_PATTERN,
        description="Only the study with this exact name (unique within a project).",
    ),
    limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(default=None, pattern=CURSOR_PATTERN),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_read),
) -> StudyPage:
    """The token's project's studies, newest first, a page at a time."""
    views, last = studies.list_studies(
        hub.db, state=state, limit=limit, before_id=cursor_before(cursor), project=who.project, name=name
    )
    return StudyPage(items=[study_out(v) for v in views], next_cursor=encode_cursor(last))


@router.get("/{study_id}", response_model=StudyOut, responses=STUDY_NOT_FOUND)
def get_study(study_id: StudyId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_read)) -> StudyOut:
    """One study with its progress counts and best trial."""
    return study_out(studies.get_study(hub.db, study_id, project=who.project))


@router.post("/{study_id}/cancel", response_model=StudyOut, responses=STUDY_NOT_FOUND)
def cancel_study(
    study_id: StudyId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_write)
) -> StudyOut:
    """Stop handing out trials; running ones are told to stop at their next report."""
    return study_out(studies.cancel_study(hub.db, hub.sampling, study_id, project=who.project))


@router.delete("/{study_id}", status_code=204, response_class=Response, responses=STUDY_NOT_FOUND)
def delete_study(
    study_id: StudyId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_write)
) -> Response:
    """Delete the study, its trials and its Optuna study."""
    studies.delete_study(hub.db, hub.sampling, study_id, project=who.project)
    return Response(status_code=204)


@router.get("/{study_id}/report", response_model=StudyReport, responses=STUDY_NOT_FOUND)
def study_report(
    study_id: StudyId,
    top: int = Query(default=TOP_CURVES, ge=1, le=20, description="How many best trials' curves to show."),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_read),
) -> StudyReport:
    """The optimizer report: per-optimizer table, history, curves, lr vs metric, importances and a
    recommendation (docs/report.md). A study without trials gets a report that says so."""
    evidence = gather_evidence(hub.db, hub.sampling, study_id, project=who.project)
    trials = [trial_out(view) for view in evidence.trials]
    tests = [range_test_out(test) for test in evidence.range_tests]
    return build_report(study_out(evidence.study), trials, evidence.importances, top=top, range_tests=tests)
