"""A study's learning-rate range tests: reading them, and a worker's heartbeat and completion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from hps.server import range_tests
from hps.server.api.auth import can_read, can_run
from hps.server.api.context import Hub, get_hub
from hps.server.api.params import StudyId
from hps.server.api.render import range_test_out, range_tests_out
from hps.server.api.responses import COMMON, STUDY_NOT_FOUND, Responses, error
from hps.server.tokens import Principal
from hps.wire.range_tests import RangeTestCompletion, RangeTestOut, RangeTestsOut
from hps.wire.trials import HeartbeatOut, LeaseOut

router = APIRouter(prefix="/v1/studies/{study_id}/lr-range-tests", tags=["lr range tests"], responses=COMMON)

Optimizer = Annotated[str, Path(min_length=1, max_length=200, description="The optimizer the test is of.")]
_LEASE_LOST: Responses = {
    404: error("No such study, or no range test of that optimizer."),
    409: error("The range test is not running: its lease is gone."),
}


@router.get("", response_model=RangeTestsOut, responses=STUDY_NOT_FOUND)
def list_range_tests(
    study_id: StudyId, hub: Hub = Depends(get_hub), who: Principal = Depends(can_read)
) -> RangeTestsOut:
    """The study's range tests (empty without `lr_range_test`): each one's loss curve and the lr range
    read off it, and the ranges the sampler searches once every test has ended."""
    tests, ranges = range_tests.list_range_tests(hub.db, study_id, project=who.project)
    return range_tests_out(tests, ranges)


@router.post("/{optimizer}/heartbeat", response_model=HeartbeatOut, responses=_LEASE_LOST)
def heartbeat(
    study_id: StudyId, optimizer: Optimizer, hub: Hub = Depends(get_hub), who: Principal = Depends(can_run)
) -> HeartbeatOut:
    """Extend the range test's lease."""
    expires, stop = range_tests.heartbeat_range_test(
        hub.db, study_id, optimizer, lease=hub.lease, project=who.project
    )
    return HeartbeatOut(lease=LeaseOut(expires_at=expires), should_stop=stop)


@router.post("/{optimizer}/complete", response_model=RangeTestOut, responses=_LEASE_LOST)
def complete(
    study_id: StudyId,
    optimizer: Optimizer,
    body: RangeTestCompletion,
    hub: Hub = Depends(get_hub),
    who: Principal = Depends(can_run),
) -> RangeTestOut:
    """Finish the range test with its curve (or its failure); the service narrows the optimizer's lr
    range, and once every test has ended the study starts sampling."""
    ended = range_tests.complete_range_test(
        hub.db, hub.sampling, study_id, optimizer, body, project=who.project
    )
    return range_test_out(ended)
