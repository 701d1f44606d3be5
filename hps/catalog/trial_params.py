"""What a trial's params may be: the optimizers, the params each takes and their ranges, and the training
params. Checked by the worker before it trains (``hps.workers.optimizers``) and by the service when a study is
created (:func:`check_space`), so a search space whose trials the workers would refuse is a 422 at the
door, not a failed trial later. Nothing here imports torch.

A param that is absent keeps torch's own default for that optimizer, except ``lr`` (``1e-3`` for the
first-order optimizers, ``1.0`` — a whole step — for ``lbfgs`` and ``newton``) and ``optimizer``
(``"adamw"``).

Three optimizers see the whole training set at every step (:data:`FULL_BATCH`): ``gd`` (gradient descent),
``lbfgs`` (torch's L-BFGS, which re-evaluates the loss through a closure) and ``newton`` (exact Newton with
Levenberg damping, Hessian from ``torch.func``). ``newton`` needs the Hessian of every trainable parameter,
so a task refuses it for models above its ``max_newton_params`` (:func:`check_newton`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, cast

from hps.search_spaces import CategoricalParam, CompiledSpace, Param, ParamValue, SearchSpaceError

Schedule = Literal["constant", "cosine", "linear_warmup"]

FIRST_ORDER: tuple[str, ...] = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "gd")
SECOND_ORDER: tuple[str, ...] = ("lbfgs", "newton")
OPTIMIZERS: tuple[str, ...] = FIRST_ORDER + SECOND_ORDER
# Optimizers that step on the whole training set unless the trial sets ``batch_size``: their steps assume
# one deterministic function (L-BFGS's curvature pairs and line search, Newton's Hessian; GD by definition).
FULL_BATCH = frozenset({"gd", "lbfgs", "newton"})
# Optimizers whose step re-evaluates the loss (torch's closure, or the Hessian for Newton).
CLOSURE = frozenset(SECOND_ORDER)
LINE_SEARCHES: tuple[str, ...] = ("none", "strong_wolfe")
SCHEDULES: tuple[Schedule, ...] = ("constant", "cosine", "linear_warmup")
DEFAULT_OPTIMIZER = "adamw"
DEFAULT_LR = 1e-3
# A second-order step is scaled by lr; 1.0 is the whole step (torch's default for L-BFGS).
_DEFAULT_LRS: Mapping[str, float] = {"lbfgs": 1.0, "newton": 1.0}
DEFAULT_SCHEDULE: Schedule = "constant"
DEFAULT_WARMUP_RATIO = 0.1

# Params every optimizer takes.
_SHARED = frozenset({"optimizer", "lr"})
# Params only some optimizers take (torch's L-BFGS has no weight decay; Newton's damping plays its part).
_SPECIFIC: Mapping[str, frozenset[str]] = {
    "sgd": frozenset({"momentum", "nesterov", "weight_decay"}),
    "adam": frozenset({"beta1", "beta2", "eps", "weight_decay"}),
    "adamw": frozenset({"beta1", "beta2", "eps", "weight_decay"}),
    "rmsprop": frozenset({"momentum", "alpha", "eps", "weight_decay"}),
    "adagrad": frozenset({"lr_decay", "eps", "weight_decay"}),
    "gd": frozenset({"weight_decay"}),
    "lbfgs": frozenset({"history_size", "max_iter", "line_search_fn", "tolerance_grad", "tolerance_change"}),
    "newton": frozenset({"damping"}),
}
# Params the training loop reads; the optimizer factory accepts and ignores them.
TRAINING_PARAMS = frozenset({"batch_size", "epochs", "schedule", "warmup_ratio"})
KNOWN_PARAMS = _SHARED | TRAINING_PARAMS | frozenset().union(*_SPECIFIC.values())
# Params that are whole numbers >= 1.
_INT_PARAMS = frozenset({"batch_size", "epochs", "history_size", "max_iter"})

# Allowed range of each float param, with the words the error message uses for it.
_RANGES: Mapping[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: v > 0, "> 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "eps": (lambda v: v > 0, "> 0"),
    "alpha": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "lr_decay": (lambda v: v >= 0, ">= 0"),
    "warmup_ratio": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "tolerance_grad": (lambda v: v >= 0, ">= 0"),
    "tolerance_change": (lambda v: v >= 0, ">= 0"),
    "damping": (lambda v: v >= 0, ">= 0"),
}


class OptimizerConfigError(ValueError):
    """Params that do not describe a valid optimizer, schedule or training run. ``param`` is the name at
    fault (the message names it too)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class TrainingSettings:
    """The training params of a trial, checked. ``epochs`` and ``batch_size`` are None when the params
    leave them to the training plan."""

    epochs: int | None
    batch_size: int | None
    schedule: Schedule
    warmup_ratio: float


def training_settings(params: Mapping[str, object]) -> TrainingSettings:
    """The training params (``epochs``, ``batch_size``, ``schedule``, ``warmup_ratio``) of ``params``,
    checked; raises :class:`OptimizerConfigError` naming a bad one. Other names are not looked at."""
    schedule = params.get("schedule", DEFAULT_SCHEDULE)
    if schedule not in SCHEDULES:
        raise OptimizerConfigError(
            f"unknown schedule {schedule!r}; known schedules: {', '.join(SCHEDULES)}", "schedule"
        )
    if "warmup_ratio" in params and schedule != "linear_warmup":
        raise OptimizerConfigError(
            f"param 'warmup_ratio' does not apply to schedule {schedule!r} (only to 'linear_warmup')",
            "warmup_ratio",
        )
    warmup_ratio = float_param(params, "warmup_ratio")
    return TrainingSettings(
        epochs=positive_int_param(params, "epochs"),
        batch_size=positive_int_param(params, "batch_size"),
        schedule=schedule,
        warmup_ratio=DEFAULT_WARMUP_RATIO if warmup_ratio is None else warmup_ratio,
    )


def optimizer_name(params: Mapping[str, object]) -> str:
    name = params.get("optimizer", DEFAULT_OPTIMIZER)
    if name not in OPTIMIZERS:
        raise OptimizerConfigError(
            f"unknown optimizer {name!r}; known optimizers: {', '.join(OPTIMIZERS)}", "optimizer"
        )
    return str(name)


def default_lr(optimizer: str) -> float:
    """The lr a trial with ``optimizer`` gets when its params leave ``lr`` out."""
    return _DEFAULT_LRS.get(optimizer, DEFAULT_LR)


def line_search(params: Mapping[str, object]) -> str | None:
    """L-BFGS's ``line_search_fn`` (torch's name, or None for none); absent means none, torch's default."""
    value = params.get("line_search_fn", "none")
    if value not in LINE_SEARCHES:
        raise OptimizerConfigError(
            f"param 'line_search_fn' must be one of {', '.join(LINE_SEARCHES)}, got {value!r}",
            "line_search_fn",
        )
    return None if value == "none" else str(value)


def check_newton(
    optimizers: Iterable[ParamValue], trainable_params: int | None, limit: int, where: str
) -> None:
    """Raise :class:`OptimizerConfigError` (param ``optimizer``) when ``optimizers`` include ``newton`` and
    the model's ``trainable_params`` exceed ``limit`` (or are unknown). Newton solves with the full
    Hessian: ``trainable_params``² numbers and as many Hessian-vector products a step. ``where`` names the
    task and model for the message."""
    if "newton" not in set(optimizers):
        return
    if trainable_params is None:
        raise OptimizerConfigError(
            f"optimizer 'newton' needs the model's size, and {where} does not declare its trainable_params; "
            f"the task runs newton on models of up to {limit:,} trainable params",
            "optimizer",
        )
    if trainable_params > limit:
        raise OptimizerConfigError(
            f"optimizer 'newton' needs the full Hessian, and {where} has {trainable_params:,} trainable "
            f"params: more than the task's limit of {limit:,} (max_newton_params); choose another "
            f"optimizer or a smaller model",
            "optimizer",
        )


def check_names(params: Mapping[str, object], optimizer: str) -> None:
    accepted = _SHARED | TRAINING_PARAMS | _SPECIFIC[optimizer]
    for param in params:
        if param not in KNOWN_PARAMS:
            raise OptimizerConfigError(
                f"unknown param {param!r}; known params: {', '.join(sorted(KNOWN_PARAMS))}", param
            )
        if param not in accepted:
            takes = ", ".join(sorted(_SHARED | _SPECIFIC[optimizer]))
            raise OptimizerConfigError(
                f"param {param!r} does not apply to optimizer {optimizer!r} (it takes: {takes})", param
            )


def nesterov_flag(params: Mapping[str, object], momentum: float) -> bool:
    nesterov = params["nesterov"]
    if not isinstance(nesterov, bool):
        raise OptimizerConfigError(f"param 'nesterov' must be true or false, got {nesterov!r}", "nesterov")
    if nesterov and momentum == 0:
        raise OptimizerConfigError("param 'nesterov' needs a momentum > 0, got momentum 0", "nesterov")
    return nesterov


def float_param(params: Mapping[str, object], name: str) -> float | None:
    """The finite float value of ``name`` within its range, or None when absent."""
    if name not in params:
        return None
    value = params[name]
    # bool is an int subclass; True as a learning rate is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OptimizerConfigError(f"param {name!r} must be a finite number, got {value!r}", name)
    accepts, rule = _RANGES[name]
    if not accepts(value):
        raise OptimizerConfigError(f"param {name!r} must be {rule}, got {value!r}", name)
    return float(value)


def positive_int_param(params: Mapping[str, object], name: str) -> int | None:
    """The whole-number value (>= 1) of ``name``, or None when absent."""
    if name not in params:
        return None
    value = params[name]
    # A whole float (3.0) is accepted: JSON clients do not always keep ints apart from floats.
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or cast(float, value) < 1:
        raise OptimizerConfigError(f"param {name!r} must be a whole number >= 1, got {value!r}", name)
    return int(cast(float, value))


def takes(optimizer: str) -> frozenset[str]:
    """Every param a trial with this optimizer may carry."""
    return _SHARED | TRAINING_PARAMS | _SPECIFIC[optimizer]


def check_space(space: CompiledSpace, optimizers: Iterable[str]) -> None:
    """Raise :class:`SearchSpaceError` (field ``params.<name>``) unless every configuration ``space`` can
    produce is one a worker accepts: optimizers among ``optimizers`` (what the task allows), known params
    given only to optimizers (and schedules) that take them, values within their ranges."""
    allowed = tuple(optimizers)
    chosen_optimizers = _choices(space, "optimizer", DEFAULT_OPTIMIZER, allowed)
    chosen_schedules = _choices(space, "schedule", DEFAULT_SCHEDULE, SCHEDULES)
    for name, param in space.params.items():
        if name not in KNOWN_PARAMS:
            raise SearchSpaceError(
                f"params.{name}",
                f"{name}: the task's workers know no param {name!r}; they take "
                f"{', '.join(sorted(KNOWN_PARAMS))}",
            )
        when = space.conditions[name]
        for optimizer in when.get("optimizer", chosen_optimizers):
            if name not in takes(str(optimizer)):
                raise SearchSpaceError(
                    f"params.{name}.when",
                    f"{name}: optimizer {optimizer!r} does not take {name!r} (it takes "
                    f"{', '.join(sorted(_SHARED | _SPECIFIC[str(optimizer)]))}); limit it with "
                    f"when: {{optimizer: [...]}}",
                )
        if name == "warmup_ratio" and set(when.get("schedule", chosen_schedules)) != {"linear_warmup"}:
            raise SearchSpaceError(
                f"params.{name}.when",
                f"{name}: applies to schedule 'linear_warmup' only; add when: {{schedule: [linear_warmup]}}",
            )
        _check_values(name, _extremes(param))


def _choices(space: CompiledSpace, name: str, default: str, allowed: Iterable[str]) -> tuple[ParamValue, ...]:
    """The values a space gives ``name`` (its default when the space leaves it out), each one allowed."""
    param = space.params.get(name)
    if param is None:
        return (default,)
    if not isinstance(param, CategoricalParam):
        raise SearchSpaceError(f"params.{name}", f"{name}: must be categorical (a choice among names)")
    known = tuple(allowed)
    for choice in param.choices:
        if choice not in known:
            raise SearchSpaceError(
                f"params.{name}.choices",
                f"{name}: {choice!r} is not one the task's workers run; they run {', '.join(known)}",
            )
    return tuple(param.choices)


def _extremes(param: Param) -> list[ParamValue]:
    """The values that decide whether a param's range is acceptable: a range's ends, or every choice."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    return [param.low, param.high]


def _check_values(name: str, values: list[ParamValue]) -> None:
    for value in values:
        try:
            _check_one(name, value)
        except OptimizerConfigError as exc:
            raise SearchSpaceError(f"params.{name}", f"{name}: {exc}") from None


def _check_one(name: str, value: ParamValue) -> None:
    if name == "optimizer":
        return  # checked against the task's optimizers
    if name == "schedule":
        training_settings({"schedule": value})
    elif name in _INT_PARAMS:
        positive_int_param({name: value}, name)
    elif name == "line_search_fn":
        line_search({name: value})
    elif name == "nesterov":
        if not isinstance(value, bool):
            raise OptimizerConfigError(f"param 'nesterov' must be true or false, got {value!r}", name)
    else:
        float_param({name: value}, name)
