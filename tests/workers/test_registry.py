"""The registry: built-in and entry-point tasks, and the operator's models/datasets file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hps.catalog.registry import RegistryError, UnknownName, load_registry


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return path


def test_builtins_and_entry_point_tasks() -> None:
    registry = load_registry()
    assert set(registry.tasks) >= {"quadratic", "digits", "text-classification", "image-classification"}
    resolved = registry.resolve("text-classification")
    assert resolved.model is not None and resolved.model.path is not None
    assert (resolved.model.path / "config.json").is_file()
    assert resolved.dataset is not None and resolved.dataset.path is not None
    assert resolved.dataset.path.is_file()
    assert (resolved.epochs, resolved.batch_size, resolved.max_steps_per_epoch) == (3, 16, 20)


def test_the_operators_file_adds_models_and_datasets_with_relative_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  my-bert: {task: text-classification, path: models/bert, description: mine, options: {max_length: 32}}
datasets:
  tickets: {task: text-classification, path: /data/tickets.csv, options: {text_column: body}}
""",
    )
    registry = load_registry(path)
    model = registry.models["my-bert"]
    assert model.path == (tmp_path / "models" / "bert").resolve()
    assert model.options == {"max_length": 32}
    resolved = registry.resolve("text-classification", model="my-bert", dataset="tickets", epochs=2)
    assert resolved.dataset is not None and resolved.dataset.options["text_column"] == "body"
    assert resolved.epochs == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("models:\n  x: {task: nowhere, path: a}\n", "not registered"),
        ("models:\n  minilm-l6: {task: text-classification, path: a}\n", "already registered"),
        ("models:\n  'bad name': {task: digits}\n", "must match"),
        ("models:\n  x: {task: digits, colour: red}\n", "colour"),
        ("surprise: {}\n", "surprise"),
        ("models: [\n", "cannot read"),
        ("models:\n  x: {task: digits, family: bird}\n", "family"),
        ("datasets:\n  x: {task: digits, family: cnn}\n", "family is for models"),
        ("datasets:\n  x: {task: digits, trainable_params: 3}\n", "trainable_params is for models"),
        ("models:\n  x: {task: digits, trainable_params: 0}\n", "trainable_params"),
    ],
)
def test_a_bad_file_fails_with_a_message(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(RegistryError, match=words):
        load_registry(write(tmp_path, text))


def test_names_must_exist_and_belong_to_the_task() -> None:
    registry = load_registry()
    with pytest.raises(UnknownName, match="no task named 'nope'"):
        registry.task("nope")
    with pytest.raises(UnknownName, match="belongs to task text-classification"):
        registry.resolve("digits", model="minilm-l6")
    with pytest.raises(UnknownName, match="registered: digits-5to9"):
        registry.resolve("digits", dataset="missing")


def test_a_models_family_overrides_its_tasks(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  tiny-cnn: {task: text-classification, path: m, family: cnn}\n")
    registry = load_registry(path)
    assert registry.resolve("text-classification").family == "transformer"  # the task's, for minilm-l6
    assert registry.resolve("text-classification", model="tiny-cnn").family == "cnn"


def test_a_model_declares_its_trainable_params_for_newtons_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  tiny: {task: text-classification, path: m, trainable_params: 1200}\n")
    registry = load_registry(path)
    assert registry.resolve("text-classification", model="tiny").trainable_params == 1200
    assert registry.resolve("text-classification").trainable_params == 22_713_986  # minilm-l6
    assert registry.resolve("quadratic").trainable_params == 1  # the task's own, it has no model
    unknown = write(tmp_path, "models:\n  big: {task: text-classification, path: m}\n")
    assert load_registry(unknown).resolve("text-classification", model="big").trainable_params is None
