"""The learning-rate range test: train a fresh model for a few hundred steps while the learning rate grows
exponentially, and record the training loss at every step.

Pure, like ``training``: no HTTP and no Optuna. The curve goes to the service, which reads the range worth
searching off it (``hps.search_spaces.lr_range``). The run stops early once the loss has clearly diverged
(more than ``divergence_factor`` times the lowest loss so far, or not finite): what follows would only
repeat it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch

from hps.search_spaces.lr_range import RangeTestPoint
from hps.workers.devices import supports_bf16
from hps.workers.optimizers import build_optimizer
from hps.workers.tasks.base import Task

# The loss may wander above its minimum at first; this much higher is past any doubt.
DIVERGENCE_FACTOR = 4.0
# Steps before the divergence check starts: the first losses of a new head are noisy.
_SETTLE_STEPS = 5


@dataclass(frozen=True)
class RangeTestPlan:
    """One optimizer's range test: ``steps`` steps from ``low`` to ``high`` (log-spaced), batches of
    ``batch_size`` drawn epoch after epoch (at most ``max_steps_per_epoch`` from each)."""

    low: float
    high: float
    steps: int
    batch_size: int
    max_steps_per_epoch: int | None
    seed: int
    device: torch.device

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high or not math.isfinite(self.high):
            raise ValueError(f"a range test needs 0 < low < high, got {self.low} and {self.high}")
        if self.steps < 2:
            raise ValueError(f"a range test needs at least 2 steps, got {self.steps}")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): ``low`` at the first step, ``high`` at the last."""
        return float(self.low * (self.high / self.low) ** (step / (self.steps - 1)))


@dataclass(frozen=True)
class RangeTestOutcome:
    """The curve (one point per step taken), why it stopped early (None: it ran every step), how many
    epochs' worth of steps it took, and its wall time."""

    points: list[RangeTestPoint]
    stopped_early: str | None
    epochs: float
    wall_time_s: float


def _never_stop() -> bool:
    return False


def run_range_test(
    task: Task,
    params: Mapping[str, object],
    plan: RangeTestPlan,
    should_stop: Callable[[], bool] = _never_stop,
) -> RangeTestOutcome:
    """Train a fresh model of ``task`` with the optimizer ``params`` describe (their ``lr`` is replaced
    by the test's rising one; a schedule in them is ignored), recording the loss of each step's batch
    before the step. ``should_stop()`` is polled after every step; a stop ends the curve where it is."""
    started = time.perf_counter()
    random.seed(plan.seed)
    torch.manual_seed(plan.seed)
    model = task.fresh_model(plan.device, plan.seed)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = build_optimizer({**params, "lr": plan.low}, trainable, plan.device)
    bf16 = supports_bf16(plan.device)
    points: list[RangeTestPoint] = []
    lowest = math.inf
    stopped: str | None = None
    for step, batch in enumerate(_batches(task, plan)):
        lr = plan.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(plan.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = task.loss(model, batch)
        value = loss.item()
        if not math.isfinite(value):
            stopped = f"the loss is {value} at lr {lr:.3g}"
            break
        points.append(RangeTestPoint(lr=lr, loss=value))
        lowest = min(lowest, value)
        if step >= _SETTLE_STEPS and value > DIVERGENCE_FACTOR * lowest:
            stopped = (
                f"the loss {value:.3g} exceeds {DIVERGENCE_FACTOR:g}x its lowest {lowest:.3g} at lr {lr:.3g}"
            )
            break
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        if should_stop():
            stopped = f"stopped at step {step + 1}"
            break
    return RangeTestOutcome(
        points=points,
        stopped_early=stopped,
        epochs=len(points) / _steps_per_epoch(task, plan),
        wall_time_s=time.perf_counter() - started,
    )


def _batches(task: Task, plan: RangeTestPlan) -> Iterator[Any]:
    """``plan.steps`` training batches, epoch after epoch."""
    generator = torch.Generator().manual_seed(plan.seed)

    def epochs() -> Iterator[Any]:
        while True:
            batches = islice(
                task.train_batches(plan.batch_size, generator, plan.device), plan.max_steps_per_epoch
            )
            first = next(batches, None)
            if first is None:
                raise ValueError(f"the task yields no training batches of size {plan.batch_size}")
            yield first
            yield from batches

    return islice(epochs(), plan.steps)


def _steps_per_epoch(task: Task, plan: RangeTestPlan) -> int:
    """How many steps a trial's epoch takes with this batch size, to state the test's cost in epochs."""
    generator = torch.Generator().manual_seed(plan.seed)
    batches = task.train_batches(plan.batch_size, generator, plan.device)
    return max(1, sum(1 for _ in islice(batches, plan.max_steps_per_epoch)))
