"""``/v1/workers``: workers claim trials here."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from service import claims
from service.api.auth import can_claim
from service.api.context import Hub, get_hub
from service.api.render import claim_out
from service.api.responses import COMMON
from service.api.schemas import ClaimIn, ClaimOut
from service.tokens import Principal

router = APIRouter(prefix="/v1/workers", tags=["workers"], responses=COMMON)


@router.post(
    "/claim",
    response_model=ClaimOut,
    responses={204: {"description": "Nothing to do: no running study of these tasks has a trial left."}},
)
def claim(
    body: ClaimIn, hub: Hub = Depends(get_hub), who: Principal = Depends(can_claim)
) -> ClaimOut | Response:
    """Pick a running study with a task this worker can run and budget left, and ask a trial in it."""
    with hub.metrics.time_claim() as timing:
        found = claims.claim_trial(
            hub.db,
            hub.sampling,
            worker_id=body.worker_id,
            device=body.device,
            tasks=body.tasks,
            lease=hub.lease,
            project=who.project,
        )
        timing.outcome = "none" if found is None else "trial"
    if found is None:
        return Response(status_code=204)
    return claim_out(found)
