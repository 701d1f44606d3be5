"""A trial's sampled params turned into a torch optimizer and a learning-rate schedule.

Params are the flat mapping a search space samples (names fixed by the presets in ``search_spaces``). Every
name is checked by the rules of ``hps.catalog.trial_params``: an unknown name, a param that does not apply to
the chosen optimizer or schedule, or a value of the wrong type or out of range raises
:class:`OptimizerConfigError` naming the param, so a typo in a search space fails loudly instead of
silently training with torch's defaults.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from hps.catalog.trial_params import (
    DEFAULT_LR,
    OptimizerConfigError,
    check_names,
    float_param,
    nesterov_flag,
    optimizer_name,
    training_settings,
)

__all__ = ["DEFAULT_LR", "OptimizerConfigError", "build_optimizer", "build_schedule", "training_settings"]

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

# torch's own default betas, used for the one beta a search space leaves out when it tunes the other.
_DEFAULT_BETAS = (0.9, 0.999)


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
    name = optimizer_name(params)
    check_names(params, name)
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


def _warmup_factor(step: int, warmup: int, total_steps: int) -> float:
    # Warm-up starts at 1/(warmup+1) rather than 0 so that no optimizer step is wasted on a zero lr.
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total_steps - step) / (total_steps - warmup))


def _optimizer_options(params: Mapping[str, object], optimizer: str) -> dict[str, Any]:
    """Keyword arguments for the torch class: only the params given, so torch's defaults stand for the
    rest (lr excepted, whose default is ours)."""
    lr = float_param(params, "lr")
    options: dict[str, Any] = {"lr": DEFAULT_LR if lr is None else lr}
    for name in ("weight_decay", "momentum", "eps", "alpha", "lr_decay"):
        value = float_param(params, name)
        if value is not None:
            options[name] = value
    beta1, beta2 = float_param(params, "beta1"), float_param(params, "beta2")
    if beta1 is not None or beta2 is not None:
        options["betas"] = (
            _DEFAULT_BETAS[0] if beta1 is None else beta1,
            _DEFAULT_BETAS[1] if beta2 is None else beta2,
        )
    if optimizer == "sgd" and "nesterov" in params:
        options["nesterov"] = nesterov_flag(params, options.get("momentum", 0.0))
    return options
