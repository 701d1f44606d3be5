"""The training loop on a real (tiny) task: logistic regression on a fixed synthetic dataset."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from hps.workers.devices import parse_device, peak_memory_mb, supports_bf16, visible_cuda_devices
from hps.workers.tasks.base import Split
from hps.workers.training import Decision, EpochResult, TrainingOutcome, TrainingPlan, train

CPU = torch.device("cpu")
TRAIN_SIZE = 200
ATTRS = {
    "learning_curve",
    "final_train_loss",
    "best_epoch",
    "best_value",
    "convergence_epochs",
    "generalization_gap",
    "wall_time_s",
    "peak_memory_mb",
    "device",
    "precision",
    "steps",
    "function_evals",
    "convergence_wall_time_s",
    "convergence_function_evals",
    "batch_size",
    "epochs_run",
}
PLAN = TrainingPlan(
    epochs=5,
    batch_size=32,
    max_steps_per_epoch=None,
    metric="val_accuracy",
    direction="maximize",
    seed=7,
    device=CPU,
)
ADAM: dict[str, object] = {"optimizer": "adam", "lr": 0.2}


class LogisticTask:
    """Two-class logistic regression on 4 features, starting from poor weights; 10 % of the labels are
    flipped, so that no weights fit the data perfectly and huge weights mean a huge loss."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        truth = torch.randn(4, generator=generator)
        features = torch.randn(TRAIN_SIZE + 100, 4, generator=generator)
        labels = (features @ truth > 0).long()
        flipped = torch.rand(len(labels), generator=generator) < 0.1
        labels = torch.where(flipped, 1 - labels, labels)
        self.truth = truth
        self.data = {
            "train": (features[:TRAIN_SIZE], labels[:TRAIN_SIZE]),
            "val": (features[TRAIN_SIZE:], labels[TRAIN_SIZE:]),
        }
        self.batch_sizes: list[int] = []

    def fresh_model(self, device: torch.device, seed: int) -> torch.nn.Module:
        model = torch.nn.Linear(4, 2)
        generator = torch.Generator().manual_seed(seed)
        # The "pretrained" weights point away from the truth, so that training has much to do.
        with torch.no_grad():
            model.weight.copy_(torch.stack([0.5 * self.truth, -0.5 * self.truth]))
            model.weight.add_(0.1 * torch.randn(2, 4, generator=generator))
            model.bias.zero_()
        return model.to(device).train()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[Any]:
        self.batch_sizes.append(batch_size)
        features, labels = self.data["train"]
        order = torch.randperm(TRAIN_SIZE, generator=generator)
        for start in range(0, TRAIN_SIZE, batch_size):
            chosen = order[start : start + batch_size]
            yield features[chosen].to(device), labels[chosen].to(device)

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        features, labels = batch
        return F.cross_entropy(model(features), labels)

    def evaluate(
        self, model: torch.nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        features, labels = self.data[split]
        with torch.no_grad():
            logits = model(features.to(device))
        accuracy = (logits.argmax(dim=1) == labels.to(device)).float().mean().item()
        return {"accuracy": accuracy, "loss": F.cross_entropy(logits, labels.to(device)).item()}


class NanLossTask(LogisticTask):
    """Its loss turns NaN from the third step on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        self.calls += 1
        loss = super().loss(model, batch)
        return loss * math.nan if self.calls >= 3 else loss


class ScriptedTask(LogisticTask):
    """Trains for real but reports the validation accuracies it is given, one per evaluation."""

    def __init__(self, accuracies: list[float]) -> None:
        super().__init__()
        self.accuracies = list(accuracies)

    def evaluate(
        self, model: torch.nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        if split == "train":
            return {"accuracy": 1.0, "loss": 0.0}
        accuracy = self.accuracies.pop(0)
        return {"accuracy": accuracy, "loss": 1.0 - accuracy}


class Recorder:
    """A reporter that remembers what it saw and answers its scripted decision for an epoch (else go on)."""

    def __init__(self, decisions: dict[int, Decision] | None = None) -> None:
        self.results: list[EpochResult] = []
        self.decisions = decisions or {}

    def __call__(self, result: EpochResult) -> Decision:
        self.results.append(result)
        return self.decisions.get(result.epoch, Decision.CONTINUE)


def _json_safe(outcome: TrainingOutcome) -> None:
    json.dumps(outcome.attrs, allow_nan=False)


def test_a_normal_run_completes_with_every_attr() -> None:
    recorder = Recorder()
    outcome = train(LogisticTask(), ADAM, PLAN, recorder)
    assert (outcome.state, outcome.reason) == ("complete", None)
    attrs = outcome.attrs
    assert set(attrs) == ATTRS
    curve = attrs["learning_curve"]
    assert [point["epoch"] for point in curve] == [0, 1, 2, 3, 4, 5]
    assert curve[0]["train_loss"] is None
    assert all(set(point) == {"epoch", "train_loss", "val_accuracy", "val_loss"} for point in curve)
    assert outcome.value == curve[-1]["val_accuracy"] > 0.7 > 0.3 > curve[0]["val_accuracy"]
    assert [result.epoch for result in recorder.results] == [1, 2, 3, 4, 5]
    assert [result.value for result in recorder.results] == [point["val_accuracy"] for point in curve[1:]]
    assert recorder.results[-1].metrics == {key: curve[-1][key] for key in ("val_accuracy", "val_loss")}
    assert attrs["final_train_loss"] == recorder.results[-1].train_loss == curve[-1]["train_loss"]
    assert attrs["best_value"] == max(point["val_accuracy"] for point in curve)
    assert curve[attrs["best_epoch"]]["val_accuracy"] == attrs["best_value"]
    assert 1 <= attrs["convergence_epochs"] <= attrs["best_epoch"]
    assert isinstance(attrs["generalization_gap"], float)
    assert attrs["steps"] == 5 * math.ceil(TRAIN_SIZE / 32)
    assert attrs["epochs_run"] == 5
    assert (attrs["device"], attrs["precision"]) == ("cpu", "fp32")
    assert attrs["wall_time_s"] > 0
    assert attrs["peak_memory_mb"] > 0
    _json_safe(outcome)


@pytest.mark.parametrize("schedule", ["cosine", "linear_warmup"])
def test_schedules_train_too(schedule: str) -> None:
    outcome = train(LogisticTask(), {**ADAM, "schedule": schedule}, PLAN, Recorder())
    assert outcome.state == "complete"
    assert outcome.value is not None and outcome.value > 0.7


def test_convergence_is_the_first_epoch_near_the_best() -> None:
    # From 0.5 the best is 0.95 at epoch 4; 95 % of that gain is 0.9275, first reached by 0.94 at epoch 3.
    task = ScriptedTask([0.5, 0.6, 0.9, 0.94, 0.95, 0.92])
    attrs = train(task, ADAM, PLAN, Recorder()).attrs
    assert (attrs["best_epoch"], attrs["best_value"], attrs["convergence_epochs"]) == (4, 0.95, 3)
    assert attrs["generalization_gap"] == pytest.approx(1.0 - 0.92)


def test_nothing_improved_converges_at_epoch_zero() -> None:
    task = ScriptedTask([0.5, 0.4, 0.5, 0.3])
    attrs = train(task, {**ADAM, "epochs": 3}, PLAN, Recorder()).attrs
    assert (attrs["best_epoch"], attrs["best_value"], attrs["convergence_epochs"]) == (0, 0.5, 0)


def test_minimize_counts_a_lower_metric_as_better() -> None:
    task = ScriptedTask([0.5, 0.6, 0.93, 0.94])  # val_loss 0.5, 0.4, 0.07, 0.06
    plan = dataclasses.replace(PLAN, metric="val_loss", direction="minimize")
    attrs = train(task, {**ADAM, "epochs": 3}, plan, Recorder()).attrs
    assert (attrs["best_epoch"], attrs["convergence_epochs"]) == (3, 2)
    assert attrs["best_value"] == pytest.approx(0.06)


def test_prune_decision_ends_as_pruned_at_that_epoch() -> None:
    recorder = Recorder({2: Decision.PRUNE})
    outcome = train(LogisticTask(), ADAM, PLAN, recorder)
    assert (outcome.state, outcome.value, outcome.reason) == ("pruned", None, "pruned at epoch 2")
    assert len(recorder.results) == 2
    assert len(outcome.attrs["learning_curve"]) == 3
    assert outcome.attrs["epochs_run"] == 2
    assert isinstance(outcome.attrs["generalization_gap"], float)
    _json_safe(outcome)


def test_stop_decision_ends_as_stopped() -> None:
    outcome = train(LogisticTask(), ADAM, PLAN, Recorder({1: Decision.STOP}))
    assert (outcome.state, outcome.value) == ("stopped", None)
    assert outcome.reason is not None and "epoch 1" in outcome.reason
    assert outcome.attrs["generalization_gap"] is None


def test_should_stop_ends_the_run_right_after_the_step() -> None:
    steps_seen: list[int] = []

    def should_stop() -> bool:
        steps_seen.append(1)
        return len(steps_seen) == 10

    recorder = Recorder()
    outcome = train(LogisticTask(), ADAM, PLAN, recorder, should_stop)
    assert (outcome.state, outcome.value) == ("stopped", None)
    assert outcome.reason == "stopped at epoch 2 step 3"  # 7 steps an epoch
    assert outcome.attrs["steps"] == 10
    assert outcome.attrs["epochs_run"] == 1
    assert len(recorder.results) == 1
    assert outcome.attrs["generalization_gap"] is None
    _json_safe(outcome)


def test_a_huge_learning_rate_diverges() -> None:
    outcome = train(LogisticTask(), {"optimizer": "sgd", "lr": 1e4}, PLAN, Recorder())
    assert (outcome.state, outcome.value) == ("diverged", None)
    assert outcome.reason is not None and "loss" in outcome.reason
    assert outcome.attrs["generalization_gap"] is None
    _json_safe(outcome)


def test_a_nan_loss_diverges_at_once() -> None:
    outcome = train(NanLossTask(), ADAM, PLAN, Recorder())
    assert (outcome.state, outcome.value) == ("diverged", None)
    assert outcome.reason == "loss is nan at epoch 1 step 3"
    assert outcome.attrs["steps"] == 2
    assert outcome.attrs["epochs_run"] == 0
    assert len(outcome.attrs["learning_curve"]) == 1
    assert isinstance(outcome.attrs["final_train_loss"], float)
    _json_safe(outcome)


def test_a_nan_metric_diverges_and_stays_json_safe() -> None:
    recorder = Recorder()
    outcome = train(ScriptedTask([0.5, 0.7, math.nan]), ADAM, PLAN, recorder)
    assert (outcome.state, outcome.reason) == ("diverged", "val_accuracy is nan at epoch 2")
    assert len(recorder.results) == 1
    assert outcome.attrs["learning_curve"][-1]["val_accuracy"] is None
    assert (outcome.attrs["best_epoch"], outcome.attrs["best_value"]) == (1, 0.7)
    _json_safe(outcome)


def test_the_same_seed_gives_the_same_run() -> None:
    params = {**ADAM, "schedule": "cosine"}
    first = train(LogisticTask(), params, PLAN, Recorder()).attrs
    second = train(LogisticTask(), params, PLAN, Recorder()).attrs
    other_seed = train(LogisticTask(), params, dataclasses.replace(PLAN, seed=8), Recorder()).attrs
    assert first["learning_curve"] == second["learning_curve"]
    assert first["final_train_loss"] == second["final_train_loss"]
    assert first["learning_curve"] != other_seed["learning_curve"]


def test_params_override_epochs_and_batch_size() -> None:
    task = LogisticTask()
    outcome = train(task, {**ADAM, "epochs": 2, "batch_size": 50}, PLAN, Recorder())
    assert len(outcome.attrs["learning_curve"]) == 3
    assert outcome.attrs["steps"] == 2 * 4
    assert set(task.batch_sizes) == {50}


def test_max_steps_per_epoch_caps_each_epoch() -> None:
    plan = dataclasses.replace(PLAN, epochs=3, max_steps_per_epoch=2)
    outcome = train(LogisticTask(), ADAM, plan, Recorder())
    assert outcome.attrs["steps"] == 3 * 2


def test_a_metric_the_task_does_not_evaluate_is_an_error() -> None:
    with pytest.raises(ValueError, match="val_f1"):
        train(LogisticTask(), ADAM, dataclasses.replace(PLAN, metric="val_f1"), Recorder())


def test_bad_params_raise_before_training() -> None:
    with pytest.raises(ValueError, match="momentum"):
        train(LogisticTask(), {"optimizer": "adam", "momentum": 0.9}, PLAN, Recorder())


@pytest.mark.parametrize(
    "changes",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"max_steps_per_epoch": 0},
        {"metric": "accuracy"},
        {"direction": "up"},
        {"precision": "fp16"},
        {"divergence_factor": 1.0},
    ],
)
def test_nonsense_plans_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(PLAN, **changes)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_bf16_on_a_device_without_it_is_refused() -> None:
    assert not supports_bf16(CPU)
    with pytest.raises(ValueError, match="bf16"):
        train(LogisticTask(), ADAM, dataclasses.replace(PLAN, precision="bf16"), Recorder())


def test_devices_are_parsed_or_refused_clearly() -> None:
    assert parse_device("cpu") == CPU
    with pytest.raises(ValueError, match="'gpu'"):
        parse_device("gpu")
    with pytest.raises(ValueError, match="cuda:x"):
        parse_device("cuda:x")
    with pytest.raises(ValueError, match="cuda:99"):
        parse_device("cuda:99")
    assert len(visible_cuda_devices()) == torch.cuda.device_count()
    assert peak_memory_mb(CPU) > 0
