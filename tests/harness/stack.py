"""The objects an API process holds (database, sampling caches), built inside a test process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from service.sampling import Sampling
from service.store.database import Database
from workers.registry import Registry

LEASE = timedelta(seconds=60)


@dataclass
class Stack:
    """What the API process holds, built in the test process."""

    url: str
    db: Database
    sampling: Sampling
    registry: Registry
