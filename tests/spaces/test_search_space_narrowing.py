"""Narrowing a categorical's choices (``keep_choices``): how a preset is fitted to what a task runs."""

from __future__ import annotations

import pytest

from hps.search_spaces import (
    CategoricalParam,
    SearchSpace,
    SearchSpaceError,
    compile_space,
    keep_choices,
    resolve,
)


def test_dropping_newton_drops_its_params_and_starts() -> None:
    space = resolve(SearchSpace(preset="second-order"))
    narrowed = keep_choices(space, "optimizer", ["sgd", "adam", "lbfgs"])
    params = narrowed.params or {}
    assert params["optimizer"] == CategoricalParam(type="categorical", choices=["lbfgs"])
    assert "damping" not in params and {"history_size", "max_iter", "line_search_fn", "lr"} <= set(params)
    assert [start["optimizer"] for start in narrowed.starts or []] == ["lbfgs"]
    compile_space(narrowed)  # still a valid space


def test_a_param_hanging_on_a_dropped_param_goes_too() -> None:
    space = SearchSpace(
        params={
            "optimizer": {"type": "categorical", "choices": ["sgd", "newton"]},
            "mode": {"type": "categorical", "choices": ["a", "b"], "when": {"optimizer": ["newton"]}},
            "depth": {"type": "int", "low": 1, "high": 3, "when": {"mode": ["a"]}},
            "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd", "newton"]}},
        }
    )
    narrowed = keep_choices(space, "optimizer", ["sgd"])
    params = narrowed.params or {}
    assert set(params) == {"optimizer", "momentum"}
    assert params["momentum"].when == {"optimizer": ["sgd"]}


def test_nothing_to_drop_keeps_the_space_and_nothing_left_is_an_error() -> None:
    space = resolve(SearchSpace(preset="adam"))
    assert keep_choices(space, "optimizer", ["adam", "sgd"]) is space
    assert keep_choices(space, "schedule", ["constant"]) is space  # no such param
    with pytest.raises(SearchSpaceError) as caught:
        keep_choices(space, "optimizer", ["sgd"])
    assert caught.value.field == "params.optimizer.choices"
