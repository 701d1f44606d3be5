"""A deterministic stand-in for a fine-tuning run, to drive real studies through ask → report → complete
from tests: each optimizer has its own best learning rate and ceiling, curves rise epoch by epoch, and
too large a learning rate diverges. The studies, trials, pruning and storage it drives are all real.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hps.client.http import HpsClient

EPOCHS = 4
DIVERGE_LR = 0.3
BEST_LR = {"adamw": 2e-3, "adam": 3e-3, "sgd": 5e-2, "rmsprop": 1e-3, "adagrad": 1e-2}
CEILING = {"adamw": 0.95, "adam": 0.93, "sgd": 0.90, "rmsprop": 0.86, "adagrad": 0.82}


@dataclass(frozen=True)
class Run:
    """What one simulated fine-tuning run reports."""

    curve: list[float]
    diverged: bool
    attrs: dict[str, float]


def simulate(params: Mapping[str, Any]) -> Run:
    """The run for ``params``: accuracy falls with the squared log-distance from the optimizer's best lr."""
    optimizer = str(params.get("optimizer", "adamw"))
    lr = float(params["lr"])
    if lr > DIVERGE_LR:
        return Run(curve=[0.1], diverged=True, attrs={})
    # Optimizers the table does not know (user-chosen names in tests) behave like a middling one.
    best_lr, ceiling = BEST_LR.get(optimizer, 1e-3), CEILING.get(optimizer, 0.8)
    final = max(0.1, ceiling - 0.06 * math.log10(lr / best_lr) ** 2)
    curve = [
        round(final * (1 - 0.5 ** (epoch + 2)) / (1 - 0.5 ** (EPOCHS + 1)), 6) for epoch in range(EPOCHS)
    ]
    converged = next(i + 1 for i, v in enumerate(curve) if v >= 0.97 * curve[-1])
    attrs = {
        "convergence_epochs": float(converged),
        "generalization_gap": round(0.02 + 0.1 * abs(math.log10(lr / best_lr)) / 5, 6),
        "final_train_loss": round(1 - final, 6),
    }
    return Run(curve=curve, diverged=False, attrs=attrs)


class Driver(Protocol):
    """ask → report → complete on one study, through whichever door a test uses."""

    def ask(self) -> tuple[int, dict[str, Any]]: ...

    def report(self, number: int, step: int, value: float) -> bool: ...

    def complete(
        self, number: int, state: str, value: float | None, reason: str | None, attrs: dict[str, float]
    ) -> None: ...


def run_trials(driver: Driver, n_trials: int) -> None:
    """Run ``n_trials`` trials one after another, obeying the pruner."""
    for _ in range(n_trials):
        number, params = driver.ask()
        run = simulate(params)
        if run.diverged:
            driver.report(number, 0, run.curve[0])
            driver.complete(number, "diverged", None, "diverged: loss became nan", {})
            continue
        for step, value in enumerate(run.curve):
            if driver.report(number, step, value) and step < len(run.curve) - 1:
                driver.complete(number, "pruned", None, f"pruned at step {step}", {})
                break
        else:
            driver.complete(number, "complete", run.curve[-1], None, run.attrs)


@dataclass
class ClientDriver:
    """Drives a study over HTTP with the real client."""

    client: HpsClient
    study_id: int

    def ask(self) -> tuple[int, dict[str, Any]]:
        asked = self.client.ask(self.study_id)
        return asked.number, dict(asked.params)

    def report(self, number: int, step: int, value: float) -> bool:
        return self.client.report(self.study_id, number, step=step, value=value).should_prune

    def complete(
        self, number: int, state: str, value: float | None, reason: str | None, attrs: dict[str, float]
    ) -> None:
        outcome: Any = state
        self.client.complete(self.study_id, number, value, state=outcome, reason=reason, attrs=attrs)
