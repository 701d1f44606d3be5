"""Fault injection for testing the worker's failure handling on machines without the fault.

``HPS_WORKER_FAULT=<kind>[@<step>]`` makes every trial's training step number ``step`` (default 1,
counting from 1 within the trial) fail the way a real fault would:

- ``oom``: raise ``torch.cuda.OutOfMemoryError`` (a CUDA out-of-memory error);
- ``device-error``: raise the ``RuntimeError`` a CUDA device raises when it becomes unusable;
- ``raise``: raise ``ValueError``, as a bug in a task would;
- ``hang``: block forever, as a stuck kernel would (the worker's second signal still ends it).

The worker's handling of these is the real one; only the fault is simulated. Never set it in production.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from hps.workers.tasks.base import HeldOutTask, Split, Task

ENVIRONMENT_VARIABLE = "HPS_WORKER_FAULT"
KINDS = ("oom", "device-error", "raise", "hang")


@dataclass(frozen=True)
class Fault:
    """A fault to inject at a training step."""

    kind: str
    step: int = 1

    def trigger(self) -> None:
        """Fail the way the real fault does."""
        if self.kind == "oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        if self.kind == "device-error":
            raise RuntimeError("CUDA error: an illegal memory access was encountered (injected)")
        if self.kind == "raise":
            raise ValueError("the task failed (injected)")
        threading.Event().wait()


def fault_from_environment() -> Fault | None:
    """The fault ``HPS_WORKER_FAULT`` asks for, if any; a malformed value is a ValueError."""
    text = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not text:
        return None
    kind, _, step = text.partition("@")
    if kind not in KINDS or (step and not step.isdigit()):
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE}={text!r}: expected one of {', '.join(KINDS)}, optionally @<step>"
        )
    return Fault(kind, int(step) if step else 1)


class FaultyTask:
    """A task whose ``step``-th loss computation in each trial (a fresh model) triggers the fault."""

    def __init__(self, task: Task, fault: Fault) -> None:
        self._task = task
        self._fault = fault
        self._steps = 0

    def fresh_model(self, device: torch.device, seed: int) -> torch.nn.Module:
        self._steps = 0
        return self._task.fresh_model(device, seed)

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[Any]:
        return self._task.train_batches(batch_size, generator, device)

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        self._steps += 1
        if self._steps == self._fault.step:
            self._fault.trigger()
        return self._task.loss(model, batch)

    def evaluate(
        self, model: torch.nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        return self._task.evaluate(model, split, batch_size, device)

    def has_test_split(self) -> bool:
        return isinstance(self._task, HeldOutTask) and self._task.has_test_split()
