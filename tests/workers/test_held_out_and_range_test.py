"""Held-out test splits (the few-label digits set, Debian's package descriptions) and the worker side of
the learning-rate range test, on the real digits task."""

from __future__ import annotations

import collections
import itertools
import math
from pathlib import Path

import pytest
import torch

from hps.catalog.builtins import builtin_datasets
from hps.catalog.tasks import DatasetEntry
from hps.workers.lr_range_test import RangeTestPlan, run_range_test
from hps.workers.tasks.digits import DigitsTask, FewLabels, load_data, make_task
from hps.workers.tasks.text import read_labelled_texts
from hps.workers.training import Decision, TrainingPlan, train

CPU = torch.device("cpu")


def dataset(name: str) -> DatasetEntry:
    return next(entry for entry in builtin_datasets() if entry.name == name)


@pytest.fixture(scope="module")
def few(tmp_path_factory: pytest.TempPathFactory) -> DigitsTask:
    entry = dataset("digits-5to9-few")
    return make_task(None, entry, tmp_path_factory.mktemp("digits"))


def test_the_few_label_split_holds_out_every_other_image_as_test() -> None:
    data = load_data(FewLabels(train=10, val=20))
    sizes = {split: len(images.labels) for split, images in data.target.items()}
    assert sizes["train"] == 50 and sizes["val"] == 100
    assert sizes["test"] == sum(len(images.labels) for images in load_data().target.values()) - 150
    for split, count in (("train", 10), ("val", 20)):
        assert set(collections.Counter(data.target[split].labels.tolist()).values()) == {count}
    assert load_data(FewLabels(10, 20)).target["train"].images.equal(data.target["train"].images)


def test_a_complete_run_of_a_task_with_a_test_split_reports_its_test_metrics(few: DigitsTask) -> None:
    plan = TrainingPlan(
        epochs=2, batch_size=16, max_steps_per_epoch=None, metric="val_accuracy", direction="maximize",
        seed=1, device=CPU,
    )  # fmt: skip
    outcome = train(few, {"optimizer": "adamw", "lr": 1e-2}, plan, lambda result: Decision.CONTINUE)
    assert outcome.state == "complete" and few.has_test_split()
    test_accuracy = outcome.attrs["test_metrics"]["test_accuracy"]
    assert 0.2 < test_accuracy <= 1.0  # five classes: it learned something, on images it never saw


def test_debian_packages_is_balanced_with_a_held_out_test_split() -> None:
    entry = dataset("debian-packages")
    assert entry.path is not None
    data = read_labelled_texts(Path(entry.path), "text", "label", 0.2)
    assert len(data.label_names) == 12
    per_split = collections.Counter(
        (data.label_names[label], split) for label, split in zip(data.labels, data.splits, strict=False)
    )
    for name in data.label_names:
        assert (per_split[(name, "train")], per_split[(name, "val")], per_split[(name, "test")]) == (
            16,
            32,
            64,
        )
    assert len(set(data.texts)) == len(data.texts)  # no description on both sides of a split


def range_plan(low: float = 1e-6, high: float = 1.0, steps: int = 40) -> RangeTestPlan:
    return RangeTestPlan(
        low=low, high=high, steps=steps, batch_size=16, max_steps_per_epoch=None, seed=3, device=CPU
    )


def test_the_range_test_grows_the_lr_exponentially_and_costs_its_steps_in_epochs(few: DigitsTask) -> None:
    outcome = run_range_test(few, {"optimizer": "sgd", "momentum": 0.9}, range_plan(high=1e-2))
    assert outcome.stopped_early is None and len(outcome.points) == 40
    rates = [point.lr for point in outcome.points]
    assert math.isclose(rates[0], 1e-6) and math.isclose(rates[-1], 1e-2)
    ratios = {round(b / a, 9) for a, b in itertools.pairwise(rates)}
    assert len(ratios) == 1  # a constant factor per step
    assert math.isclose(outcome.epochs, 40 / 4)  # 50 training images in batches of 16: 4 steps an epoch


def test_the_range_test_stops_once_the_loss_diverges(few: DigitsTask) -> None:
    outcome = run_range_test(few, {"optimizer": "sgd", "momentum": 0.9}, range_plan(high=1e4, steps=60))
    assert outcome.stopped_early is not None and len(outcome.points) < 60
    assert "exceeds" in outcome.stopped_early or "loss is" in outcome.stopped_early


def test_the_range_test_stops_when_asked(few: DigitsTask) -> None:
    asked = iter([False, False, True])
    outcome = run_range_test(few, {"optimizer": "adamw"}, range_plan(), lambda: next(asked))
    assert len(outcome.points) == 3 and outcome.stopped_early == "stopped at step 3"
