"""Validation rules of SearchSpace: each rule, its message, and its field path."""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from hps.search_spaces import SearchSpace, SearchSpaceError


def error_of(data: dict[str, Any]) -> SearchSpaceError:
    """Validate ``data`` expecting failure; return the SearchSpaceError pydantic wrapped."""
    with pytest.raises(ValidationError) as info:
        SearchSpace.model_validate(data)
    error = info.value.errors()[0]["ctx"]["error"]
    assert isinstance(error, SearchSpaceError)
    return error


def fl(low: float, high: float, **extra: Any) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, **extra}


def it(low: int, high: int, **extra: Any) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, **extra}


def cat(*choices: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices), **extra}


OPT = cat("sgd", "adam", "adamw")

# (params, expected field, words the message must contain)
PARAM_ERRORS: list[tuple[dict[str, Any], str, list[str]]] = [
    ({"lr": fl(0.1, 0.01)}, "params.lr.low", ["lr: low (0.1) must be less than high (0.01)"]),
    ({"lr": fl(0.1, 0.1)}, "params.lr.low", ["lr:", "must be less than high"]),
    ({"lr": fl(0.0, 1.0, scale="log")}, "params.lr.low", ["lr:", "log scale needs low > 0"]),
    ({"lr": fl(-1.0, 1.0, scale="log")}, "params.lr.low", ["lr:", "log scale needs low > 0"]),
    (
        {"beta2": fl(0.9, 1.0, scale="reverse_log")},
        "params.beta2.scale",
        ["beta2: reverse_log needs 0 < low < high < 1"],
    ),
    (
        {"beta2": fl(0.0, 0.5, scale="reverse_log")},
        "params.beta2.scale",
        ["beta2: reverse_log needs 0 < low < high < 1"],
    ),
    ({"m": fl(0.0, 1.0, step=0.0)}, "params.m.step", ["m:", "step must be > 0"]),
    ({"m": fl(0.0, 1.0, step=-0.1)}, "params.m.step", ["m:", "step must be > 0"]),
    ({"m": fl(0.0, 1.0, step=2.0)}, "params.m.step", ["m:", "must be at most high - low"]),
    ({"m": fl(0.0, 1.0, step=0.3)}, "params.m.step", ["m:", "must be a multiple of step"]),
    (
        {"lr": fl(1e-5, 1.0, scale="log", step=0.1)},
        "params.lr.step",
        ["lr:", "step is not allowed with log scale"],
    ),
    (
        {"b": fl(0.9, 0.99, scale="reverse_log", step=0.01)},
        "params.b.step",
        ["b:", "step is not allowed with reverse_log scale"],
    ),
    ({"lr": fl(float("nan"), 1.0)}, "params.lr.low", ["lr:", "low must be a finite number"]),
    ({"lr": fl(0.0, float("inf"))}, "params.lr.high", ["lr:", "high must be a finite number"]),
    ({"lr": fl(float("-inf"), 0.0)}, "params.lr.low", ["lr:", "low must be a finite number"]),
    ({"n": it(5, 1)}, "params.n.low", ["n: low (5) must be less than high (1)"]),
    ({"n": it(3, 3)}, "params.n.low", ["n:", "must be less than high"]),
    ({"n": it(0, 8, scale="log")}, "params.n.low", ["n:", "log scale needs low > 0"]),
    ({"n": it(1, 9, scale="log", step=2)}, "params.n.step", ["n:", "log scale needs step == 1"]),
    ({"n": it(0, 8, step=0)}, "params.n.step", ["n:", "step must be > 0"]),
    ({"n": it(0, 8, step=-2)}, "params.n.step", ["n:", "step must be > 0"]),
    ({"n": it(0, 8, step=16)}, "params.n.step", ["n:", "must be at most high - low"]),
    ({"n": it(0, 10, step=3)}, "params.n.step", ["n:", "must be a multiple of step"]),
    ({"c": cat()}, "params.c.choices", ["c:", "choices must not be empty"]),
    ({"c": cat(1, True)}, "params.c.choices", ["c:", "duplicate", "True"]),
    ({"c": cat(1, 1.0)}, "params.c.choices", ["c:", "duplicate"]),
    ({"c": cat(0, False)}, "params.c.choices", ["c:", "duplicate"]),
    ({"c": cat("a", "b", "a")}, "params.c.choices", ["c:", "duplicate", "'a'"]),
    ({"c": cat(None, None)}, "params.c.choices", ["c:", "duplicate"]),
    ({"c": cat(1.0, float("nan"))}, "params.c.choices", ["c:", "finite", "nan"]),
    ({"c": cat(float("inf"))}, "params.c.choices", ["c:", "finite", "inf"]),
    ({"c": cat("x" * 201)}, "params.c.choices", ["c:", "at most 200 characters"]),
    ({"c": cat(*range(257))}, "params.c.choices", ["c:", "at most 256 choices"]),
    ({"1lr": fl(0.0, 1.0)}, "params.1lr", ["'1lr'", "invalid parameter name"]),
    ({"l-r": fl(0.0, 1.0)}, "params.l-r", ["'l-r'", "invalid parameter name"]),
    ({"": fl(0.0, 1.0)}, "params.", ["''", "invalid parameter name"]),
    ({"a" * 65: fl(0.0, 1.0)}, "params." + "a" * 65, ["invalid parameter name"]),
    ({"lr ": fl(0.0, 1.0)}, "params.lr ", ["'lr '", "invalid parameter name"]),
    ({f"p{i}": fl(0.0, 1.0) for i in range(65)}, "params", ["at most 64 parameters"]),
    ({}, "params", ["params must define at least one parameter"]),
]


@pytest.mark.parametrize(("params", "field", "words"), PARAM_ERRORS)
def test_param_rules(params: dict[str, Any], field: str, words: list[str]) -> None:
    error = error_of({"params": params})
    assert error.field == field
    for word in words:
        assert word in error.message


WHEN_ERRORS: list[tuple[dict[str, Any], str, list[str]]] = [
    (
        {"optimizer": OPT, "beta1": fl(0.8, 0.99, when={"optimiser": ["adam"]})},
        "params.beta1.when",
        ["beta1:", "unknown parameter 'optimiser'"],
    ),
    (
        {"lr": fl(0.1, 1.0), "beta1": fl(0.8, 0.99, when={"lr": [0.5]})},
        "params.beta1.when",
        ["beta1:", "'lr'", "not categorical"],
    ),
    (
        {"optimizer": cat("sgd", "adam", when={"optimizer": ["sgd"]})},
        "params.optimizer.when",
        ["optimizer:", "cannot name optimizer itself"],
    ),
    (
        {"optimizer": OPT, "beta1": fl(0.8, 0.99, when={"optimizer": ["adan"]})},
        "params.beta1.when",
        ["beta1:", "'adan'", "not among its choices"],
    ),
    (
        {"optimizer": OPT, "beta1": fl(0.8, 0.99, when={"optimizer": []})},
        "params.beta1.when",
        ["beta1:", "lists no values", "'optimizer'"],
    ),
    (
        {"optimizer": OPT, "beta1": fl(0.8, 0.99, when={})},
        "params.beta1.when",
        ["beta1:", "when must name at least one parameter"],
    ),
    (
        {"a": cat(1, 2, when={"b": [1]}), "b": cat(1, 2, when={"a": [2]})},
        "params.a.when",
        ["a:", "cycle", "a -> b -> a"],
    ),
    (
        {
            "x": fl(0.0, 1.0, when={"a": [1]}),
            "a": cat(1, 2, when={"b": [1]}),
            "b": cat(1, 2, when={"c": [1]}),
            "c": cat(1, 2, when={"a": [1]}),
        },
        "params.a.when",
        ["a:", "cycle", "a -> b -> c -> a"],
    ),
]


@pytest.mark.parametrize(("params", "field", "words"), WHEN_ERRORS)
def test_when_rules(params: dict[str, Any], field: str, words: list[str]) -> None:
    error = error_of({"params": params})
    assert error.field == field
    for word in words:
        assert word in error.message


SHAPE_ERRORS: list[tuple[dict[str, Any], str, list[str]]] = [
    ({}, "params", ["needs params, grid or preset"]),
    ({"description": "only words"}, "params", ["needs params, grid or preset"]),
    ({"params": {"lr": fl(0.0, 1.0)}, "grid": {"lr": [0.1]}}, "grid", ["not both"]),
    ({"preset": "adam", "grid": {"lr": [0.1]}}, "grid", ["grid cannot be combined", "'adam'"]),
    (
        {"preset": "bert-grid", "params": {"lr": fl(0.0, 1.0)}},
        "params",
        ["'bert-grid' is a grid", "params cannot be added"],
    ),
    ({"preset": "nope"}, "preset", ["unknown preset 'nope'", "adam", "bert-grid"]),
    ({"grid": {}}, "grid", ["grid must define at least one parameter"]),
    ({"grid": {"lr": []}}, "grid.lr", ["lr:", "values must not be empty"]),
    ({"grid": {"lr": [0.1, 0.1]}}, "grid.lr", ["lr:", "duplicate"]),
    ({"grid": {"flag": [True, 1]}}, "grid.flag", ["flag:", "duplicate"]),
    ({"grid": {"lr": [float("nan")]}}, "grid.lr", ["lr:", "finite"]),
    ({"grid": {"bad-name": [1]}}, "grid.bad-name", ["'bad-name'", "invalid parameter name"]),
    ({"grid": {"lr": list(range(257))}}, "grid.lr", ["lr:", "at most 256 values"]),
]


@pytest.mark.parametrize(("data", "field", "words"), SHAPE_ERRORS)
def test_shape_and_grid_rules(data: dict[str, Any], field: str, words: list[str]) -> None:
    error = error_of(data)
    assert error.field == field
    for word in words:
        assert word in error.message


def test_pydantic_wraps_search_space_error_with_its_path() -> None:
    data = {"params": {"optimizer": OPT, "beta1": fl(0.8, 0.99, when={"optimizer": ["x"]})}}
    with pytest.raises(ValidationError) as info:
        SearchSpace.model_validate(data)
    first = info.value.errors()[0]
    assert first["type"] == "value_error"
    assert first["ctx"]["error"].field == "params.beta1.when"
    assert "beta1: when lists 'x'" in first["msg"]
    # The message alone, without the path, is what str() shows.
    assert str(first["ctx"]["error"]) == first["ctx"]["error"].message
    assert "beta1" in info.value.json()


def test_plain_pydantic_errors_still_apply() -> None:
    with pytest.raises(ValidationError) as info:
        SearchSpace.model_validate({"params": {"lr": fl(0.0, 1.0, unknown=1)}})
    assert info.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError) as info:
        SearchSpace.model_validate({"params": {"lr": {"type": "double", "low": 0, "high": 1}}})
    assert info.value.errors()[0]["type"] == "union_tag_invalid"
    with pytest.raises(ValidationError):
        SearchSpace.model_validate({"params": {"n": it(1, 8, scale="reverse_log")}})


VALID: list[dict[str, Any]] = [
    {"params": {"lr": fl(1e-5, 1e-1, scale="log")}},
    {"params": {"beta2": fl(0.9, 0.9999, scale="reverse_log")}},
    {"params": {"ratio": fl(0.1, 0.3, step=0.1)}, "description": "decimal-friendly step"},
    {"params": {"n": it(1, 1024, scale="log"), "m": it(0, 10, step=5)}},
    {"params": {"c": cat(None, True, 0, 2.5, "x" * 200)}},
    {"params": {"c": cat(*range(256))}},
    {"params": {"a" * 64: fl(0.0, 1.0), "_x.y": fl(0.0, 1.0)}},
    {"params": {f"p{i}": fl(0.0, 1.0) for i in range(64)}},
    {
        "params": {
            "beta1": fl(0.8, 0.99, when={"optimizer": ["adam", "adamw"], "fancy": [True]}),
            "optimizer": OPT,
            "fancy": cat(True, False),
        }
    },
    {"grid": {"lr": [5e-5, 3e-5], "batch_size": [16, 32], "flag": [True, None, "x"]}},
    {"preset": "adam"},
    {"preset": "bert-grid", "description": "override"},
    {"preset": "sgd", "params": {"lr": fl(1e-3, 1e-1, scale="log")}},
]


@pytest.mark.parametrize("data", VALID)
def test_valid_spaces_survive_a_json_round_trip(data: dict[str, Any]) -> None:
    space = SearchSpace.model_validate(data)
    dumped = space.model_dump(mode="json", exclude_none=True)
    again = SearchSpace.model_validate(json.loads(json.dumps(dumped)))
    assert again == space
    assert again.model_dump(mode="json", exclude_none=True) == dumped


def test_scalar_types_are_kept_apart() -> None:
    space = SearchSpace.model_validate_json(
        '{"grid": {"v": [true, 2, 2.5, "1", null, 1e-05]}, "description": "types"}'
    )
    assert space.grid is not None
    assert [type(v) for v in space.grid["v"]] == [bool, int, float, str, type(None), float]


def test_models_are_frozen() -> None:
    space = SearchSpace.model_validate({"params": {"lr": fl(0.0, 1.0)}})
    assert space.params is not None
    for model, field in [(space, "description"), (space.params["lr"], "low")]:
        with pytest.raises(ValidationError, match="frozen"):
            setattr(model, field, 0.5)
