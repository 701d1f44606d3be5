"""Fixtures for schedule tests: a migrated database with the objects the scheduler needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.stack import Stack
from service.sampling import Sampling
from service.store.database import Database
from service.store.schema import upgrade
from workers.registry import load_registry


@pytest.fixture
def stack(database_url: str) -> Iterator[Stack]:
    """A migrated database with the objects use cases need."""
    upgrade(database_url)
    db = Database(database_url)
    sampling = Sampling(database_url)
    try:
        yield Stack(database_url, db, sampling, load_registry())
    finally:
        sampling.close()
        db.dispose()
