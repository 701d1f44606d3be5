"""Compiling a search space to Optuna's define-by-run API.

hps parameter names and values are what studies and workers see. Optuna's
differ only for ``reverse_log`` floats: Optuna holds ``"1-" + name`` with the
value ``1 - value`` on a log scale, so what Optuna stores (and what
``optuna.load_study`` shows) really is log-distributed.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import BaseTrial

from hps.search_spaces.presets import resolve
from hps.search_spaces.schema import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    ParamValue,
    SearchSpace,
    SearchSpaceError,
)

REVERSE_LOG_PREFIX = "1-"
LR, OPTIMIZER = "lr", "optimizer"
# Optuna's name of ``lr`` once an optimizer has its own range: "lr@adamw". "@" cannot appear in an hps
# name, so it never collides with another parameter.
PER_OPTIMIZER = "@"


class ParamsMismatch(ValueError):
    """Concrete params do not fit a compiled space; the message names the param."""


@dataclass(frozen=True)
class CompiledSpace:
    """A resolved search space ready for Optuna. Build it with ``compile_space``.

    ``params`` is in visiting order: declaration order, except that a parameter
    named by another's ``when`` comes before it. ``conditions`` maps every
    param name to its ``when`` (empty when unconditional). Grid spaces appear
    as one categorical param per grid key. Both mappings are read-only.
    """

    space: SearchSpace
    params: Mapping[str, Param]
    conditions: Mapping[str, Mapping[str, tuple[ParamValue, ...]]]
    lr_ranges: Mapping[str, FloatParam] = field(default_factory=lambda: MappingProxyType({}))
    """The ``lr`` of each optimizer that has its own range (an lr range test's), by optimizer."""

    def optuna_name(self, name: str) -> str:
        """Return the name Optuna uses for hps param ``name`` (KeyError if unknown); an optimizer's own
        ``lr`` range has its own name (see :meth:`with_lr_ranges`)."""
        param = self.params[name]
        if isinstance(param, FloatParam) and param.scale == "reverse_log":
            return REVERSE_LOG_PREFIX + name
        return name

    def with_lr_ranges(self, ranges: Mapping[str, tuple[float, float]]) -> "CompiledSpace":
        """This space with ``lr`` searched over its own range for each optimizer named in ``ranges``
        (optimizer → (low, high), within the space's ``lr`` range); the other optimizers keep the space's.

        Optuna sees each such ``lr`` as its own parameter, ``lr@<optimizer>``: the best rate of AdamW and
        of SGD are different quantities, and a sampler that models them apart needs no range that changes
        under one name. hps's params keep the name ``lr``. Raises ``SearchSpaceError`` when the space
        has no log-scale float ``lr`` and categorical ``optimizer``, or a range does not fit."""
        lr, optimizer = self.params.get(LR), self.params.get(OPTIMIZER)
        if not isinstance(lr, FloatParam) or lr.scale != "log" or lr.step is not None:
            raise SearchSpaceError("params.lr", "lr: per-optimizer ranges need a log-scale float lr")
        if not isinstance(optimizer, CategoricalParam):
            raise SearchSpaceError("params.optimizer", "optimizer: per-optimizer ranges need a categorical")
        narrowed: dict[str, FloatParam] = {}
        for name, (low, high) in ranges.items():
            if name not in optimizer.choices:
                raise SearchSpaceError("params.optimizer", f"optimizer: {name!r} is not among its choices")
            if not lr.low <= low < high <= lr.high:
                raise SearchSpaceError(
                    "params.lr", f"lr of {name}: [{low}, {high}] does not lie within [{lr.low}, {lr.high}]"
                )
            narrowed[name] = lr.model_copy(update={"low": low, "high": high})
        return replace(self, lr_ranges=MappingProxyType(narrowed))

    def distributions(self) -> dict[str, BaseDistribution]:
        """Return every param's Optuna distribution, keyed by Optuna name."""
        found = {self.optuna_name(name): _distribution(param) for name, param in self.params.items()}
        for optimizer, param in self.lr_ranges.items():
            found[LR + PER_OPTIMIZER + optimizer] = _distribution(param)
        return found

    def _searched(self, name: str, values: Mapping[str, ParamValue]) -> tuple[str, Param]:
        """The Optuna name and the param that ``name`` is searched as, given the values of its parents."""
        if name == LR and self.lr_ranges:
            chosen = values.get(OPTIMIZER)
            if isinstance(chosen, str) and chosen in self.lr_ranges:
                return LR + PER_OPTIMIZER + chosen, self.lr_ranges[chosen]
        return self.optuna_name(name), self.params[name]

    def suggest(self, trial: BaseTrial) -> dict[str, ParamValue]:
        """Draw a configuration from ``trial``, define-by-run.

        Suggests, in visiting order, only the params whose ``when`` holds for
        the values already drawn. Returns hps names and values in that order.
        """
        values: dict[str, ParamValue] = {}
        for name in self.params:
            if self._holds(name, values):
                key, param = self._searched(name, values)
                values[name] = _suggest(trial, key, param)
        return values

    def decode(self, optuna_params: Mapping[str, Any]) -> dict[str, ParamValue]:
        """Turn Optuna params (such as ``trial.params``) into hps params.

        Raises ``ParamsMismatch`` for a name that is no param's Optuna name.
        """
        names = {self.optuna_name(name): name for name in self.params}
        names.update({LR + PER_OPTIMIZER + optimizer: LR for optimizer in self.lr_ranges})
        for key in optuna_params:
            if key not in names:
                raise ParamsMismatch(f"{key}: not a parameter of this search space")
        result: dict[str, ParamValue] = {}
        for key, name in names.items():
            if key in optuna_params:
                result[name] = _decode(self.params[name], optuna_params[key])
        return result

    def encode(self, params: Mapping[str, ParamValue]) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        """Turn hps params into Optuna values and distributions, keyed by Optuna name.

        The result suits ``optuna.trial.create_trial``. Raises
        ``ParamsMismatch`` when a param is unknown, a value lies outside its
        range or choices, a param is given though its ``when`` does not hold,
        or a param whose ``when`` holds is missing.
        """
        for name in params:
            if name not in self.params:
                raise ParamsMismatch(f"{name}: not a parameter of this search space")
        values: dict[str, Any] = {}
        distributions: dict[str, BaseDistribution] = {}
        # Visiting order guarantees a param's parents were checked before it,
        # so reading their values straight from ``params`` is safe.
        for name in self.params:
            active = self._holds(name, params)
            if name not in params:
                if active:
                    raise ParamsMismatch(f"{name}: missing; {self._describe(name)}")
                continue
            if not active:
                raise ParamsMismatch(
                    f"{name}: given, but its condition does not hold ({self._describe(name)})"
                )
            key, param = self._searched(name, params)
            values[key] = _encode(name, param, params[name])
            distributions[key] = _distribution(param)
        return values, distributions

    def grid_values(self) -> dict[str, list[Any]] | None:
        """Return every param's values by Optuna name, for ``GridSampler``.

        None when some param is continuous. Ignores ``when``; enumerates every
        value, so check ``size()`` first for large discrete ranges.
        """
        grid: dict[str, list[Any]] = {}
        for name, param in self.params.items():
            values = _discrete_values(param)
            if values is None:
                return None
            grid[self.optuna_name(name)] = values
        return grid

    def size(self) -> int | None:
        """Return the number of configurations (the product of every param's
        count of values, ignoring ``when``), or None if some param is continuous.
        """
        total = 1
        for param in self.params.values():
            count = _count(param)
            if count is None:
                return None
            total *= count
        return total

    def _holds(self, name: str, values: Mapping[str, ParamValue]) -> bool:
        return all(
            parent in values and values[parent] in allowed
            for parent, allowed in self.conditions[name].items()
        )

    def _describe(self, name: str) -> str:
        condition = self.conditions[name]
        if not condition:
            return "it is always required"
        parts = [f"{parent} in {list(allowed)!r}" for parent, allowed in condition.items()]
        return "required when " + " and ".join(parts)


def compile_space(space: SearchSpace) -> CompiledSpace:
    """Resolve ``space``'s preset and compile it (see ``CompiledSpace``)."""
    resolved = resolve(space)
    params: dict[str, Param]
    if resolved.grid is not None:
        params = {
            name: CategoricalParam(type="categorical", choices=list(values))
            for name, values in resolved.grid.items()
        }
    else:
        params = dict(resolved.params or {})
    ordered = {name: params[name] for name in _visit_order(params)}
    conditions = {
        name: MappingProxyType({parent: tuple(allowed) for parent, allowed in (param.when or {}).items()})
        for name, param in ordered.items()
    }
    return CompiledSpace(
        space=resolved,
        params=MappingProxyType(ordered),
        conditions=MappingProxyType(conditions),
    )


def _visit_order(params: Mapping[str, Param]) -> list[str]:
    """Declaration order, but each param's ``when`` parents placed just before it.

    Relies on validation having rejected cycles.
    """
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for parent in params[name].when or {}:
            visit(parent)
        order.append(name)

    for name in params:
        visit(name)
    return order


def _distribution(param: Param) -> BaseDistribution:
    if isinstance(param, CategoricalParam):
        return CategoricalDistribution(param.choices)
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.scale == "log", step=param.step)
    if param.scale == "reverse_log":
        return FloatDistribution(1.0 - param.high, 1.0 - param.low, log=True)
    return FloatDistribution(param.low, param.high, log=param.scale == "log", step=param.step)


def _suggest(trial: BaseTrial, key: str, param: Param) -> ParamValue:
    """Suggest ``param`` under its Optuna name ``key``."""
    # Must stay in step with _distribution: Optuna rejects a param whose
    # distribution changes between trials.
    if isinstance(param, CategoricalParam):
        return trial.suggest_categorical(key, param.choices)
    if isinstance(param, IntParam):
        log = param.scale == "log"
        return trial.suggest_int(key, param.low, param.high, step=param.step, log=log)
    if param.scale == "reverse_log":
        drawn = trial.suggest_float(key, 1.0 - param.high, 1.0 - param.low, log=True)
        return _from_reverse_log(param, drawn)
    log = param.scale == "log"
    return trial.suggest_float(key, param.low, param.high, step=param.step, log=log)


def _from_reverse_log(param: FloatParam, drawn: float) -> float:
    # 1 - (1 - x) can round one ulp past a bound; clamping keeps values in range.
    return min(max(1.0 - drawn, param.low), param.high)


def _decode(param: Param, value: Any) -> ParamValue:
    if isinstance(param, FloatParam) and param.scale == "reverse_log":
        return _from_reverse_log(param, float(value))
    decoded: ParamValue = value
    return decoded


def _encode(name: str, param: Param, value: ParamValue) -> Any:
    if isinstance(param, CategoricalParam):
        for choice in param.choices:
            # Return the choice itself, so Optuna stores its exact type even
            # when the caller sent an equal value such as 1 for True.
            if choice == value:
                return choice
        raise ParamsMismatch(f"{name}: {value!r} is not among the choices {param.choices!r}")
    if isinstance(param, IntParam):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsMismatch(f"{name}: expected an integer, got {value!r}")
        if not param.low <= value <= param.high or (value - param.low) % param.step:
            raise ParamsMismatch(
                f"{name}: {value} is outside [{param.low}, {param.high}] with step {param.step}"
            )
        return value
    return _encode_float(name, param, value)


def _encode_float(name: str, param: FloatParam, value: ParamValue) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamsMismatch(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value) or not param.low <= value <= param.high:
        raise ParamsMismatch(f"{name}: {value} is outside [{param.low}, {param.high}]")
    if param.step is not None:
        steps = (value - param.low) / param.step
        # The same tolerance Optuna's FloatDistribution uses.
        if abs(steps - round(steps)) >= 1e-8:
            raise ParamsMismatch(
                f"{name}: {value} is not low ({param.low}) plus a multiple of step ({param.step})"
            )
    if param.scale == "reverse_log":
        return 1.0 - value
    return float(value)


def _count(param: Param) -> int | None:
    if isinstance(param, CategoricalParam):
        return len(param.choices)
    if isinstance(param, IntParam):
        return (param.high - param.low) // param.step + 1
    if param.step is None:
        return None
    # Validation made high - low an exact multiple of step in decimal terms.
    span = Decimal(str(param.high)) - Decimal(str(param.low))
    return int(span / Decimal(str(param.step))) + 1


def _discrete_values(param: Param) -> list[Any] | None:
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, IntParam):
        return list(range(param.low, param.high + 1, param.step))
    count = _count(param)
    if param.step is None or count is None:
        return None
    # Decimal arithmetic gives 0.3 rather than 0.30000000000000004.
    low, step = Decimal(str(param.low)), Decimal(str(param.step))
    return [float(low + i * step) for i in range(count)]


def check_starts(space: SearchSpace, starts: list[dict[str, ParamValue]]) -> None:
    """Raise ``SearchSpaceError`` (field ``starts.<i>``) unless every start fits ``space``
    (already resolved) exactly: every active param given, in range, nothing else."""
    if space.grid is not None:
        raise SearchSpaceError("starts", "a grid is searched exhaustively; it takes no starts")
    compiled = compile_space(space)
    for index, start in enumerate(starts):
        try:
            compiled.encode(start)
        except ParamsMismatch as error:
            raise SearchSpaceError(f"starts.{index}", f"start {index}: {error}") from None
