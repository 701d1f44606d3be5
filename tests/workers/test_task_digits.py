"""The digits transfer task on real torch and scikit-learn's bundled digits: pretraining and its cache
(shared by racing processes), fresh models, batches, evaluation, and the head start that pretraining gives."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import statistics
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hps.catalog.builtins import builtin_datasets, builtin_models
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks import digits
from hps.workers.tasks.digits import DigitsCNN, DigitsTask, load_data, make_task, weights_path

CPU = torch.device("cpu")
TARGET_IMAGES = 896  # the digits 5-9 among scikit-learn's 1797
RACERS = 3


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory pretrained into once for the whole module."""
    directory = tmp_path_factory.mktemp("digits-cache")
    make_task(None, None, directory)
    return directory


@pytest.fixture(scope="module")
def task(shared_cache: Path) -> DigitsTask:
    return make_task(None, None, shared_cache)


def _fresh(task: DigitsTask, seed: int) -> DigitsCNN:
    model = task.fresh_model(CPU, seed)
    assert isinstance(model, DigitsCNN)
    return model


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    hasher = hashlib.sha256()
    for name in sorted(tensors):
        hasher.update(name.encode())
        hasher.update(tensors[name].numpy().tobytes())
    return hasher.hexdigest()


def _pretrainings(messages: list[str]) -> int:
    return sum(message.startswith("pretrained") for message in messages)


def test_pretraining_is_cached_once_and_leaves_the_process_as_it_was(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=digits.__name__)
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    make_task(None, None, tmp_path)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)
    path = weights_path(tmp_path)
    assert path.name == "digits-cnn-v1.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.name + ".lock"]
    written = path.stat()
    assert _pretrainings(caplog.messages) == 1

    make_task(None, None, tmp_path)
    again = path.stat()
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert _pretrainings(caplog.messages) == 1


def test_pretraining_is_deterministic(tmp_path: Path, shared_cache: Path) -> None:
    make_task(None, None, tmp_path)
    first, second = load_file(weights_path(shared_cache)), load_file(weights_path(tmp_path))
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _start_worker(cache_dir: Path, start: Barrier, results: Queue[tuple[str, bool]]) -> None:
    """A worker process starting up: makes the task once every racer is ready, then reports its backbone's
    digest and whether it pretrained."""
    recorder = _Recorder()
    logger = logging.getLogger(digits.__name__)
    logger.addHandler(recorder)
    logger.setLevel(logging.INFO)
    start.wait()
    backbone = _fresh(make_task(None, None, cache_dir), seed=0).features.state_dict()
    results.put((_digest(dict(backbone)), _pretrainings(recorder.messages) == 1))


def test_racing_processes_pretrain_once_and_agree(tmp_path: Path, shared_cache: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(RACERS)
    results: Queue[tuple[str, bool]] = context.Queue()
    racers = [context.Process(target=_start_worker, args=(tmp_path, start, results)) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    reports = [results.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    assert {digest for digest, _ in reports} == {_digest(load_file(weights_path(shared_cache)))}
    assert sorted(pretrained for _, pretrained in reports) == [False] * (RACERS - 1) + [True]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "digits-cnn-v1.safetensors",
        "digits-cnn-v1.safetensors.lock",
    ]


def test_the_builtin_entries_are_accepted(shared_cache: Path) -> None:
    (model,) = [entry for entry in builtin_models() if entry.name == "digits-cnn"]
    (dataset,) = [entry for entry in builtin_datasets() if entry.name == "digits-5to9"]
    assert isinstance(make_task(model, dataset, shared_cache), DigitsTask)


@pytest.mark.parametrize(
    ("model", "dataset", "named"),
    [
        (ModelEntry(name="other-cnn", task="digits"), None, "other-cnn"),
        (None, DatasetEntry(name="digits-0to4", task="digits"), "digits-0to4"),
    ],
)
def test_other_models_or_datasets_are_refused(
    model: ModelEntry | None, dataset: DatasetEntry | None, named: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=named):
        make_task(model, dataset, tmp_path)
    assert not list(tmp_path.iterdir())


def test_fresh_models_share_the_backbone_and_draw_the_head_from_the_seed(
    task: DigitsTask, shared_cache: Path
) -> None:
    cached = load_file(weights_path(shared_cache))
    rng = torch.random.get_rng_state()
    first, second, again = (_fresh(task, seed) for seed in (1, 2, 1))
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert len({id(first), id(second), id(again)}) == 3
    for model in (first, second, again):
        assert model.training
        assert all(parameter.requires_grad for parameter in model.parameters())
        backbone = model.features.state_dict()
        assert all(torch.equal(backbone[name], cached[name]) for name in cached)
    assert torch.equal(first.head.weight, again.head.weight)
    assert not torch.equal(first.head.weight, second.head.weight)
    # Changing one copy leaves the next one as pretrained.
    with torch.no_grad():
        next(first.parameters()).add_(1.0)
    assert torch.equal(_fresh(task, 1).features.state_dict()["0.weight"], cached["0.weight"])


def test_the_target_is_split_70_30_per_class_the_same_way_every_time() -> None:
    data, again = load_data(), load_data()
    assert set(data.source.labels.tolist()) == {0, 1, 2, 3, 4}
    train, val = data.target["train"], data.target["val"]
    assert len(train) + len(val) == TARGET_IMAGES
    for label in range(5):
        in_train, in_val = int((train.labels == label).sum()), int((val.labels == label).sum())
        assert in_val / (in_train + in_val) == pytest.approx(0.3, abs=0.01)
    assert torch.equal(train.images, again.target["train"].images)
    assert torch.equal(train.labels, again.target["train"].labels)
    assert torch.equal(val.images, again.target["val"].images)
    images = torch.cat([data.source.images, train.images, val.images])
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == 0 and images.max() == 1


def _epoch(task: DigitsTask, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(task.train_batches(32, torch.Generator().manual_seed(seed), CPU))


def _labels(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    return torch.cat([labels for _, labels in batches])


def test_an_epoch_is_the_train_split_shuffled_by_the_generator(task: DigitsTask) -> None:
    batches = _epoch(task, seed=0)
    assert all(images.shape[1:] == (1, 8, 8) for images, _ in batches)
    assert [len(labels) for _, labels in batches[:-1]] == [32] * (len(batches) - 1)
    train = load_data().target["train"]
    labels = _labels(batches)
    assert torch.equal(labels.sort().values, train.labels.sort().values)
    assert not torch.equal(labels, train.labels)
    assert torch.equal(labels, _labels(_epoch(task, seed=0)))
    assert not torch.equal(labels, _labels(_epoch(task, seed=1)))


def test_evaluation_covers_the_split_without_gradients(task: DigitsTask) -> None:
    model = task.fresh_model(CPU, seed=0)
    metrics = task.evaluate(model, "val", 50, CPU)
    assert set(metrics) == {"accuracy", "loss"}
    # A near-zero head makes near-uniform guesses: about chance, with a loss close to ln 5.
    assert metrics["accuracy"] < 0.5 and metrics["loss"] == pytest.approx(1.609, abs=0.3)
    assert task.evaluate(model, "val", 7, CPU) == pytest.approx(metrics)
    assert model.training and all(parameter.grad is None for parameter in model.parameters())
    model.eval()
    task.evaluate(model, "train", 50, CPU)
    assert not model.training


def _fine_tune(task: DigitsTask, model: torch.nn.Module, seed: int, epochs: int = 3) -> dict[str, float]:
    """Adam with lr 1e-3 for ``epochs`` epochs of batches of 32; the val metrics after."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in task.train_batches(32, generator, CPU):
            optimizer.zero_grad()
            torch.autograd.backward(task.loss(model, batch))
            optimizer.step()
    return task.evaluate(model, "val", 64, CPU)


def test_fine_tuning_the_pretrained_backbone_beats_training_from_scratch(task: DigitsTask) -> None:
    pretrained, scratch = [], []
    for seed in range(3):
        model = _fresh(task, seed)
        torch.manual_seed(seed)
        baseline = DigitsCNN()
        # The same head on both, so that only the backbone differs.
        baseline.head.load_state_dict(model.head.state_dict())
        pretrained.append(_fine_tune(task, model, seed))
        scratch.append(_fine_tune(task, baseline, seed))
    assert all(metrics["accuracy"] > 0.85 for metrics in pretrained), pretrained
    mean = {
        name: (statistics.mean(m[name] for m in pretrained), statistics.mean(m[name] for m in scratch))
        for name in ("accuracy", "loss")
    }
    assert mean["accuracy"][0] > mean["accuracy"][1], mean
    assert mean["loss"][0] < 0.75 * mean["loss"][1], mean
