"""Second-order optimizers in the training loop: exact Newton (one step to a quadratic's minimum), L-BFGS
through a closure, full batches for gd/lbfgs/newton, and the cost of each counted in function evaluations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from hps.catalog.trial_params import OptimizerConfigError
from hps.workers.optimizers import Newton, build_optimizer
from hps.workers.tasks.base import Split
from hps.workers.tasks.quadratic import TARGET, QuadraticTask
from hps.workers.training import WHOLE_SET, Decision, EpochResult, TrainingPlan, train

CPU = torch.device("cpu")


def _plan(epochs: int = 1, steps: int | None = 1, **changes: Any) -> TrainingPlan:
    values: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": 8,
        "max_steps_per_epoch": steps,
        "metric": "val_loss",
        "direction": "minimize",
        "seed": 0,
        "device": CPU,
    }
    return TrainingPlan(**(values | changes))


def _go_on(result: EpochResult) -> Decision:
    return Decision.CONTINUE


class CountingQuadratic(QuadraticTask):
    """The quadratic task, counting every evaluation of its training loss."""

    def __init__(self) -> None:
        self.calls = 0

    def loss(self, model: torch.nn.Module, batch: None) -> torch.Tensor:
        self.calls += 1
        return super().loss(model, batch)


class LeastSquares:
    """Linear regression (3 weights and a bias) on fixed data, remembering the batch sizes it was asked for:
    its loss is a quadratic in the params, so one undamped Newton step lands on the least-squares fit."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.features = torch.randn(40, 3, generator=generator)
        self.targets = (
            self.features @ torch.tensor([1.5, -2.0, 0.5]) + 0.3 + 0.1 * torch.randn(40, generator=generator)
        )
        self.batch_sizes: list[int] = []

    def fresh_model(self, device: torch.device, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Linear(3, 1).to(device).train()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[Any]:
        self.batch_sizes.append(batch_size)
        for start in range(0, len(self.targets), batch_size):
            yield self.features[start : start + batch_size], self.targets[start : start + batch_size]

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        features, targets = batch
        return F.mse_loss(model(features).squeeze(-1), targets)

    def evaluate(
        self, model: torch.nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        with torch.no_grad():
            return {"loss": self.loss(model, (self.features, self.targets)).item()}

    def least_squares_loss(self) -> float:
        design = torch.cat([self.features, torch.ones(len(self.features), 1)], dim=1)
        solution = torch.linalg.lstsq(design, self.targets.unsqueeze(-1)).solution
        return float(F.mse_loss((design @ solution).squeeze(-1), self.targets))


def test_undamped_newton_reaches_the_quadratics_minimum_in_one_step() -> None:
    outcome = train(QuadraticTask(), {"optimizer": "newton"}, _plan(), _go_on)
    assert outcome.state == "complete"
    # f(x) = (x - 3)^2 from x = 0: g = -6, H = 2, so x - g/H = 3 exactly, and f is 0 exactly.
    assert outcome.value == 0.0
    assert [point["val_loss"] for point in outcome.attrs["learning_curve"]] == [TARGET**2, 0.0]
    # One gradient and one Hessian column (the model has one param).
    assert (outcome.attrs["steps"], outcome.attrs["function_evals"]) == (1, 2)


def test_damping_shortens_the_newton_step() -> None:
    # (H + λI)⁻¹ g with H = 2, λ = 2, g = -6 moves x by 1.5: f(1.5) = 2.25.
    outcome = train(QuadraticTask(), {"optimizer": "newton", "damping": 2.0}, _plan(), _go_on)
    assert outcome.value == pytest.approx(2.25)


def test_one_newton_step_fits_least_squares_over_every_param() -> None:
    task = LeastSquares()
    outcome = train(task, {"optimizer": "newton"}, _plan(), _go_on)
    assert outcome.value == pytest.approx(task.least_squares_loss(), rel=1e-4)
    # Full batch: the whole training set in the one step; 1 gradient + 4 Hessian columns.
    assert task.batch_sizes[-1] == WHOLE_SET and outcome.attrs["batch_size"] == "full"
    assert outcome.attrs["function_evals"] == 1 + 4


def test_lbfgs_counts_every_evaluation_of_its_closure() -> None:
    task = CountingQuadratic()
    params = {"optimizer": "lbfgs", "line_search_fn": "strong_wolfe", "max_iter": 5, "lr": 0.3}
    outcome = train(task, params, _plan(epochs=1, steps=3), _go_on)
    assert outcome.state == "complete" and outcome.value is not None and outcome.value < 1e-6
    # Every training-loss evaluation is a counted forward+backward pass (the task evaluates its splits
    # without its loss), and the line search took more of them than steps.
    assert outcome.attrs["function_evals"] == task.calls
    assert outcome.attrs["function_evals"] > outcome.attrs["steps"] == 3


def test_a_first_order_step_is_one_evaluation() -> None:
    outcome = train(QuadraticTask(), {"optimizer": "adam", "lr": 0.1}, _plan(epochs=2, steps=5), _go_on)
    assert outcome.attrs["steps"] == outcome.attrs["function_evals"] == 10
    assert outcome.attrs["convergence_function_evals"] in (5, 10)


@pytest.mark.parametrize(
    ("params", "batch_size"),
    [
        ({"optimizer": "gd", "lr": 0.1}, WHOLE_SET),
        ({"optimizer": "lbfgs"}, WHOLE_SET),
        ({"optimizer": "lbfgs", "batch_size": 10}, 10),
        ({"optimizer": "sgd", "lr": 0.1}, 8),
    ],
)
def test_gd_lbfgs_and_newton_step_on_the_whole_training_set(params: dict[str, Any], batch_size: int) -> None:
    task = LeastSquares()
    outcome = train(task, params, _plan(steps=None), _go_on)
    assert outcome.state == "complete"
    assert set(task.batch_sizes) == {batch_size}
    assert outcome.attrs["steps"] == -(-40 // min(batch_size, 40))


def test_newton_refuses_a_model_above_the_tasks_limit() -> None:
    with pytest.raises(OptimizerConfigError, match="4 trainable params: more than the task's limit of 3"):
        train(LeastSquares(), {"optimizer": "newton"}, _plan(max_newton_params=3), _go_on)


def test_newton_is_stepped_only_on_a_loss_of_its_params() -> None:
    model = torch.nn.Linear(2, 1)
    newton = build_optimizer({"optimizer": "newton", "damping": 0.5}, model.parameters(), CPU)
    assert isinstance(newton, Newton) and newton.param_groups[0]["damping"] == 0.5
    assert newton.param_groups[0]["lr"] == 1.0 and newton.size == 3
    with pytest.raises(TypeError, match="aim"):
        newton.step()


def test_lbfgs_takes_torchs_settings() -> None:
    params = {
        "optimizer": "lbfgs",
        "history_size": 7,
        "max_iter": 3,
        "line_search_fn": "strong_wolfe",
        "tolerance_grad": 1e-5,
        "tolerance_change": 1e-7,
    }
    lbfgs = build_optimizer(params, torch.nn.Linear(2, 1).parameters(), CPU)
    group = lbfgs.param_groups[0]
    assert isinstance(lbfgs, torch.optim.LBFGS)
    assert (group["lr"], group["history_size"], group["max_iter"]) == (1.0, 7, 3)
    assert (group["line_search_fn"], group["tolerance_grad"], group["tolerance_change"]) == (
        "strong_wolfe",
        1e-5,
        1e-7,
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"optimizer": "lbfgs", "line_search_fn": "armijo"}, "line_search_fn"),
        ({"optimizer": "lbfgs", "history_size": 0}, "history_size"),
        ({"optimizer": "lbfgs", "max_iter": 2.5}, "max_iter"),
        ({"optimizer": "lbfgs", "weight_decay": 0.1}, "weight_decay"),
        ({"optimizer": "lbfgs", "damping": 0.1}, "damping"),
        ({"optimizer": "newton", "damping": -1.0}, "damping"),
        ({"optimizer": "newton", "history_size": 3}, "history_size"),
        ({"optimizer": "gd", "momentum": 0.9}, "momentum"),
    ],
)
def test_bad_second_order_params_name_the_param(params: dict[str, Any], param: str) -> None:
    with pytest.raises(OptimizerConfigError) as caught:
        build_optimizer(params, torch.nn.Linear(2, 1).parameters(), CPU)
    assert caught.value.param == param and param in str(caught.value)
