"""A trial's sampled params turned into a torch optimizer and a learning-rate schedule.

Params are the flat mapping a search space samples (names fixed by the presets in ``search_spaces``). Every
name is checked: an unknown name, a param that does not apply to the chosen optimizer or schedule, or a
value of the wrong type or out of range raises :class:`OptimizerConfigError` naming the param, so a typo in
a search space fails the first trial loudly instead of silently training with torch's defaults.

A param that is absent keeps torch's own default for that optimizer, except ``lr`` (always ``1e-3``) and
``optimizer`` (``"adamw"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

Schedule = Literal["constant", "cosine", "linear_warmup"]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES: tuple[Schedule, ...] = ("constant", "cosine", "linear_warmup")
DEFAULT_OPTIMIZER = "adamw"
DEFAULT_LR = 1e-3
DEFAULT_SCHEDULE: Schedule = "constant"
DEFAULT_WARMUP_RATIO = 0.1

# Params every optimizer takes.
_SHARED = frozenset({"optimizer", "lr", "weight_decay"})
# Params only some optimizers take.
_SPECIFIC: Mapping[str, frozenset[str]] = {
    "sgd": frozenset({"momentum", "nesterov"}),
    "adam": frozenset({"beta1", "beta2", "eps"}),
    "adamw": frozenset({"beta1", "beta2", "eps"}),
    "rmsprop": frozenset({"momentum", "alpha", "eps"}),
    "adagrad": frozenset({"lr_decay", "eps"}),
}
# Params the training loop reads; the optimizer factory accepts and ignores them.
TRAINING_PARAMS = frozenset({"batch_size", "epochs", "schedule", "warmup_ratio"})
KNOWN_PARAMS = _SHARED | TRAINING_PARAMS | frozenset().union(*_SPECIFIC.values())

_CLASSES: Mapping[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}
# Optimizers whose torch constructor takes ``fused`` and has a CUDA kernel for it (read from the signatures
# and docstrings of torch 2.13: RMSprop has no ``fused`` argument at all).
_FUSED_ON_CUDA = frozenset({"sgd", "adam", "adamw", "adagrad"})

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
}

# torch's own default betas, used for the one beta a search space leaves out when it tunes the other.
_DEFAULT_BETAS = (0.9, 0.999)


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


def build_optimizer(
    params: Mapping[str, object], parameters: Iterable[torch.nn.Parameter], device: torch.device
) -> torch.optim.Optimizer:
    """An optimizer over ``parameters`` configured exactly by ``params``.

    Raises :class:`OptimizerConfigError` for an unknown optimizer or param name, a param the chosen
    optimizer does not take, or a bad value. AdamW decays weights decoupled from the gradient (torch's
    AdamW); the others add ``weight_decay`` to the gradient as torch does. On CUDA the fused kernel is used
    where torch has one for the optimizer, else the multi-tensor (foreach) one; on other devices torch
    picks.
    """
    name = _optimizer_name(params)
    _check_names(params, name)
    options = _optimizer_options(params, name)
    if device.type == "cuda":
        options["fused" if name in _FUSED_ON_CUDA else "foreach"] = True
    return _CLASSES[name](parameters, **options)


def build_schedule(
    optimizer: torch.optim.Optimizer, params: Mapping[str, object], total_steps: int
) -> LRScheduler:
    """A learning-rate schedule for ``optimizer``, to be stepped once after every optimizer step.

    ``constant`` keeps the lr; ``cosine`` anneals it from lr to 0 over ``total_steps``; ``linear_warmup``
    rises linearly from lr/(w+1) to lr over the first w = floor(warmup_ratio * total_steps) steps, then
    falls linearly to 0 at ``total_steps``. Past ``total_steps`` the decaying schedules stay at 0.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    settings = training_settings(params)
    if settings.schedule == "constant":
        return LambdaLR(optimizer, lambda step: 1.0)
    if settings.schedule == "cosine":
        return LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
    # warmup_ratio < 1, so at least one step is left for the decay.
    warmup = math.floor(settings.warmup_ratio * total_steps)
    return LambdaLR(optimizer, lambda step: _warmup_factor(step, warmup, total_steps))


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
    warmup_ratio = _float_param(params, "warmup_ratio")
    return TrainingSettings(
        epochs=_positive_int_param(params, "epochs"),
        batch_size=_positive_int_param(params, "batch_size"),
        schedule=schedule,
        warmup_ratio=DEFAULT_WARMUP_RATIO if warmup_ratio is None else warmup_ratio,
    )


def _warmup_factor(step: int, warmup: int, total_steps: int) -> float:
    # Warm-up starts at 1/(warmup+1) rather than 0 so that no optimizer step is wasted on a zero lr.
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total_steps - step) / (total_steps - warmup))


def _optimizer_name(params: Mapping[str, object]) -> str:
    name = params.get("optimizer", DEFAULT_OPTIMIZER)
    if name not in OPTIMIZERS:
        raise OptimizerConfigError(
            f"unknown optimizer {name!r}; known optimizers: {', '.join(OPTIMIZERS)}", "optimizer"
        )
    return str(name)


def _check_names(params: Mapping[str, object], optimizer: str) -> None:
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


def _optimizer_options(params: Mapping[str, object], optimizer: str) -> dict[str, Any]:
    """Keyword arguments for the torch class: only the params given, so torch's defaults stand for the
    rest (lr excepted, whose default is ours)."""
    lr = _float_param(params, "lr")
    options: dict[str, Any] = {"lr": DEFAULT_LR if lr is None else lr}
    for name in ("weight_decay", "momentum", "eps", "alpha", "lr_decay"):
        value = _float_param(params, name)
        if value is not None:
            options[name] = value
    beta1, beta2 = _float_param(params, "beta1"), _float_param(params, "beta2")
    if beta1 is not None or beta2 is not None:
        options["betas"] = (
            _DEFAULT_BETAS[0] if beta1 is None else beta1,
            _DEFAULT_BETAS[1] if beta2 is None else beta2,
        )
    if optimizer == "sgd" and "nesterov" in params:
        options["nesterov"] = _nesterov(params, options.get("momentum", 0.0))
    return options


def _nesterov(params: Mapping[str, object], momentum: float) -> bool:
    nesterov = params["nesterov"]
    if not isinstance(nesterov, bool):
        raise OptimizerConfigError(f"param 'nesterov' must be true or false, got {nesterov!r}", "nesterov")
    if nesterov and momentum == 0:
        raise OptimizerConfigError("param 'nesterov' needs a momentum > 0, got momentum 0", "nesterov")
    return nesterov


def _float_param(params: Mapping[str, object], name: str) -> float | None:
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


def _positive_int_param(params: Mapping[str, object], name: str) -> int | None:
    if name not in params:
        return None
    value = params[name]
    # A whole float (3.0) is accepted: JSON clients do not always keep ints apart from floats.
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or cast(float, value) < 1:
        raise OptimizerConfigError(f"param {name!r} must be a whole number >= 1, got {value!r}", name)
    return int(cast(float, value))
