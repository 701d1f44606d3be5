"""Presets: shipped files, their contents, loading errors, and merging with params."""

from typing import Any

import pytest
from pydantic import ValidationError

from hps.search_spaces import (
    CategoricalParam,
    FloatParam,
    LearningRates,
    SearchSpace,
    SearchSpaceError,
    UnknownPreset,
    compile_space,
    fit_learning_rates,
    list_presets,
    load_preset,
    resolve,
)

# The names the worker's optimizer factory reads; presets must use no others.
WORKER_NAMES = {
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "beta1",
    "beta2",
    "eps",
    "weight_decay",
    "alpha",
    "lr_decay",
    "schedule",
    "warmup_ratio",
    "batch_size",
    "epochs",
    "history_size",
    "max_iter",
    "line_search_fn",
    "tolerance_grad",
    "tolerance_change",
    "damping",
}
OPTIMIZERS = {"sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs"}
SCHEDULES = {"constant", "cosine", "linear_warmup"}


def test_list_presets() -> None:
    assert list_presets() == [
        "adam",
        "adamw",
        "bert-grid",
        "fine-tuning",
        "optimizers",
        "schedules",
        "second-order",
        "sgd",
    ]


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_is_a_flat_valid_space(name: str) -> None:
    space = load_preset(name)
    assert space.preset is None
    assert space.description and "\n" not in space.description
    assert (space.params is None) != (space.grid is None)
    names = set(space.params or space.grid or {})
    assert names <= WORKER_NAMES
    assert resolve(space) is space


@pytest.mark.parametrize("name", list_presets())
def test_preset_values_have_the_intended_types(name: str) -> None:
    space = load_preset(name)
    for param in (space.params or {}).values():
        if isinstance(param, CategoricalParam):
            # YAML 1.1 reads "1e-5" as a string; no string here may look numeric.
            assert all(not isinstance(c, str) or c.isidentifier() for c in param.choices)
    for param_name, values in (space.grid or {}).items():
        if param_name == "lr":
            assert all(type(v) is float for v in values)


def test_preset_contents_the_workers_rely_on() -> None:
    adam = load_preset("adam").params
    assert adam is not None
    assert adam["optimizer"] == CategoricalParam(type="categorical", choices=["adam"])
    assert adam["beta2"] == FloatParam(type="float", low=0.9, high=0.9999, scale="reverse_log")
    assert adam["lr"] == FloatParam(type="float", low=1e-5, high=1e-1, scale="log")
    adamw = load_preset("adamw").params
    assert adamw is not None and set(adamw) == set(adam) | {"weight_decay"}
    sgd = load_preset("sgd").params
    assert sgd is not None
    assert sgd["nesterov"] == CategoricalParam(type="categorical", choices=[True, False])
    optimizers = load_preset("optimizers").params
    assert optimizers is not None
    assert isinstance(optimizers["optimizer"], CategoricalParam)
    assert set(optimizers["optimizer"].choices) == OPTIMIZERS
    assert optimizers["beta1"].when == {"optimizer": ["adam", "adamw"]}
    schedules = load_preset("schedules").params
    assert schedules is not None
    assert isinstance(schedules["schedule"], CategoricalParam)
    assert set(schedules["schedule"].choices) == SCHEDULES
    assert schedules["warmup_ratio"].when == {"schedule": ["linear_warmup"]}
    grid = load_preset("bert-grid").grid
    assert grid == {
        "lr": [5e-5, 3e-5, 2e-5],
        "batch_size": [16, 32],
        "epochs": [2, 3, 4],
        "optimizer": ["adamw"],
        "schedule": ["linear_warmup"],
    }


def test_unknown_preset_is_a_key_error_listing_known_names() -> None:
    with pytest.raises(UnknownPreset) as info:
        load_preset("adamax")
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown preset 'adamax'; known presets: adam, adamw")
    with pytest.raises(UnknownPreset):
        load_preset("../schema")


def test_loaded_presets_cannot_be_changed_through_a_caller() -> None:
    first = load_preset("adam")
    assert first.params is not None
    del first.params["lr"]
    second = load_preset("adam")
    assert second.params is not None and "lr" in second.params


def test_resolve_preset_alone() -> None:
    resolved = resolve(SearchSpace(preset="adamw"))
    assert resolved.preset is None
    assert resolved.params == load_preset("adamw").params
    assert resolved.description == load_preset("adamw").description
    grid = resolve(SearchSpace(preset="bert-grid", description="mine"))
    assert grid.grid == load_preset("bert-grid").grid
    assert grid.params is None and grid.description == "mine"


def test_resolve_merges_params_into_the_preset() -> None:
    data: dict[str, Any] = {
        "preset": "sgd",
        "params": {
            "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "scale": "log"},
            "epochs": {"type": "int", "low": 1, "high": 5},
            "dampening": {"type": "float", "low": 0, "high": 0.5, "when": {"nesterov": [False]}},
        },
    }
    resolved = resolve(SearchSpace.model_validate(data))
    assert resolved.params is not None
    # Replaced params keep the preset's position; new ones come last.
    assert list(resolved.params) == [
        "optimizer",
        "lr",
        "momentum",
        "nesterov",
        "weight_decay",
        "epochs",
        "dampening",
    ]
    assert resolved.params["lr"] == FloatParam(type="float", low=1e-3, high=1e-1, scale="log")
    assert resolved.params["momentum"] == load_preset("sgd").params["momentum"]  # type: ignore[index]


def test_merged_params_are_validated_against_the_preset() -> None:
    data = {
        "preset": "adam",
        "params": {"extra": {"type": "float", "low": 0, "high": 1, "when": {"optimizer": ["sgd"]}}},
    }
    with pytest.raises(ValidationError) as info:
        SearchSpace.model_validate(data)
    error = info.value.errors()[0]["ctx"]["error"]
    assert error.field == "params.extra.when"
    assert "'sgd'" in error.message and "not among its choices" in error.message


def test_resolve_reports_an_unknown_preset_on_the_preset_field() -> None:
    # model_construct skips validation, as a caller holding an old model might.
    space = SearchSpace.model_construct(preset="gone")
    with pytest.raises(SearchSpaceError) as info:
        resolve(space)
    assert info.value.field == "preset"
    assert "known presets: adam" in info.value.message


def test_a_preset_is_fitted_to_a_familys_learning_rates() -> None:
    rates = LearningRates(low=1e-6, high=1e-3, starts={"adamw": 5e-5, "adam": 3e-5})
    space = resolve(SearchSpace(preset="optimizers"))
    fitted = fit_learning_rates(space, rates)
    lr = (fitted.params or {})["lr"]
    assert isinstance(lr, FloatParam) and (lr.low, lr.high, lr.scale) == (1e-6, 1e-3, "log")
    by_optimizer = {start["optimizer"]: start["lr"] for start in fitted.starts or []}
    # Named optimizers take their rate; the others are clipped into the range.
    assert by_optimizer == {"adamw": 5e-5, "adam": 3e-5, "sgd": 1e-3, "adagrad": 1e-3, "lbfgs": 1e-3}
    kept = fit_learning_rates(space, rates, keep_range=True, keep_starts=True)
    assert kept.params == space.params and kept.starts == space.starts
    compile_space(fitted)  # still a valid space: every start fits
    with pytest.raises(ValueError, match="outside"):
        LearningRates(low=1e-6, high=1e-3, starts={"sgd": 0.1})
