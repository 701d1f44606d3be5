"""The quadratic toy task, f(x) = (x - 3)^2 from x = 0, on real torch optimizers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice, pairwise
from pathlib import Path

import pytest
import torch

from hps.catalog.builtins import QUADRATIC
from hps.workers.tasks.base import Task
from hps.workers.tasks.quadratic import BATCHES_PER_EPOCH, make_task
from hps.workers.training import Decision, EpochResult, TrainingPlan, train

CPU = torch.device("cpu")


@pytest.fixture
def task(tmp_path: Path) -> Task:
    return make_task(None, None, tmp_path)


def _sgd_losses(task: Task, lr: float, steps: int) -> list[float]:
    """The loss before each of ``steps`` plain SGD steps, then after the last one."""
    model = task.fresh_model(CPU, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    batches = task.train_batches(1, torch.Generator().manual_seed(0), CPU)
    losses = []
    for batch in islice(batches, steps):
        loss = task.loss(model, batch)
        losses.append(loss.item())
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
    losses.append(task.evaluate(model, "val", 1, CPU)["loss"])
    return losses


def test_fresh_models_are_distinct_and_start_at_zero(task: Task) -> None:
    first, second = task.fresh_model(CPU, seed=0), task.fresh_model(CPU, seed=1)
    assert first is not second
    for model in (first, second):
        (parameter,) = list(model.parameters())
        assert parameter.shape == () and parameter.item() == 0.0 and parameter.requires_grad
        assert model.training
    with torch.no_grad():
        next(first.parameters()).fill_(5.0)
    assert next(second.parameters()).item() == 0.0


def test_an_epoch_is_many_placeholders_for_the_step_cap_to_cut(task: Task) -> None:
    batches = list(task.train_batches(32, torch.Generator(), CPU))
    assert len(batches) == BATCHES_PER_EPOCH


def test_loss_and_evaluation_are_the_objective(task: Task) -> None:
    model = task.fresh_model(CPU, seed=0)
    batch = next(iter(task.train_batches(1, torch.Generator(), CPU)))
    loss = task.loss(model, batch)
    assert loss.shape == () and loss.requires_grad and loss.item() == 9.0
    with torch.no_grad():
        next(model.parameters()).fill_(1.0)
    assert task.evaluate(model, "val", 1, CPU) == {"loss": 4.0}
    assert task.evaluate(model, "train", 1, CPU) == {"loss": 4.0}


def test_sgd_with_a_small_learning_rate_converges(task: Task) -> None:
    losses = _sgd_losses(task, lr=0.1, steps=50)
    assert losses[0] == 9.0
    assert losses[-1] < 1e-3
    assert all(after < before for before, after in pairwise(losses))


def test_sgd_with_a_large_learning_rate_diverges(task: Task) -> None:
    # Each step maps x - 3 to -2 (x - 3): the loss grows fourfold a step.
    losses = _sgd_losses(task, lr=1.5, steps=5)
    assert losses == pytest.approx([9.0 * 4**step for step in range(6)])


Build = Callable[[Iterator[torch.nn.Parameter]], torch.optim.Optimizer]


def test_optimizers_end_in_different_places(task: Task) -> None:
    builders: dict[str, Build] = {
        "sgd": lambda parameters: torch.optim.SGD(parameters, lr=0.01),
        "momentum": lambda parameters: torch.optim.SGD(parameters, lr=0.01, momentum=0.9),
        "adam": lambda parameters: torch.optim.Adam(parameters, lr=0.1),
    }
    finals = {}
    for name, build in builders.items():
        model = task.fresh_model(CPU, seed=0)
        optimizer = build(model.parameters())
        for batch in islice(task.train_batches(1, torch.Generator(), CPU), 20):
            optimizer.zero_grad()
            torch.autograd.backward(task.loss(model, batch))
            optimizer.step()
        finals[name] = task.evaluate(model, "val", 1, CPU)["loss"]
    assert len({round(value, 6) for value in finals.values()}) == 3, finals


def _plan() -> TrainingPlan:
    return TrainingPlan(
        epochs=QUADRATIC.default_epochs,
        batch_size=QUADRATIC.default_batch_size,
        max_steps_per_epoch=QUADRATIC.default_max_steps_per_epoch,
        metric=QUADRATIC.default_metric,
        direction="minimize",
        seed=0,
        device=CPU,
    )


def _go_on(result: EpochResult) -> Decision:
    return Decision.CONTINUE


def test_the_training_loop_caps_epochs_and_tells_learning_rates_apart(task: Task) -> None:
    good = train(task, {"optimizer": "sgd", "lr": 0.1}, _plan(), _go_on)
    assert good.state == "complete" and good.value is not None and good.value < 1e-6
    cap = QUADRATIC.default_max_steps_per_epoch
    assert cap is not None and cap < BATCHES_PER_EPOCH
    assert good.attrs["steps"] == QUADRATIC.default_epochs * cap
    bad = train(task, {"optimizer": "sgd", "lr": 1.5}, _plan(), _go_on)
    assert bad.state == "diverged"
