"""The schema of a study's optimizer search space and its validation.

Most rules need a parameter's name (for the message) or its siblings (for
``when``), which a single parameter model does not know, so every rule is
checked by ``SearchSpace``'s validator and reported as a ``SearchSpaceError``
that names the parameter, the rule, and a dotted path to the offending field.
"""

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

ParamValue: TypeAlias = str | int | float | bool | None
"""A scalar value of a parameter: the types Optuna's categorical accepts."""

MAX_PARAMS = 64
MAX_CHOICES = 256
MAX_CHOICE_LENGTH = 200
MAX_STARTS = 32
# Optuna stores every param value as a float: integers beyond 2^53 would not come back as they were sent,
# and a range may not hold more than this many steps.
MAX_EXACT_INTEGER = 2**53
# Names cannot contain "-", so the Optuna name "1-<name>" that reverse_log uses
# can never collide with another parameter's name.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)


class SearchSpaceError(ValueError):
    """A search space broke a rule.

    ``field`` is a dotted path relative to the search space (such as
    ``"params.beta1.when"``) and ``message`` names the parameter and the rule.
    Raised from pydantic validators, so ``SearchSpace.model_validate`` reports
    it as a ``ValidationError`` whose error's ``ctx["error"]`` is this object.
    """

    def __init__(self, field: str, message: str) -> None:
        # Both go into args so the exception survives pickling and copying.
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


class FloatParam(BaseModel):
    """A float in [low, high], sampled on a linear, log or reverse-log scale.

    ``reverse_log`` samples ``1 - value`` log-uniformly, which suits values
    close to 1 such as Adam's beta2. ``step`` makes a linear float discrete.
    """

    model_config = _MODEL_CONFIG

    type: Literal["float"]
    low: float
    high: float
    scale: Literal["linear", "log", "reverse_log"] = "linear"
    step: float | None = None
    when: dict[str, list[ParamValue]] | None = None


class IntParam(BaseModel):
    """An integer in [low, high] (both included), every ``step``-th value."""

    model_config = _MODEL_CONFIG

    type: Literal["int"]
    low: int = Field(ge=-MAX_EXACT_INTEGER, le=MAX_EXACT_INTEGER)
    high: int = Field(ge=-MAX_EXACT_INTEGER, le=MAX_EXACT_INTEGER)
    scale: Literal["linear", "log"] = "linear"
    step: int = Field(default=1, le=MAX_EXACT_INTEGER)
    when: dict[str, list[ParamValue]] | None = None


class CategoricalParam(BaseModel):
    """One of a list of scalar choices."""

    model_config = _MODEL_CONFIG

    type: Literal["categorical"]
    choices: list[ParamValue]
    when: dict[str, list[ParamValue]] | None = None


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
"""A parameter of a search space, told apart by its ``type`` field."""


# Published in the schema only: the size rules are checked by check_params/check_grid, whose
# messages name the section and the rule (pydantic's own would say "Dictionary should have...").
_SECTION_SIZE: dict[str, Any] = {"minProperties": 1, "maxProperties": MAX_PARAMS}


def _preset_names_schema(schema: dict[str, Any]) -> None:
    # Imported here: presets.py builds SearchSpace objects itself.
    from hps.search_spaces.presets import list_presets

    for option in schema.get("anyOf", []):
        if option.get("type") == "string":
            option["enum"] = list_presets()


class SearchSpace(BaseModel):
    """A study's search space: a preset, explicit params, or a grid.

    Accepted: ``preset`` alone, ``params`` alone, ``grid`` alone, or
    ``preset`` with ``params`` (which add to or replace the preset's params of
    the same name). Validation checks the space as it is after the preset is
    merged, so a valid space always compiles.

    ``starts`` are configurations to try first, before any sampling: a
    preset's (the optimizers' customary defaults) unless the request gives its
    own; ``[]`` turns them off. Each must fit the space exactly.
    """

    # The JSON schema says what validation enforces about the shape: a preset, params or a grid (or a
    # preset with params), never params with a grid; the names of the presets that exist.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "anyOf": [
                {"required": [key], "properties": {key: {"type": kind}}}
                for key, kind in (("preset", "string"), ("params", "object"), ("grid", "object"))
            ],
            "not": {"anyOf": [{"required": ["params", "grid"]}, {"required": ["preset", "grid"]}]},
        },
    )

    preset: str | None = Field(default=None, json_schema_extra=_preset_names_schema)
    description: str | None = Field(default=None, max_length=500)
    params: dict[str, Param] | None = Field(default=None, json_schema_extra=_SECTION_SIZE)
    grid: dict[str, list[ParamValue]] | None = Field(default=None, json_schema_extra=_SECTION_SIZE)
    starts: list[dict[str, ParamValue]] | None = Field(default=None, max_length=MAX_STARTS)

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_shape(self)
        # Imported here: presets.py and compile.py build SearchSpace objects themselves.
        from hps.search_spaces.compile import check_starts
        from hps.search_spaces.presets import resolve

        if self.preset is not None:
            resolved = resolve(self)
        elif self.params is not None:
            check_params(self.params)
            resolved = self
        else:
            check_grid(self.grid or {})
            resolved = self
        if self.starts:
            check_starts(resolved, self.starts)
        return self


def check_params(params: Mapping[str, Param]) -> None:
    """Raise ``SearchSpaceError`` unless ``params`` is a valid set of parameters."""
    _check_names("params", list(params))
    for name, param in params.items():
        if isinstance(param, FloatParam):
            _check_float(name, param)
        elif isinstance(param, IntParam):
            _check_int(name, param)
        else:
            _check_values(f"params.{name}.choices", name, "choices", param.choices)
    for name, param in params.items():
        if param.when is not None:
            _check_when(name, param.when, params)
    _check_cycles(params)


def check_grid(grid: Mapping[str, list[ParamValue]]) -> None:
    """Raise ``SearchSpaceError`` unless ``grid`` is a valid grid."""
    _check_names("grid", list(grid))
    for name, values in grid.items():
        _check_values(f"grid.{name}", name, "values", values)


def _check_shape(space: SearchSpace) -> None:
    if space.params is not None and space.grid is not None:
        raise SearchSpaceError("grid", "give either params or grid, not both")
    if space.preset is not None and space.grid is not None:
        raise SearchSpaceError("grid", f"a grid cannot be combined with preset {space.preset!r}")
    if space.preset is None and space.params is None and space.grid is None:
        raise SearchSpaceError("params", "a search space needs params, grid or preset")


def _check_names(section: str, names: list[str]) -> None:
    if not names:
        raise SearchSpaceError(section, f"{section} must define at least one parameter")
    if len(names) > MAX_PARAMS:
        raise SearchSpaceError(
            section,
            f"{section}: at most {MAX_PARAMS} parameters are allowed, got {len(names)}",
        )
    for name in names:
        if NAME_PATTERN.fullmatch(name) is None:
            raise SearchSpaceError(
                f"{section}.{name}",
                f"{name!r}: invalid parameter name; a name must match "
                f"{NAME_PATTERN.pattern} (letter or _ first, at most 64 characters)",
            )


def _check_bounds(name: str, low: float, high: float) -> None:
    for field, value in (("low", low), ("high", high)):
        if not math.isfinite(value):
            raise SearchSpaceError(
                f"params.{name}.{field}",
                f"{name}: {field} must be a finite number, got {value}",
            )
        if isinstance(value, int) and abs(value) > MAX_EXACT_INTEGER:
            raise SearchSpaceError(
                f"params.{name}.{field}",
                f"{name}: {field} must lie within ±2^53 (Optuna stores values as floats), got {value}",
            )
    if low >= high:
        raise SearchSpaceError(
            f"params.{name}.low",
            f"{name}: low ({low}) must be less than high ({high})",
        )
    if not math.isfinite(float(high) - float(low)):
        raise SearchSpaceError(
            f"params.{name}.high",
            f"{name}: high - low must be a finite number; the range [{low}, {high}] is too wide",
        )


def _check_float(name: str, param: FloatParam) -> None:
    _check_bounds(name, param.low, param.high)
    if param.scale == "log" and param.low <= 0:
        raise SearchSpaceError(f"params.{name}.low", f"{name}: log scale needs low > 0, got {param.low}")
    if param.scale == "reverse_log" and not 0 < param.low < param.high < 1:
        raise SearchSpaceError(
            f"params.{name}.scale",
            f"{name}: reverse_log needs 0 < low < high < 1, got low={param.low}, high={param.high}",
        )
    if param.step is None:
        return
    if param.scale != "linear":
        raise SearchSpaceError(f"params.{name}.step", f"{name}: step is not allowed with {param.scale} scale")
    if not math.isfinite(param.step) or param.step <= 0:
        raise SearchSpaceError(f"params.{name}.step", f"{name}: step must be > 0, got {param.step}")
    # Decimal on the shortest repr is how Optuna checks divisibility; doing the
    # same means Optuna never silently shrinks a range we accepted.
    span = Decimal(str(param.high)) - Decimal(str(param.low))
    _check_step(name, span, Decimal(str(param.step)))


def _check_int(name: str, param: IntParam) -> None:
    _check_bounds(name, param.low, param.high)
    if param.scale == "log" and param.low <= 0:
        raise SearchSpaceError(f"params.{name}.low", f"{name}: log scale needs low > 0, got {param.low}")
    if param.scale == "log" and param.step != 1:
        raise SearchSpaceError(f"params.{name}.step", f"{name}: log scale needs step == 1, got {param.step}")
    if param.step <= 0:
        raise SearchSpaceError(f"params.{name}.step", f"{name}: step must be > 0, got {param.step}")
    _check_step(name, Decimal(param.high - param.low), Decimal(param.step))


def _check_step(name: str, span: Decimal, step: Decimal) -> None:
    if step > span:
        raise SearchSpaceError(
            f"params.{name}.step",
            f"{name}: step ({step}) must be at most high - low ({span})",
        )
    # Checked before the remainder: Decimal's remainder fails once the quotient has more digits than its
    # precision (28), which 2^53 steps never reach.
    if span / step > MAX_EXACT_INTEGER:
        raise SearchSpaceError(
            f"params.{name}.step",
            f"{name}: the range holds more than 2^53 steps of {step}; use a larger step",
        )
    if span % step != 0:
        raise SearchSpaceError(
            f"params.{name}.step",
            f"{name}: high - low ({span}) must be a multiple of step ({step})",
        )


def _check_values(field: str, name: str, what: str, values: list[ParamValue]) -> None:
    """Check a categorical's choices or a grid's values."""
    if not values:
        raise SearchSpaceError(field, f"{name}: {what} must not be empty")
    if len(values) > MAX_CHOICES:
        raise SearchSpaceError(field, f"{name}: at most {MAX_CHOICES} {what} are allowed, got {len(values)}")
    # A set, because 1, 1.0 and True are equal and hash alike: Optuna looks
    # choices up by equality, so it could never tell them apart.
    seen: set[ParamValue] = set()
    for value in values:
        if isinstance(value, float) and not math.isfinite(value):
            raise SearchSpaceError(field, f"{name}: {what} must be finite numbers, got {value}")
        if isinstance(value, str) and len(value) > MAX_CHOICE_LENGTH:
            raise SearchSpaceError(
                field,
                f"{name}: string {what} must be at most {MAX_CHOICE_LENGTH} characters, "
                f"got one of {len(value)}",
            )
        if value in seen:
            raise SearchSpaceError(
                field,
                f"{name}: duplicate {what} {value!r} (1, 1.0 and True count as equal)",
            )
        seen.add(value)


def _check_when(name: str, when: Mapping[str, list[ParamValue]], params: Mapping[str, Param]) -> None:
    field = f"params.{name}.when"
    if not when:
        raise SearchSpaceError(field, f"{name}: when must name at least one parameter")
    for parent, allowed in when.items():
        if parent == name:
            raise SearchSpaceError(field, f"{name}: when cannot name {name} itself")
        target = params.get(parent)
        if target is None:
            raise SearchSpaceError(field, f"{name}: when names unknown parameter {parent!r}")
        if not isinstance(target, CategoricalParam):
            raise SearchSpaceError(
                field,
                f"{name}: when names {parent!r}, which is not categorical (it is {target.type})",
            )
        if not allowed:
            raise SearchSpaceError(field, f"{name}: when lists no values for {parent!r}")
        for value in allowed:
            if value not in target.choices:
                raise SearchSpaceError(
                    field,
                    f"{name}: when lists {value!r} for {parent!r}, which is not among "
                    f"its choices {target.choices!r}",
                )


def _check_cycles(params: Mapping[str, Param]) -> None:
    done: set[str] = set()
    for name in params:
        cycle = _find_cycle(name, params, done, [])
        if cycle is not None:
            raise SearchSpaceError(
                f"params.{cycle[0]}.when",
                f"{cycle[0]}: when conditions form a cycle ({' -> '.join(cycle)})",
            )


def _find_cycle(name: str, params: Mapping[str, Param], done: set[str], path: list[str]) -> list[str] | None:
    """Depth-first search along ``when`` edges; ``path`` is the current chain."""
    if name in path:
        return [*path[path.index(name) :], name]
    if name in done:
        return None
    path.append(name)
    for parent in params[name].when or {}:
        cycle = _find_cycle(parent, params, done, path)
        if cycle is not None:
            return cycle
    path.pop()
    done.add(name)
    return None
