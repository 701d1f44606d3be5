"""``GET /metrics``: Prometheus text format, for project-less ``metrics`` or ``admin`` tokens.

Why project-less: the ``hps_trials`` labels name every study of every project. A ``metrics`` token can do
nothing else, so it is the one to give Prometheus, which sends it with
``authorization: {type: Bearer, credentials_file: ...}`` in its scrape config (see docs/metrics.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from hps.server.api.auth import can_scrape
from hps.server.api.context import Hub, get_hub
from hps.server.api.responses import COMMON
from hps.server.tokens import Principal

router = APIRouter(tags=["operations"], responses=COMMON)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Every metric, in the Prometheus text format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics(hub: Hub = Depends(get_hub), who: Principal = Depends(can_scrape)) -> Response:
    """Trials by study and state, live leases, active workers (read from the database now), claim and ask
    latency and reaped leases (measured by this process)."""
    return Response(content=hub.metrics.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
