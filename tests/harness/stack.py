"""The objects an API process holds (database, sampling caches), built inside a test process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hps.catalog.registry import Registry
from hps.server.sampling import Sampling
from hps.server.store.database import Database

LEASE = timedelta(seconds=60)


@dataclass
class Stack:
    """What the API process holds, built in the test process."""

    url: str
    db: Database
    sampling: Sampling
    registry: Registry
