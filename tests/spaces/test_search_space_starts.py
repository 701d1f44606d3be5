"""Starts: configurations tried before any sampling; a preset's unless the request gives its own."""

from __future__ import annotations

import pydantic
import pytest

from hps.search_spaces import SearchSpace, SearchSpaceError, compile_space, list_presets, load_preset, resolve


def error_of(data: dict[str, object]) -> SearchSpaceError:
    with pytest.raises(pydantic.ValidationError) as caught:
        SearchSpace.model_validate(data)
    cause = caught.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, SearchSpaceError)
    return cause


@pytest.mark.parametrize("name", list_presets())
def test_every_presets_starts_fit_it(name: str) -> None:
    space = load_preset(name)
    compiled = compile_space(space)
    for start in space.starts or []:
        compiled.encode(start)


def test_own_starts_replace_the_presets() -> None:
    space = resolve(
        SearchSpace.model_validate(
            {
                "preset": "adam",
                "starts": [{"optimizer": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8}],
            }
        )
    )
    assert space.starts == [{"optimizer": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8}]
    assert resolve(SearchSpace.model_validate({"preset": "adam", "starts": []})).starts == []


def test_a_start_outside_the_space_names_its_index_and_param() -> None:
    error = error_of(
        {
            "preset": "adam",
            "starts": [{"optimizer": "adam", "lr": 5.0, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8}],
        }
    )
    assert error.field == "starts.0" and "lr" in error.message


def test_a_start_missing_a_conditional_param_is_refused() -> None:
    error = error_of({"preset": "optimizers", "starts": [{"optimizer": "adam", "lr": 0.001}]})
    assert error.field == "starts.0" and "beta1" in error.message


def test_narrowing_a_preset_keeps_only_the_starts_that_still_fit() -> None:
    narrowed = {
        "preset": "optimizers",
        "params": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "scale": "log"}},
    }
    starts = resolve(SearchSpace.model_validate(narrowed)).starts or []
    assert [s["optimizer"] for s in starts] == ["adamw", "adam", "adagrad"]  # sgd's lr 0.1 no longer fits


def test_grids_take_no_starts() -> None:
    error = error_of({"grid": {"lr": [0.1, 0.01]}, "starts": [{"lr": 0.1}]})
    assert error.field == "starts"
