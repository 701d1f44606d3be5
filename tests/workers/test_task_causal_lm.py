"""The causal-lm task: the built-in GPT hps pretrains on the Python docstrings it ships and fine-tunes on
Debian's package descriptions, a user's own Hugging Face GPT-2 directory with .txt and .jsonl corpora, the
dataset options that cut texts into examples, and real 2-trial studies through real `hps worker` processes."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from harness.databases import database
from harness.servers import RunningServer, serving
from harness.studies import run_study_with_workers
from hps.catalog.registry import load_registry
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.causal_lm import (
    IGNORE,
    CausalLMTask,
    builtin_model_dir,
    ensure_builtin_model,
    make_task,
    write_byte_tokenizer,
)

CPU = torch.device("cpu")
TASK = "causal-lm"
NOTES = [
    "The kettle is on the stove and the tea is in the blue tin.",
    "Water the tomatoes in the morning, before the sun is high.",
    "The bus to the station leaves at ten past every hour.",
    "Bread keeps longer in a cloth bag than in a plastic one.",
    "The library closes early on Saturdays and opens late on Mondays.",
    "A short walk after dinner helps the evening go slowly.",
    "The cat sleeps on the warm side of the window in winter.",
    "Letters to the council go in the red box by the gate.",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A worker cache holding the built-in model, pretrained once for the module (under a minute)."""
    cache = tmp_path_factory.mktemp("cache")
    ensure_builtin_model(cache)
    return cache


@pytest.fixture(scope="module")
def user_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own GPT-2 directory, written by transformers' save_pretrained: a tiny random GPT-2 and a
    byte-level GPT-2 tokenizer (whose files hps's own writer makes, then transformers re-saves)."""
    vocabulary = tmp_path_factory.mktemp("vocabulary")
    write_byte_tokenizer(vocabulary)
    tokenizer = AutoTokenizer.from_pretrained(str(vocabulary))
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=48,
        n_embd=32,
        n_layer=1,
        n_head=2,
        eos_token_id=256,
        bos_token_id=256,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("my-gpt")
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpora")
    (folder / "notes.txt").write_text("\n\n".join(NOTES) + "\n", encoding="utf-8")
    lines = [
        json.dumps({"body": text, "split": "val" if i % 4 == 0 else "train"}) for i, text in enumerate(NOTES)
    ]
    (folder / "notes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"txt": folder / "notes.txt", "jsonl": folder / "notes.jsonl"}


def _builtin_entries() -> tuple[ModelEntry | None, DatasetEntry | None]:
    resolved = load_registry().resolve(TASK)
    return resolved.model, resolved.dataset


def _user_task(model_dir: Path, corpus: Path, **options: object) -> CausalLMTask:
    return make_task(
        ModelEntry(name="my-gpt", task=TASK, path=model_dir),
        DatasetEntry(name="notes", task=TASK, path=corpus, options=options),
        Path("/nonexistent-cache"),  # a user's model and data never need the cache
    )


def _train(task: CausalLMTask, model: torch.nn.Module, steps: int, lr: float, batch_size: int = 16) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    done = 0
    while done < steps:
        for batch in task.train_batches(batch_size, generator, CPU):
            loss = task.loss(model, batch)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            done += 1
            if done == steps:
                return


def test_the_builtin_gpt_is_a_cached_hugging_face_directory_with_a_byte_tokenizer(cache_dir: Path) -> None:
    folder = builtin_model_dir(cache_dir)
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json"} <= {
        path.name for path in folder.iterdir()
    }
    made = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_builtin_model(cache_dir) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == made  # reused, not pretrained again
    assert sorted(path.name for path in cache_dir.iterdir()) == [folder.name, f"{folder.name}.lock"]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    text = "naïve café, 3 ≤ 4"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode("utf-8")) and max(ids) < 256  # one token a byte
    assert tokenizer.decode(ids) == text and tokenizer.eos_token_id == 256
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"] and config["n_layer"] == 2


def test_pretraining_helps_and_fine_tuning_lowers_the_validation_loss(cache_dir: Path) -> None:
    entry, dataset = _builtin_entries()
    task = make_task(entry, dataset, cache_dir)
    assert task.has_test_split()
    model = task.fresh_model(CPU, seed=0)
    assert entry is not None and sum(p.numel() for p in model.parameters()) == entry.trainable_params
    before = task.evaluate(model, "val", batch_size=64, device=CPU)
    assert before["perplexity"] == pytest.approx(math.exp(before["loss"]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = GPT2LMHeadModel(cast(GPT2LMHeadModel, model).config)
    scratch = task.evaluate(untrained, "val", batch_size=64, device=CPU)
    # Uniform over 257 tokens is ln 257 = 5.55 nats; the docstrings already taught English bytes.
    assert scratch["loss"] > 5.0 and before["loss"] < 3.5
    _train(task, model, steps=15, lr=1e-3)
    after = task.evaluate(model, "val", batch_size=64, device=CPU)
    assert after["loss"] < before["loss"] - 0.1
    assert model.training and task.fresh_model(CPU, 0) is not model


def test_a_users_gpt2_directory_with_plain_text_and_jsonl(user_model: Path, corpora: dict[str, Path]) -> None:
    text = _user_task(user_model, corpora["txt"], block_size=16, val_fraction=0.25)
    # 8 notes, 2 of them to val by a fixed-seed draw, packed into 16-token blocks.
    train_bytes = text.split_size("train")
    assert train_bytes >= 6 * 55 // 16 and text.split_size("val") >= 2 and not text.has_test_split()
    jsonl = _user_task(user_model, corpora["jsonl"], text_column="body", block_size=16)
    assert jsonl.split_size("val") == math.ceil(sum(len(NOTES[i]) + 1 for i in (0, 4)) / 16)
    model = jsonl.fresh_model(CPU, seed=1)
    before = jsonl.evaluate(model, "val", batch_size=4, device=CPU)["loss"]
    _train(jsonl, model, steps=30, lr=3e-3, batch_size=4)
    assert jsonl.evaluate(model, "val", batch_size=4, device=CPU)["loss"] < before


def test_packing_truncation_and_padding_options(user_model: Path, corpora: dict[str, Path]) -> None:
    lengths = sorted(len(note) + 1 for note in NOTES)  # bytes and the end-of-text token
    generator = torch.Generator().manual_seed(0)

    truncated = _user_task(user_model, corpora["txt"], packing=False, block_size=40, val_fraction=0.25)
    (batch,) = list(truncated.train_batches(64, generator, CPU))
    assert batch.input_ids.shape == (6, 40)  # each note its own example, cut to 40 tokens

    split = _user_task(
        user_model, corpora["txt"], packing=False, truncation=False, block_size=40, val_fraction=0.25
    )
    assert split.split_size("train") + split.split_size("val") == sum(2 if n > 40 else 1 for n in lengths)
    (batch,) = list(split.train_batches(64, generator, CPU))
    assert batch.input_ids.shape[1] == 40  # padded to the longest, which is a full block
    padded_rows = batch.attention_mask.sum(dim=1) < 40
    assert padded_rows.any()
    # Padding is masked out of attention and out of the loss.
    assert torch.equal(batch.labels == IGNORE, batch.attention_mask == 0)

    fixed = _user_task(
        user_model, corpora["txt"], packing=False, block_size=48, padding="max_length", val_fraction=0.25
    )
    (batch,) = list(fixed.train_batches(64, generator, CPU))
    assert batch.input_ids.shape == (6, 48)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"padding": "left"}, "option 'padding' must be one of longest, max_length"),
        ({"block_size": 100}, "'block_size' is 100, more than the model's context of 48"),
        ({"packing": "yes"}, "option 'packing' must be true or false"),
        ({"block_size": 0}, "option 'block_size' must be a positive integer"),
        ({"text_column": "text"}, "line 1 has no string 'text'"),
    ],
)
def test_wrong_options_and_files_say_what_is_wrong(
    user_model: Path, corpora: dict[str, Path], options: dict[str, object], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        _user_task(user_model, corpora["jsonl"], **{"text_column": "body", **options})


def test_wrong_files_say_what_is_wrong(user_model: Path, corpora: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("text\nhello\n")
    with pytest.raises(ValueError, match=r"expected a \.txt or \.jsonl file"):
        _user_task(user_model, tmp_path / "notes.csv")
    (tmp_path / "mixed.jsonl").write_text('{"text": "a b c", "split": "val"}\n{"text": "d e f"}\n')
    with pytest.raises(ValueError, match="some lines have a 'split' and others do not"):
        _user_task(user_model, tmp_path / "mixed.jsonl")
    empty_model = tmp_path / "no-weights"
    empty_model.mkdir()
    with pytest.raises(ValueError, match=r"has no model\.safetensors"):
        _user_task(empty_model, corpora["txt"])


# --- end to end: a server, real workers, real studies ------------------------------------------------


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, user_model: Path, corpora: dict[str, Path]
) -> Iterator[tuple[RunningServer, Path]]:
    """A server (SQLite) whose registry file adds the user's model and corpora, and whose workers' cache
    already holds the built-in model (pretrained by the ``cache_dir`` fixture, copied as a worker would
    find it on its second run)."""
    directory = tmp_path_factory.mktemp("server")
    shutil.copytree(cache_dir, directory / "cache")
    registry = directory / "registry.yaml"
    registry.write_text(
        f"""
models:
  my-gpt: {{task: causal-lm, path: {user_model}, description: "a user's GPT-2", family: transformer}}
datasets:
  my-notes: {{task: causal-lm, path: {corpora["jsonl"]}, options: {{text_column: body, block_size: 16}}}}
  my-notes-text: {{task: causal-lm, path: {corpora["txt"]}, options: {{packing: false, val_fraction: 0.25}}}}
"""
    )
    with database("sqlite", directory) as url, serving(url, directory, HPS_REGISTRY=str(registry)) as server:
        yield server, registry


def test_get_tasks_lists_causal_lm(served: tuple[RunningServer, Path]) -> None:
    server, _ = served
    with server.client() as client:
        tasks = {task["name"]: task for task in client.get("/v1/tasks").json()["items"]}
        models = {model["name"]: model for model in client.get("/v1/models").json()["items"]}
        datasets = {dataset["name"]: dataset for dataset in client.get("/v1/datasets").json()["items"]}
    task = tasks[TASK]
    assert task["metrics"] == {"val_loss": "minimize", "val_perplexity": "minimize"}
    assert task["default_metric"] == "val_loss" and task["family"] == "transformer"
    assert (
        task["defaults"]["model"] == "docstrings-gpt" and task["defaults"]["dataset"] == "debian-descriptions"
    )
    assert {"adamw", "adam", "sgd"} <= set(task["optimizers"])
    assert models["docstrings-gpt"]["task"] == models["my-gpt"]["task"] == TASK
    assert {"debian-descriptions", "my-notes", "my-notes-text"} <= set(datasets)


def test_a_builtin_causal_lm_study_runs_two_trials_through_a_worker(
    served: tuple[RunningServer, Path],
) -> None:
    server, registry = served
    study = run_study_with_workers(
        server,
        registry,
        task={"name": TASK, "epochs": 2, "max_steps_per_epoch": 3, "batch_size": 8},
        search_space={"preset": "adamw"},
        sampler={"name": "random", "seed": 0},
        pruner={"name": "none"},
        budget={"n_trials": 2},
    )
    assert study["state"] == "completed", study
    assert (study["metric"], study["direction"]) == ("val_loss", "minimize")
    assert study["spec"]["task"]["model"] == "docstrings-gpt"
    trials = study["trials"]
    assert [trial["state"] for trial in trials] == ["complete", "complete"], trials
    for trial in trials:
        assert 0.5 < trial["value"] < 4.0  # nats a byte: far below the 5.55 of a uniform guess
        assert trial["attrs"]["steps"] == 6 and len(trial["intermediate_values"]) == 2
        held_out = trial["attrs"]["test_metrics"]  # debian-descriptions holds out test texts
        assert held_out["test_perplexity"] == pytest.approx(math.exp(held_out["test_loss"]))
    assert "pretrained docstrings-gpt" not in study["worker_log"]  # the cached model was used


def test_a_users_own_gpt_and_jsonl_dataset_run_two_trials_through_a_worker(
    served: tuple[RunningServer, Path], user_model: Path
) -> None:
    server, registry = served
    for dataset in ("my-notes", "my-notes-text"):
        study = run_study_with_workers(
            server,
            registry,
            task={"name": TASK, "model": "my-gpt", "dataset": dataset, "epochs": 2, "batch_size": 4},
            search_space={"preset": "adamw"},
            sampler={"name": "random", "seed": 1},
            pruner={"name": "none"},
            budget={"n_trials": 2},
        )
        assert study["state"] == "completed", study
        assert [trial["state"] for trial in study["trials"]] == ["complete", "complete"], study["trials"]
        assert all(math.isfinite(trial["value"]) for trial in study["trials"])
        assert f"loaded the causal LM in {user_model}" in study["worker_log"]
