"""``/v1/workers``: workers claim trials here."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from hps.server import claims
from hps.server.api.auth import can_claim
from hps.server.api.context import Hub, get_hub
from hps.server.api.render import claim_out
from hps.server.api.responses import COMMON
from hps.server.tokens import Principal
from hps.wire.workers import ClaimIn, ClaimOut

router = APIRouter(prefix="/v1/workers", tags=["workers"], responses=COMMON)


@router.post(
    "/claim",
    response_model=ClaimOut,
    responses={204: {"description": "Nothing to do: no running study of these tasks has a trial left."}},
)
def claim(
    body: ClaimIn, hub: Hub = Depends(get_hub), who: Principal = Depends(can_claim)
) -> ClaimOut | Response:
    """Pick a running study with a task this worker can run and budget left, and ask a trial in it; a
    worker whose `kinds` include `lr_range_test` may get one of a study's lr range tests instead."""
    with hub.metrics.time_claim() as timing:
        found = claims.claim_trial(
            hub.db,
            hub.sampling,
            worker_id=body.worker_id,
            device=body.device,
            tasks=body.tasks,
            lease=hub.lease,
            project=who.project,
            range_tests="lr_range_test" in body.kinds,
        )
        timing.outcome = "none" if found is None else "trial" if found.range_test is None else "lr_range_test"
    if found is None:
        hub.metrics.saw_idle_worker(body.worker_id)
        return Response(status_code=204)
    return claim_out(found)
