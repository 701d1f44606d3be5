"""What every route depends on: the process-wide objects (settings, database, sampling caches)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request

from hps.catalog.registry import Registry
from hps.server.api.limits import RateLimits
from hps.server.config import Settings
from hps.server.metrics import Metrics
from hps.server.sampling import Sampling
from hps.server.store.database import Database
from hps.server.tokens import TokenCache


@dataclass(frozen=True)
class Hub:
    """The objects one API process shares across requests."""

    settings: Settings
    db: Database
    sampling: Sampling
    registry: Registry
    metrics: Metrics
    limits: RateLimits
    token_cache: TokenCache = field(default_factory=TokenCache)

    @property
    def lease(self) -> timedelta:
        """How long a trial lease lasts."""
        return timedelta(seconds=self.settings.lease_seconds)


def get_hub(request: Request) -> Hub:
    """FastAPI dependency: the app's hub."""
    hub: Hub = request.app.state.hub
    return hub
