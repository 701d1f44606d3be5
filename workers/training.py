"""The training loop: one trial's fine-tuning of a fresh model with the optimizer its params describe.

Pure: no HTTP and no Optuna. The caller passes a ``report`` callback that receives each epoch's validation
metrics and answers whether to go on (the worker asks the service's pruner there), and a ``should_stop``
callback polled after every step (a lost lease, a shutdown). What the task raises, out-of-memory errors
included, propagates unchanged for the caller to classify; so do :class:`OptimizerConfigError` for bad
params and ValueError for a plan the task cannot serve.

Three kinds of step (``hps.catalog.trial_params``): a first-order optimizer takes one gradient a step; L-BFGS
re-evaluates the loss of the step's batch through a closure as often as its iterations and line search ask;
Newton takes the gradient and the Hessian of that batch's loss (``torch.func``, through
:func:`torch.func.functional_call` on the model). ``gd``, ``lbfgs`` and ``newton`` step on the whole training
set unless the trial sets ``batch_size``. ``function_evals`` counts what each step cost in forward+backward
passes: 1 for a first-order step, every closure call for L-BFGS, 1 + n for Newton (a gradient, then the
n Hessian columns of its n params, each about a gradient's work).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import islice
from typing import Any, Literal, cast

import torch
from torch.optim.lr_scheduler import LRScheduler

from hps.catalog.tasks import Direction
from hps.catalog.trial_params import FULL_BATCH, check_newton, optimizer_name
from hps.workers.devices import peak_memory_mb, reset_peak_memory, supports_bf16
from hps.workers.optimizers import Newton, build_optimizer, build_schedule, training_settings
from hps.workers.tasks.base import HeldOutTask, Split, Task

__all__ = [
    "Decision",
    "Direction",
    "EpochResult",
    "Reporter",
    "TrainingOutcome",
    "TrainingPlan",
    "train",
]

Precision = Literal["auto", "fp32", "bf16"]
State = Literal["complete", "pruned", "diverged", "stopped"]

_METRIC_PREFIX = "val_"
# The share of the total improvement an epoch must reach to count as converged.
_CONVERGED_SHARE = 0.95
# The batch size that means "the whole training set" to a task's ``train_batches``.
WHOLE_SET = 2**31 - 1


@dataclass(frozen=True)
class TrainingPlan:
    """How to train, apart from the optimizer: the trial's params may override ``epochs`` and
    ``batch_size``. ``metric`` is ``"val_"`` + a key the task's evaluate returns. ``precision="auto"``
    means bf16 autocast on a CUDA device with native bf16, fp32 otherwise; ``"bf16"`` insists on it. A step
    whose loss exceeds ``divergence_factor`` times the first step's loss ends the run as diverged."""

    epochs: int
    batch_size: int
    max_steps_per_epoch: int | None
    metric: str
    direction: Direction
    seed: int
    device: torch.device
    precision: Precision = "auto"
    divergence_factor: float = 10.0
    # The most trainable params ``newton`` may run on (the task's ``max_newton_params``); None: no limit.
    max_newton_params: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(f"max_steps_per_epoch must be None or >= 1, got {self.max_steps_per_epoch}")
        if not self.metric.startswith(_METRIC_PREFIX) or self.metric == _METRIC_PREFIX:
            raise ValueError(f"metric must be 'val_' + a metric the task evaluates, got {self.metric!r}")
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {self.direction!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        # A factor <= 1 would call every step that fails to lower the loss diverged.
        if not self.divergence_factor > 1:
            raise ValueError(f"divergence_factor must be > 1, got {self.divergence_factor}")


class Decision(Enum):
    """What the reporter wants after an epoch: go on, end the trial as pruned, or stop it."""

    CONTINUE = "continue"
    PRUNE = "prune"
    STOP = "stop"


@dataclass(frozen=True)
class EpochResult:
    """One finished epoch (numbered from 1): the mean training loss over its steps, every validation
    metric as ``"val_<name>"``, and ``value``, the plan's metric among them."""

    epoch: int
    train_loss: float
    metrics: dict[str, float]
    value: float


Reporter = Callable[[EpochResult], Decision]


@dataclass(frozen=True)
class TrainingOutcome:
    """How a run ended. ``value`` is the plan's metric after the last epoch when ``state`` is
    ``"complete"`` and None otherwise; ``reason`` says why a run did not complete. ``attrs`` (see
    :func:`train`) are JSON-able: plain numbers, strings, lists and dicts, None for anything not finite."""

    state: State
    value: float | None
    reason: str | None
    attrs: dict[str, Any]


def _never_stop() -> bool:
    return False


def train(
    task: Task,
    params: Mapping[str, object],
    plan: TrainingPlan,
    report: Reporter,
    should_stop: Callable[[], bool] = _never_stop,
) -> TrainingOutcome:
    """Fine-tune a fresh model of ``task`` with the optimizer and schedule ``params`` describe.

    Seeded from ``plan.seed``: the same task, params and plan give the same curve on the same device. The
    validation split is evaluated before training (epoch 0, recorded, not reported) and after each epoch
    (reported). A non-finite or exploding loss, or a non-finite metric, ends the run as diverged at once;
    ``should_stop()`` is polled after every step. ``attrs`` always hold what the run got to: the learning
    curve, ``final_train_loss``, ``best_epoch``/``best_value``, ``convergence_epochs`` (the first epoch
    reaching 95 % of the best improvement over epoch 0), ``generalization_gap`` (train minus val metric,
    for complete and pruned runs), ``wall_time_s``, ``peak_memory_mb``, ``device``, ``precision``,
    ``steps``, ``function_evals`` (forward+backward passes, see the module), ``convergence_wall_time_s`` and
    ``convergence_function_evals`` (spent up to the end of ``convergence_epochs``), ``batch_size`` (the one
    trained with; full batch for ``gd``, ``lbfgs`` and ``newton`` unless the params set it) and
    ``epochs_run``. A complete run of a task with a test split also holds ``test_metrics``
    (``"test_<name>"``), evaluated once after the last epoch: nothing reported to the service depends on
    them, so they cannot steer the search.
    """
    started = time.perf_counter()
    settings = training_settings(params)
    name = optimizer_name(params)
    epochs = settings.epochs or plan.epochs
    batch_size = settings.batch_size or (WHOLE_SET if name in FULL_BATCH else plan.batch_size)
    # Newton solves with its Hessian: fp32, whatever the device could do in bf16.
    bf16 = _use_bf16(plan) and name != "newton"
    random.seed(plan.seed)
    torch.manual_seed(plan.seed)
    reset_peak_memory(plan.device)
    model = task.fresh_model(plan.device, plan.seed)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if name == "newton" and plan.max_newton_params is not None:
        size = sum(parameter.numel() for parameter in trainable)
        check_newton([name], size, plan.max_newton_params, "this model")
    optimizer = build_optimizer(params, trainable, plan.device)
    schedule = build_schedule(optimizer, params, epochs * _count_steps(task, batch_size, plan))
    run = _Run(task, plan, model, optimizer, schedule, batch_size, bf16, report, should_stop)
    run.evaluate_start()
    ending: _Ending | None = None
    for epoch in range(1, epochs + 1):
        ending = run.train_epoch(epoch)
        if ending is not None:
            break
    return run.outcome(ending, started)


@dataclass(frozen=True)
class _Ending:
    state: State
    reason: str


@dataclass
class _Run:
    """One run's moving parts and what it has measured so far."""

    task: Task
    plan: TrainingPlan
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRScheduler
    batch_size: int
    bf16: bool
    report: Reporter
    should_stop: Callable[[], bool]
    generator: torch.Generator = field(default_factory=torch.Generator)
    curve: list[dict[str, float | None]] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # the plan's metric at each curve point
    val_metrics: dict[str, float] = field(default_factory=dict)  # the latest evaluation
    last_losses: list[float] = field(default_factory=list)  # steps taken in the latest epoch that took any
    first_loss: float | None = None
    steps: int = 0
    function_evals: int = 0
    epochs_run: int = 0
    started: float = field(default_factory=time.perf_counter)
    # Per curve point: seconds since the run started, and function evaluations spent so far.
    elapsed: list[float] = field(default_factory=list)
    evals_at: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.generator.manual_seed(self.plan.seed)

    def evaluate_start(self) -> None:
        """Evaluate the untrained model as epoch 0, checking that the plan's metric is there."""
        metrics = self.evaluate_val()
        if self.plan.metric not in metrics:
            raise ValueError(
                f"the task evaluates {sorted(metrics)}, not the plan's metric {self.plan.metric!r}"
            )
        self.record(0, None, metrics)

    def train_epoch(self, epoch: int) -> _Ending | None:
        """Train one epoch and evaluate it; an ending when the run must end here."""
        losses: list[float] = []
        batches = self.task.train_batches(self.batch_size, self.generator, self.plan.device)
        for step, batch in enumerate(islice(batches, self.plan.max_steps_per_epoch), start=1):
            ending = self.take_step(batch, epoch, step, losses)
            if ending is None and self.should_stop():
                ending = _Ending("stopped", f"stopped at epoch {epoch} step {step}")
            if ending is not None:
                return ending
        if not losses:
            raise ValueError(f"the task yielded no training batches in epoch {epoch}")
        return self.finish_epoch(epoch, sum(losses) / len(losses))

    def take_step(self, batch: Any, epoch: int, step: int, losses: list[float]) -> _Ending | None:
        """One optimizer step on ``batch``, unless its loss shows divergence (then no step is taken)."""
        if isinstance(self.optimizer, Newton):
            return self.take_newton_step(self.optimizer, batch, epoch, step, losses)
        with self.autocast():
            loss = self.task.loss(self.model, batch)
        self.function_evals += 1
        value = loss.item()
        ending = self.check_loss(value, epoch, step)
        if ending is not None:
            return ending
        if isinstance(self.optimizer, torch.optim.LBFGS):
            self.optimizer.step(self.closure(batch, loss))  # type: ignore[no-untyped-call]
        else:
            self.optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            self.optimizer.step()
        self.end_step(value, losses)
        return None

    def closure(self, batch: Any, first: torch.Tensor) -> Callable[[], float]:
        """L-BFGS's closure on ``batch``: the loss with fresh gradients. Its first call reuses ``first``, the
        loss the loop has just computed (and counted) at the same params; every later call is counted."""
        pending = [first]

        def evaluate() -> float:
            self.optimizer.zero_grad(set_to_none=True)
            if pending:
                loss = pending.pop()
            else:
                with self.autocast():
                    loss = self.task.loss(self.model, batch)
                self.function_evals += 1
            torch.autograd.backward(loss)
            return float(loss.item())

        return evaluate

    def take_newton_step(
        self, newton: Newton, batch: Any, epoch: int, step: int, losses: list[float]
    ) -> _Ending | None:
        """A damped Newton step on ``batch``: the gradient (1 evaluation), then, unless the loss shows
        divergence, the Hessian (n evaluations) and the step."""
        wrapper = _LossOfBatch(self.task, self.model)
        names = [f"model.{name}" for name, p in self.model.named_parameters() if p.requires_grad]

        def loss_of(values: Sequence[torch.Tensor]) -> torch.Tensor:
            replaced = dict(zip(names, values, strict=True))
            return cast(torch.Tensor, torch.func.functional_call(wrapper, replaced, (batch,)))

        value_tensor, grad = newton.gradient(loss_of)
        self.function_evals += 1
        value = float(value_tensor)
        ending = self.check_loss(value, epoch, step)
        if ending is not None:
            return ending
        newton.aim(loss_of, grad)
        newton.step()
        self.function_evals += newton.size
        self.end_step(value, losses)
        return None

    def check_loss(self, value: float, epoch: int, step: int) -> _Ending | None:
        """An ending when a step's loss is not finite or has exploded past its start."""
        if not math.isfinite(value):
            return _Ending("diverged", f"loss is {value} at epoch {epoch} step {step}")
        if self.first_loss is None:
            self.first_loss = value
        elif self.first_loss > 0 and value > self.plan.divergence_factor * self.first_loss:
            return _Ending(
                "diverged",
                f"loss {value:.3g} exceeds {self.plan.divergence_factor:g}x its start {self.first_loss:.3g} "
                f"at epoch {epoch} step {step}",
            )
        return None

    def end_step(self, value: float, losses: list[float]) -> None:
        """Book a step taken whose batch's loss before the step was ``value``."""
        self.schedule.step()
        self.steps += 1
        losses.append(value)
        self.last_losses = losses

    def finish_epoch(self, epoch: int, train_loss: float) -> _Ending | None:
        """Evaluate after ``epoch``, record it and ask the reporter whether to go on."""
        metrics = self.evaluate_val()
        self.record(epoch, train_loss, metrics)
        self.epochs_run = epoch
        for name, value in metrics.items():
            if not math.isfinite(value):
                return _Ending("diverged", f"{name} is {value} at epoch {epoch}")
        decision = self.report(EpochResult(epoch, train_loss, dict(metrics), metrics[self.plan.metric]))
        if decision is Decision.PRUNE:
            return _Ending("pruned", f"pruned at epoch {epoch}")
        if decision is Decision.STOP:
            return _Ending("stopped", f"stopped by the reporter at epoch {epoch}")
        return None

    def evaluate_val(self) -> dict[str, float]:
        """The validation metrics of the model now, keyed ``"val_<name>"``."""
        metrics = self.evaluate("val")
        self.val_metrics = {_METRIC_PREFIX + name: value for name, value in metrics.items()}
        return self.val_metrics

    def evaluate(self, split: Split) -> dict[str, float]:
        """The task's metrics on ``split``, in eval mode and without gradients."""
        self.model.eval()
        try:
            with torch.no_grad(), self.autocast():
                # A full-batch trial still evaluates in the plan's batches: a whole split at once may not fit.
                batch_size = self.plan.batch_size if self.batch_size == WHOLE_SET else self.batch_size
                metrics = self.task.evaluate(self.model, split, batch_size, self.plan.device)
        finally:
            self.model.train()
        return {name: float(value) for name, value in metrics.items()}

    def autocast(self) -> torch.autocast:
        """bf16 autocast when the run uses bf16; a context that changes nothing otherwise."""
        return torch.autocast(self.plan.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def record(self, epoch: int, train_loss: float | None, metrics: dict[str, float]) -> None:
        """Add a point to the learning curve."""
        point: dict[str, float | None] = {"epoch": epoch, "train_loss": _finite_or_none(train_loss)}
        point.update({name: _finite_or_none(value) for name, value in metrics.items()})
        self.curve.append(point)
        self.values.append(metrics[self.plan.metric])
        self.elapsed.append(time.perf_counter() - self.started)
        self.evals_at.append(self.function_evals)

    def outcome(self, ending: _Ending | None, started: float) -> TrainingOutcome:
        """The outcome of a run that ended with ``ending`` (None: it completed)."""
        state: State = "complete" if ending is None else ending.state
        gap = self.generalization_gap() if state in ("complete", "pruned") else None
        best_epoch = _best_epoch(self.values, self.plan.direction)
        final_loss = sum(self.last_losses) / len(self.last_losses) if self.last_losses else None
        converged = _convergence_epochs(self.values, best_epoch, self.plan.direction)
        attrs: dict[str, Any] = {
            "learning_curve": self.curve,
            "final_train_loss": _finite_or_none(final_loss),
            "best_epoch": best_epoch,
            "best_value": None if best_epoch is None else self.values[best_epoch],
            "convergence_epochs": converged,
            "convergence_wall_time_s": _at(self.elapsed, converged),
            "convergence_function_evals": _at(self.evals_at, converged),
            "generalization_gap": _finite_or_none(gap),
            "wall_time_s": time.perf_counter() - started,
            "peak_memory_mb": peak_memory_mb(self.plan.device),
            "device": str(self.plan.device),
            "precision": "bf16" if self.bf16 else "fp32",
            "steps": self.steps,
            "function_evals": self.function_evals,
            "batch_size": self.batch_size if self.batch_size != WHOLE_SET else "full",
            "epochs_run": self.epochs_run,
        }
        if state == "complete" and isinstance(self.task, HeldOutTask) and self.task.has_test_split():
            attrs["test_metrics"] = {
                f"test_{name}": _finite_or_none(value) for name, value in self.evaluate("test").items()
            }
        value = self.values[-1] if state == "complete" else None
        return TrainingOutcome(state, value, None if ending is None else ending.reason, attrs)

    def generalization_gap(self) -> float | None:
        """The plan's metric on the train split minus on the validation split, for the model now."""
        name = self.plan.metric.removeprefix(_METRIC_PREFIX)
        train_value = self.evaluate("train").get(name)
        return None if train_value is None else train_value - self.val_metrics[self.plan.metric]


class _LossOfBatch(torch.nn.Module):
    """The task's loss of ``model`` as a module, so that ``torch.func.functional_call`` can swap the model's
    params for the values Newton differentiates (the task's ``loss`` calls the model as usual)."""

    def __init__(self, task: Task, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, batch: Any) -> torch.Tensor:
        return self.task.loss(self.model, batch)


def _at(values: Sequence[float], index: int) -> float | None:
    return values[index] if index < len(values) else None


def _use_bf16(plan: TrainingPlan) -> bool:
    if plan.precision == "fp32":
        return False
    supported = supports_bf16(plan.device)
    if plan.precision == "bf16" and not supported:
        raise ValueError(f"precision 'bf16' needs a CUDA device with native bf16, not {plan.device}")
    return supported


def _count_steps(task: Task, batch_size: int, plan: TrainingPlan) -> int:
    """Steps in one epoch. The Task protocol does not say how many batches an epoch has, so one epoch's
    batches are drawn (up to the cap) without computing anything, with a generator of their own so that
    the training shuffles stay the same."""
    generator = torch.Generator().manual_seed(plan.seed)
    batches = task.train_batches(batch_size, generator, plan.device)
    count = sum(1 for _ in islice(batches, plan.max_steps_per_epoch))
    if count == 0:
        raise ValueError(f"the task yields no training batches of size {batch_size}")
    return count


def _best_epoch(values: list[float], direction: Direction) -> int | None:
    """The curve point with the best finite value (the earliest on a tie); None when none is finite."""
    best: int | None = None
    for epoch, value in enumerate(values):
        if not math.isfinite(value):
            continue
        if best is None or _improvement(values[best], value, direction) > 0:
            best = epoch
    return best


def _convergence_epochs(values: list[float], best_epoch: int | None, direction: Direction) -> int:
    """The first epoch reaching 95 % of the improvement from epoch 0 to the best epoch (0: no improvement).
    An epoch 0 that is not finite gives no baseline, and the best epoch stands for convergence."""
    if best_epoch is None or best_epoch == 0:
        return 0
    if not math.isfinite(values[0]):
        return best_epoch
    total = _improvement(values[0], values[best_epoch], direction)
    for epoch in range(1, best_epoch + 1):
        if math.isfinite(values[epoch]) and _improvement(values[0], values[epoch], direction) >= (
            _CONVERGED_SHARE * total
        ):
            return epoch
    return best_epoch


def _improvement(before: float, after: float, direction: Direction) -> float:
    return after - before if direction == "maximize" else before - after


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
