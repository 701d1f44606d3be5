"""A trial's sampled params turned into a torch optimizer and a learning-rate schedule.

Params are the flat mapping a search space samples (names fixed by the presets in ``search_spaces``). Every
name is checked by the rules of ``hps.catalog.trial_params``: an unknown name, a param that does not apply to
the chosen optimizer or schedule, or a value of the wrong type or out of range raises
:class:`OptimizerConfigError` naming the param, so a typo in a search space fails loudly instead of
silently training with torch's defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from hps.catalog.trial_params import (
    DEFAULT_LR,
    OptimizerConfigError,
    check_names,
    default_lr,
    float_param,
    line_search,
    nesterov_flag,
    optimizer_name,
    positive_int_param,
    training_settings,
)

__all__ = [
    "DEFAULT_LR",
    "Newton",
    "OptimizerConfigError",
    "build_optimizer",
    "build_schedule",
    "training_settings",
]

# The loss as a function of the trainable params' values (in the optimizer's order): what Newton
# differentiates twice.
ParamsLoss = Callable[[Sequence[torch.Tensor]], torch.Tensor]


class Newton(torch.optim.Optimizer):
    """Exact Newton's method with Levenberg damping: x ← x - lr · (H + λI)⁻¹ g over all params flattened
    into one vector, with the gradient g and the Hessian H of the loss from ``torch.func``.

    It needs the loss as a function of the params' values (:data:`ParamsLoss`), so a step is
    :meth:`gradient`, :meth:`aim`, then :meth:`step` (which takes no closure). Memory is n² for n params
    and the Hessian costs about n gradient evaluations (forward-over-reverse), which is why tasks cap n. When
    H + λI is singular (an undamped softmax head is: adding one constant to every logit changes
    nothing), the step uses the pseudo-inverse: the shortest step to the model's minimum.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1.0, damping: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "damping": damping})
        if len(self.param_groups) != 1:
            raise ValueError("Newton takes one group of params")
        self._target: tuple[ParamsLoss, torch.Tensor] | None = None

    @property
    def size(self) -> int:
        """n, the number of values it optimizes."""
        return sum(p.numel() for p in self._params())

    def _params(self) -> list[torch.Tensor]:
        return list(self.param_groups[0]["params"])

    def _split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        shapes = [p.shape for p in self._params()]
        pieces = torch.split(flat, [math.prod(shape) for shape in shapes])
        return [piece.view(shape) for piece, shape in zip(pieces, shapes, strict=True)]

    def _flat_loss(self, loss: ParamsLoss) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda flat: loss(self._split(flat))

    def gradient(self, loss: ParamsLoss) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and its gradient (flat) at the params now: one forward and backward pass."""
        flat = torch.cat([p.detach().reshape(-1) for p in self._params()])
        grad, value = torch.func.grad_and_value(self._flat_loss(loss))(flat)
        return value.detach(), grad.detach()

    def aim(self, loss: ParamsLoss, grad: torch.Tensor) -> None:
        """Set what the next :meth:`step` minimizes: ``loss``, whose gradient at the params now is
        ``grad``."""
        self._target = (loss, grad)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Move the params by the damped Newton step toward the minimum of the loss given to :meth:`aim`
        (once: a step needs a new aim). Takes no closure: Newton needs the loss as a function of the
        params."""
        if closure is not None or self._target is None:
            raise TypeError("Newton steps on the loss given to aim(), not on a closure")
        loss, grad = self._target
        self._target = None
        group = self.param_groups[0]
        flat = torch.cat([p.detach().reshape(-1) for p in self._params()])
        with torch.enable_grad():
            hessian = torch.func.hessian(self._flat_loss(loss))(flat).detach()
        damped = hessian + group["damping"] * torch.eye(len(flat), dtype=flat.dtype, device=flat.device)
        direction, info = torch.linalg.solve_ex(damped, grad)
        if int(info) != 0 or not bool(torch.isfinite(direction).all()):
            direction = torch.linalg.pinv(damped, hermitian=True) @ grad
        for param, piece in zip(self._params(), self._split(direction), strict=True):
            param.sub_(group["lr"] * piece)
        return None


_CLASSES: Mapping[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    # Gradient descent is SGD on the whole training set: the training loop gives it full batches.
    "gd": torch.optim.SGD,
    "lbfgs": torch.optim.LBFGS,
    "newton": Newton,
}
# Optimizers whose torch constructor takes ``fused`` and has a CUDA kernel for it (read from the signatures
# and docstrings of torch 2.13: RMSprop has no ``fused`` argument at all; L-BFGS and Newton have neither).
_FUSED_ON_CUDA = frozenset({"sgd", "adam", "adamw", "adagrad", "gd"})
_FOREACH_ON_CUDA = frozenset({"rmsprop"})

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
    if device.type == "cuda" and name in _FUSED_ON_CUDA:
        options["fused"] = True
    elif device.type == "cuda" and name in _FOREACH_ON_CUDA:
        options["foreach"] = True
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
    options: dict[str, Any] = {"lr": default_lr(optimizer) if lr is None else lr}
    if optimizer == "lbfgs":
        return options | _lbfgs_options(params)
    for name in ("weight_decay", "momentum", "eps", "alpha", "lr_decay", "damping"):
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


def _lbfgs_options(params: Mapping[str, object]) -> dict[str, Any]:
    options: dict[str, Any] = {"line_search_fn": line_search(params)}
    for name in ("history_size", "max_iter"):
        value = positive_int_param(params, name)
        if value is not None:
            options[name] = value
    for name in ("tolerance_grad", "tolerance_change"):
        number = float_param(params, name)
        if number is not None:
            options[name] = number
    return options
