"""``/v1/optuna``: Optuna's storage protocol, the server side of ``hps.optuna.HpsStorage`` (docs/optuna.md).

Every route is one ``BaseStorage`` method, scoped to the token's project (a project-less admin token
works in the ``default`` project). Answers are written straight from their models (no second
validation), because an Optuna program makes several of these calls per trial.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from hps.server import studies
from hps.server.api.auth import can_read, can_write
from hps.server.api.context import Hub, get_hub
from hps.server.api.params import MAX_ID, StudyId
from hps.server.api.responses import COMMON, Responses, error
from hps.server.optuna_storage import OptunaStorageService
from hps.server.tokens import Principal
from hps.wire.optuna import (
    AttrIn,
    HeartbeatIn,
    IntermediateIn,
    NewStudy,
    NewTrialIn,
    ParamIn,
    StaleOut,
    StateIn,
    StudyInfo,
    StudyList,
    StudyRef,
    TrialIdOut,
    TrialList,
    TrialWire,
    UpdatedOut,
)

router = APIRouter(prefix="/v1/optuna", tags=["optuna storage"], responses=COMMON)

TrialId = Annotated[int, Path(ge=1, le=MAX_ID, description="Optuna's trial id.")]
NOT_FOUND: Responses = {404: error("No such study or trial in this token's project (Optuna's KeyError).")}
FINISHED: Responses = {
    409: error("The trial has finished (Optuna's UpdateFinishedTrialError), or the study is hps's.")
}
MAX_WATCH = 10_000


def service(request: Request) -> OptunaStorageService:
    """FastAPI dependency: the app's Optuna storage use cases."""
    found: OptunaStorageService = request.app.state.optuna_storage
    return found


def _project(who: Principal) -> str:
    return who.project or "default"


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(content=model.model_dump_json(), status_code=status, media_type="application/json")


@router.post(
    "/studies",
    status_code=201,
    response_model=StudyRef,
    responses={409: error("The project has a study of that name (Optuna's DuplicatedStudyError).")},
)
def create_study(
    body: NewStudy, use: OptunaStorageService = Depends(service), who: Principal = Depends(can_write)
) -> Response:
    """``create_new_study``: a study in the token's project, sampled by its client."""
    study_id = use.create_study(_project(who), body.study_name, body.directions)
    return _json(StudyRef(study_id=study_id), 201)


@router.get("/studies", response_model=StudyList)
def list_studies(
    use: OptunaStorageService = Depends(service), who: Principal = Depends(can_read)
) -> Response:
    """``get_all_studies``: every study of the project (hps's own included, read-only)."""
    return _json(StudyList(studies=use.studies(_project(who))))


@router.get("/study-ids", response_model=StudyRef, responses=NOT_FOUND)
def study_id_by_name(
    name: str = Query(max_length=128),
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_read),
) -> Response:
    """``get_study_id_from_name``."""
    return _json(StudyRef(study_id=use.study_id(_project(who), name)))


@router.get("/studies/{study_id}", response_model=StudyInfo, responses=NOT_FOUND)
def get_study(
    study_id: StudyId, use: OptunaStorageService = Depends(service), who: Principal = Depends(can_read)
) -> Response:
    """A study's name, directions, user and system attrs."""
    return _json(use.study(_project(who), study_id))


@router.delete("/studies/{study_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_study(
    study_id: StudyId,
    use: OptunaStorageService = Depends(service),
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_write),
) -> Response:
    """``delete_study``: the study, its trials and its hps row (as ``DELETE /v1/studies/{id}``)."""
    use.owner(_project(who), study_id)
    studies.delete_study(hub.db, hub.sampling, study_id, project=_project(who))
    return Response(status_code=204)


@router.post(
    "/studies/{study_id}/user-attrs",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **FINISHED},
)
def set_study_user_attr(
    study_id: StudyId,
    body: AttrIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``set_study_user_attr``; the value as JSON text."""
    use.set_study_attr(_project(who), study_id, False, body.key, body.value_json)
    return Response(status_code=204)


@router.post(
    "/studies/{study_id}/system-attrs",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **FINISHED},
)
def set_study_system_attr(
    study_id: StudyId,
    body: AttrIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``set_study_system_attr``; the value as JSON text."""
    use.set_study_attr(_project(who), study_id, True, body.key, body.value_json)
    return Response(status_code=204)


@router.post(
    "/studies/{study_id}/trials",
    status_code=201,
    response_model=TrialWire,
    responses={**NOT_FOUND, 409: error("The study is not running, or is hps's.")},
)
def create_trial(
    study_id: StudyId,
    body: NewTrialIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``create_new_trial``: RUNNING, or a copy of the template (``enqueue_trial``, ``add_trial``)."""
    return _json(use.create_trial(_project(who), study_id, body.template), 201)


@router.get("/studies/{study_id}/trials", response_model=TrialList, responses=NOT_FOUND)
def list_trials(
    study_id: StudyId,
    after: int = Query(default=-1, ge=-1, le=MAX_ID, description="Only trials with a larger id ..."),
    watch: list[Annotated[int, Field(ge=0, le=MAX_ID)]] = Query(
        default_factory=list, max_length=MAX_WATCH, description="... and these trials (ids)."
    ),
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_read),
) -> Response:
    """``get_all_trials``, incrementally: trials created after ``after`` and the ``watch``ed ones (those the
    client's cache holds unfinished). Ordered by id."""
    return _json(TrialList(trials=use.trials(_project(who), study_id, after, set(watch))))


@router.get("/studies/{study_id}/trial-ids/{number}", response_model=TrialIdOut, responses=NOT_FOUND)
def trial_id_by_number(
    study_id: StudyId,
    number: Annotated[int, Path(ge=0, le=MAX_ID)],
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_read),
) -> Response:
    """``get_trial_id_from_study_id_trial_number``."""
    return _json(TrialIdOut(trial_id=use.trial_id(_project(who), study_id, number)))


@router.post("/studies/{study_id}/stale-trials", response_model=StaleOut, responses=NOT_FOUND)
def stale_trials(
    study_id: StudyId,
    body: HeartbeatIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """Optuna's ``_get_stale_trial_ids``, plus the trials hps's reaper failed meanwhile (handed out once,
    for the caller's failed-trial callback)."""
    found = use.stale_trials(_project(who), study_id, body.grace_period_s)
    return _json(StaleOut(stale=found.stale, reaped=found.reaped))


@router.get("/trials/{trial_id}", response_model=TrialWire, responses=NOT_FOUND)
def get_trial(
    trial_id: TrialId,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_read),
) -> Response:
    """``get_trial``."""
    return _json(use.trial(_project(who), trial_id))


@router.post(
    "/trials/{trial_id}/params", status_code=204, response_class=Response, responses={**NOT_FOUND, **FINISHED}
)
def set_trial_param(
    trial_id: TrialId,
    body: ParamIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``set_trial_param``: 422 when the distribution clashes with the study's earlier one."""
    use.set_param(_project(who), trial_id, body.name, body.value, body.distribution_json)
    return Response(status_code=204)


@router.post("/trials/{trial_id}/state", response_model=UpdatedOut, responses={**NOT_FOUND, **FINISHED})
def set_trial_state(
    trial_id: TrialId,
    body: StateIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``set_trial_state_values``."""
    updated, trial = use.set_state(_project(who), trial_id, body.state, body.values)
    return _json(UpdatedOut(updated=updated, trial=trial))


@router.post(
    "/trials/{trial_id}/intermediate-values",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **FINISHED},
)
def set_intermediate_value(
    trial_id: TrialId,
    body: IntermediateIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``set_trial_intermediate_value``."""
    use.set_intermediate(_project(who), trial_id, body.step, body.value)
    return Response(status_code=204)


@router.post(
    "/trials/{trial_id}/user-attrs",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **FINISHED},
)
def set_trial_user_attr(
    trial_id: TrialId,
    body: AttrIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``set_trial_user_attr``."""
    use.set_trial_attr(_project(who), trial_id, False, body.key, body.value_json)
    return Response(status_code=204)


@router.post(
    "/trials/{trial_id}/system-attrs",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **FINISHED},
)
def set_trial_system_attr(
    trial_id: TrialId,
    body: AttrIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``set_trial_system_attr``."""
    use.set_trial_attr(_project(who), trial_id, True, body.key, body.value_json)
    return Response(status_code=204)


@router.post(
    "/trials/{trial_id}/heartbeat",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **FINISHED},
)
def heartbeat(
    trial_id: TrialId,
    body: HeartbeatIn,
    use: OptunaStorageService = Depends(service),
    who: Principal = Depends(can_write),
) -> Response:
    """``record_heartbeat``: a running trial's lease; the reaper fails the trial when ``grace_period_s``
    pass without one."""
    use.heartbeat(_project(who), trial_id, body.grace_period_s)
    return Response(status_code=204)
