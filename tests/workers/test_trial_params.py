"""The rules of a trial's params as the service applies them to a whole search space at creation."""

from __future__ import annotations

import pytest

from hps.catalog.registry import load_registry
from hps.catalog.trial_params import check_space
from hps.search_spaces import SearchSpace, compile_space, list_presets


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_fits_every_built_in_task(preset: str) -> None:
    space = compile_space(SearchSpace(preset=preset))
    for task in load_registry().tasks.values():
        check_space(space, task.optimizers)
