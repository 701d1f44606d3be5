"""The text-classification task with the real MiniLM encoder (read offline from its PyPI package), real
tokenization and real training steps, on the shipped reviews and on files the tests write."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from hps.catalog.builtins import builtin_datasets, builtin_models
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.text import TextBatch, TextClassificationTask, make_task

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
TASK = "text-classification"


def _builtin_model() -> ModelEntry:
    return next(entry for entry in builtin_models() if entry.name == "minilm-l6")


def _builtin_dataset() -> DatasetEntry:
    return next(entry for entry in builtin_datasets() if entry.name == "reviews-sample")


@pytest.fixture(autouse=True, scope="module")
def offline() -> Iterator[None]:
    """No test here may reach the Hugging Face hub: everything must come from local files."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> TextClassificationTask:
    """The built-in minilm-l6 + reviews-sample task, loaded once for the module."""
    return make_task(_builtin_model(), _builtin_dataset(), tmp_path_factory.mktemp("cache"))


def _first_batch(task: TextClassificationTask, seed: int, batch_size: int = 16) -> TextBatch:
    return next(iter(task.train_batches(batch_size, torch.Generator().manual_seed(seed), CPU)))


def test_the_builtin_task_loads_offline_with_both_labels(task: TextClassificationTask) -> None:
    assert task.label_names == ["negative", "positive"]
    assert (task.split_size("train"), task.split_size("val")) == (300, 100)


def test_fresh_models_share_the_encoder_and_draw_the_head_from_the_seed(task: TextClassificationTask) -> None:
    first, same_seed, other_seed = (task.fresh_model(CPU, seed) for seed in (1, 1, 2))
    assert first is not same_seed and first.training
    states = [model.state_dict() for model in (first, same_seed, other_seed)]
    encoder_keys = [key for key in states[0] if key.startswith("bert.")]
    assert encoder_keys and all(
        torch.equal(states[0][key], state[key]) for state in states[1:] for key in encoder_keys
    )
    assert torch.equal(states[0]["classifier.weight"], states[1]["classifier.weight"])
    assert not torch.equal(states[0]["classifier.weight"], states[2]["classifier.weight"])
    # Distinct objects all the way down: training one copy leaves the others alone.
    with torch.no_grad():
        next(first.parameters()).add_(1.0)
    assert not torch.equal(next(first.parameters()), next(same_seed.parameters()))


def test_an_epoch_of_batches_covers_the_training_split_in_a_seeded_order(
    task: TextClassificationTask,
) -> None:
    batches = list(task.train_batches(64, torch.Generator().manual_seed(0), CPU))
    assert sum(len(batch.labels) for batch in batches) == 300
    assert {"input_ids", "attention_mask"} <= set(batches[0].inputs)
    assert batches[0].inputs["input_ids"].shape[1] <= 64  # trimmed to the longest review in the batch
    assert torch.equal(_first_batch(task, 5).inputs["input_ids"], _first_batch(task, 5).inputs["input_ids"])
    assert not torch.equal(_first_batch(task, 5).labels, _first_batch(task, 6).labels)


def test_a_few_adamw_steps_reduce_the_training_loss(task: TextClassificationTask) -> None:
    torch.manual_seed(0)  # dropout
    model = task.fresh_model(CPU, seed=3)
    batch = _first_batch(task, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    with torch.no_grad():
        before = float(task.loss(model.eval(), batch))
    model.train()
    for _ in range(10):
        loss = task.loss(model, batch)
        assert loss.requires_grad and loss.dim() == 0
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
    with torch.no_grad():
        after = float(task.loss(model.eval(), batch))
    assert after < before * 0.8


def test_evaluate_reports_accuracy_and_loss_and_restores_the_mode(task: TextClassificationTask) -> None:
    model = task.fresh_model(CPU, seed=0)
    metrics = task.evaluate(model, "val", batch_size=64, device=CPU)
    assert set(metrics) == {"accuracy", "loss"}
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0.0
    assert model.training


def _write_csv(path: Path) -> None:
    rows = ["body,sentiment,split"]
    for index in range(12):
        tone = ("great, I love it", "broken, I hate it", "fine, nothing special")[index % 3]
        rows.append(
            f'"Review {index}: {tone}",{("good", "bad", "meh")[index % 3]},{"val" if index < 3 else "train"}'
        )
    path.write_text("\n".join(rows) + "\n")


def _write_jsonl(path: Path) -> None:
    lines = [
        json.dumps({"body": f"Ticket {index} about item {index % 4}", "stars": [10, 2][index % 2]})
        for index in range(10)
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("filename", "write", "labels", "sizes"),
    [
        ("tickets.csv", _write_csv, ["bad", "good", "meh"], (9, 3)),
        ("tickets.jsonl", _write_jsonl, ["2", "10"], (8, 2)),
    ],
)
def test_registered_csv_and_jsonl_files_load_with_custom_columns(
    tmp_path: Path, filename: str, write: Callable[[Path], None], labels: list[str], sizes: tuple[int, int]
) -> None:
    path = tmp_path / filename
    write(path)
    label_column = "sentiment" if filename.endswith(".csv") else "stars"
    dataset = DatasetEntry(
        name="tickets", task=TASK, path=path, options={"text_column": "body", "label_column": label_column}
    )
    model = ModelEntry(name="my-minilm", task=TASK, path=_builtin_model().path, options={"max_length": 32})
    task = make_task(model, dataset, tmp_path)
    assert task.label_names == labels  # integers sort by value: 2 before 10
    assert (task.split_size("train"), task.split_size("val")) == sizes
    batch = _first_batch(task, seed=0, batch_size=4)
    assert float(task.loss(task.fresh_model(CPU, 0), batch).detach()) > 0.0


@pytest.mark.parametrize(
    ("content", "options", "problem"),
    [
        ("text,label\nfine,positive\nbad,negative\n", {"text_column": "body"}, "no column 'body'"),
        ("", {}, "is empty"),
        ("text,label\n", {}, "is empty"),
        ("text,label\nfine,positive\ngood,positive\n", {}, "fewer than 2 labels"),
    ],
)
def test_unusable_datasets_raise_value_errors_naming_the_file(
    tmp_path: Path, content: str, options: dict[str, str], problem: str
) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(content)
    dataset = DatasetEntry(name="broken", task=TASK, path=path, options=options)
    with pytest.raises(ValueError, match=problem) as raised:
        make_task(_builtin_model(), dataset, tmp_path)
    assert str(path) in str(raised.value)


def test_the_generator_script_reproduces_the_shipped_csv_byte_for_byte(tmp_path: Path) -> None:
    output = tmp_path / "reviews.csv"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_reviews_sample.py"), "--output", str(output)],
        check=True,
    )
    shipped = _builtin_dataset().path
    assert shipped is not None
    assert output.read_bytes() == shipped.read_bytes()
