"""Optuna's own storage conformance suite (``optuna.testing.pytest_storages.StorageTestCase``), run
unchanged against ``HpsStorage`` on a real hps server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from optuna.testing.pytest_storages import StorageTestCase

from hps.optuna import HpsStorage


@pytest.fixture
def storage(project_storage: tuple[str, str, HpsStorage]) -> HpsStorage:
    """The suite's storage: a fresh project's view of the module's server."""
    return project_storage[2]


class TestHpsStorage(StorageTestCase):
    """Every test of Optuna's suite."""
