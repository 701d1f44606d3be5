"""Liveness and readiness; no auth, so orchestrators can probe them."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from hps.server.api.context import Hub, get_hub
from hps.server.store.schema import is_current
from hps.wire.base import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(hub: Hub = Depends(get_hub)) -> Health | JSONResponse:
    """The database answers and its schema is current."""
    try:
        current = is_current(hub.db.engine)
    except Exception as exc:  # any failure to reach the database means "not ready"
        body = Health(status="unavailable", detail=f"database unreachable ({type(exc).__name__})")
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "2"})
    if not current:
        body = Health(status="unavailable", detail="schema is behind: run `hps db upgrade`")
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
    return Health(status="ok")
