"""The rules of a trial's params as the service applies them to a whole search space at creation."""

from __future__ import annotations

import pytest

from hps.catalog.registry import load_registry
from hps.catalog.trial_params import OptimizerConfigError, check_newton, check_space
from hps.search_spaces import SearchSpace, compile_space, list_presets


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_fits_every_built_in_task(preset: str) -> None:
    space = compile_space(SearchSpace(preset=preset))
    for task in load_registry().tasks.values():
        check_space(space, task.optimizers)


def test_newton_needs_a_model_of_known_size_within_the_limit() -> None:
    check_newton(["sgd", "adamw"], None, 5000, "task t")  # no newton: nothing to check
    check_newton(["newton"], 5000, 5000, "task t")
    with pytest.raises(
        OptimizerConfigError,
        match="task t, model m has 5,001 trainable params: more than the task's limit of 5,000",
    ):
        check_newton(["sgd", "newton"], 5001, 5000, "task t, model m")
    with pytest.raises(OptimizerConfigError, match="does not declare its trainable_params") as caught:
        check_newton(["newton"], None, 5000, "task t, model m")
    assert caught.value.param == "optimizer"
