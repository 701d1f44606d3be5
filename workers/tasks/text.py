"""Text classification: a local Hugging Face encoder with a new classification head, fine-tuned on a CSV
or JSONL file of texts and labels.

The model entry's ``path`` is a Hugging Face model directory on this machine (nothing is ever fetched
from the hub; remote code is never trusted) with safetensors weights (pickled ``pytorch_model.bin``
weights are refused) and nothing in it leading outside it: a symlink out of the directory, as in the
hub's own cache, is refused, so copy such a model with real files first. Its option ``max_length``
(default 64) caps the tokens per text. The dataset entry's ``path`` is a ``.csv`` or ``.jsonl`` file;
its options name the columns (``text_column``, default ``text``; ``label_column``, default ``label``)
and ``val_fraction`` (default 0.25). A ``split`` column with the values ``train``/``val``/``test`` overrides
the split (``test`` rows are held out: evaluated once at the end of a complete trial, they never steer the
search); otherwise a fixed-seed split per label keeps the label mix of train and val alike. Labels (strings
or integers) become the class indices 0..k-1 in sorted order (integers by value).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.base import Split
from hps.workers.tasks.classification import classification_metrics
from hps.workers.tasks.files import files_under, inside, json_lines
from hps.workers.tasks.options import fraction_option, int_option, str_option

DEFAULT_MAX_LENGTH = 64
DEFAULT_VAL_FRACTION = 0.25
SPLIT_COLUMN = "split"
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"  # a sharded checkpoint: names its weight files
_SPLIT_SEED = 0  # fixed, so every worker and every run sees the same split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledTexts:
    """A validated dataset: one text, class index and split per row, and the class names by index."""

    texts: list[str]
    labels: list[int]
    splits: list[Split]
    label_names: list[str]


@dataclass(frozen=True)
class TextBatch:
    """Token tensors (``input_ids``, ``attention_mask``, ...) and class indices, all on one device."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor


def make_task(
    model: ModelEntry | None, dataset: DatasetEntry | None, cache_dir: Path
) -> TextClassificationTask:
    """Load the model directory and the dataset once; raises ``ValueError`` naming the file and the problem
    when either is unusable. ``cache_dir`` is unused: everything is read from the registered paths."""
    if model is None or model.path is None:
        raise ValueError(
            "text-classification needs a model entry with a path to a Hugging Face model directory"
        )
    if dataset is None or dataset.path is None:
        raise ValueError("text-classification needs a dataset entry with a path to a CSV or JSONL file")
    data = read_labelled_texts(
        dataset.path,
        text_column=str_option(dataset.options, "text_column", "text"),
        label_column=str_option(dataset.options, "label_column", "label"),
        val_fraction=fraction_option(dataset.options, "val_fraction", DEFAULT_VAL_FRACTION),
    )
    max_length = int_option(model.options, "max_length", DEFAULT_MAX_LENGTH)
    return TextClassificationTask(model.path, data, max_length)


class TextClassificationTask:
    """The pretrained encoder (kept on the CPU, never trained) and the tokenized dataset (in memory)."""

    def __init__(self, model_dir: Path, data: LabelledTexts, max_length: int) -> None:
        tokenizer, self._pretrained = _load_pretrained(model_dir, data.label_names)
        _head_parameters(self._pretrained)  # fail now, not in the first trial, if there is no head
        self.label_names = data.label_names
        # Padded to max_length once here; each batch is cut back to its longest text when it is made.
        encoded = tokenizer(
            data.texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
        )
        self._tokens: dict[str, torch.Tensor] = {key: value for key, value in encoded.items()}
        self._labels = torch.tensor(data.labels, dtype=torch.long)
        self._rows: dict[Split, torch.Tensor] = {
            split: torch.tensor([i for i, name in enumerate(data.splits) if name == split], dtype=torch.long)
            for split in ("train", "val", "test")
        }

    def split_size(self, split: Split) -> int:
        """How many rows ``split`` has."""
        return len(self._rows[split])

    def has_test_split(self) -> bool:
        """Whether the dataset holds test rows."""
        return self.split_size("test") > 0

    def fresh_model(self, device: torch.device, seed: int) -> nn.Module:
        """A deep copy of the pretrained model whose head (every parameter outside the encoder) is drawn
        anew from ``seed``; on ``device``, in training mode."""
        model = copy.deepcopy(self._pretrained)
        _reinitialise_head(model, seed)
        return model.to(device).train()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[TextBatch]:
        """Every training row once, in an order drawn from ``generator``; the last batch may be smaller."""
        rows = self._rows["train"]
        order = torch.randperm(len(rows), generator=generator, device=generator.device).cpu()
        return self._batches(rows[order], batch_size, device)

    def loss(self, model: nn.Module, batch: TextBatch) -> torch.Tensor:
        """The model's own mean cross-entropy on the batch."""
        return cast(torch.Tensor, model(**batch.inputs, labels=batch.labels).loss)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        """Accuracy and mean cross-entropy over the whole split (``classification_metrics``)."""
        batches = self._batches(self._rows[split], batch_size, device)
        return classification_metrics(model, lambda: ((model(**b.inputs).logits, b.labels) for b in batches))

    def _batches(self, rows: torch.Tensor, batch_size: int, device: torch.device) -> Iterator[TextBatch]:
        for start in range(0, len(rows), batch_size):
            chosen = rows[start : start + batch_size]
            mask = self._tokens["attention_mask"][chosen]
            # Columns that are padding in every row change nothing (attention masks them out) but cost
            # compute: reviews of ~20 tokens padded to 64 train about three times slower.
            width = int(mask.any(dim=0).nonzero()[-1]) + 1
            inputs = {key: value[chosen, :width].to(device) for key, value in self._tokens.items()}
            yield TextBatch(inputs=inputs, labels=self._labels[chosen].to(device))


def _load_pretrained(model_dir: Path, label_names: list[str]) -> tuple[Any, nn.Module]:
    """The tokenizer and a sequence-classification model with ``len(label_names)`` outputs, both read
    from ``model_dir`` alone."""
    if not model_dir.is_dir():
        raise ValueError(f"model directory {model_dir} does not exist or is not a directory")
    check_model_directory(model_dir)
    # Read by huggingface_hub when it is first imported: make sure no worker ever reaches for the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    # transformers reports a new classification head as a table of MISSING weights, in terminal colours,
    # with a progress bar: expected when fine-tuning, alarming in a worker's log. hps says it in one line.
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
    model, loading = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir),
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: index for index, name in enumerate(label_names)},
        problem_type="single_label_classification",
        local_files_only=True,
        trust_remote_code=False,
        # check_model_directory found safetensors weights; these keep transformers from ever falling back
        # to unpickling pytorch_model.bin, should that check be changed.
        use_safetensors=True,
        weights_only=True,
        output_loading_info=True,
    )
    new = sorted(loading.get("missing_keys", []))
    log.info(
        "loaded the pretrained encoder in %s; its new classification head (%d labels: %s; %s) starts from "
        "random weights in every trial, as fine-tuning expects",
        model_dir,
        len(label_names),
        ", ".join(label_names),
        ", ".join(new) or "no new weights",
    )
    return tokenizer, cast(nn.Module, model)


def check_model_directory(model_dir: Path) -> None:
    """Refuse, before transformers reads anything, a model directory that leads outside itself or holds no
    safetensors weights. ``UnsafePath`` (a ``ValueError``) when any entry of its tree, or any shard its
    ``model.safetensors.index.json`` names, resolves outside it; ``ValueError`` when it has neither
    ``model.safetensors`` nor that index (pickled weights such as ``pytorch_model.bin`` are never read)."""
    files_under(model_dir)
    index = model_dir / SAFE_WEIGHTS_INDEX
    if index.is_file():
        for shard in _shard_names(index):
            inside(model_dir, Path(shard))
    elif not (model_dir / SAFE_WEIGHTS).is_file():
        raise ValueError(
            f"model directory {model_dir} has no {SAFE_WEIGHTS} (nor {SAFE_WEIGHTS_INDEX}); hps loads "
            "only safetensors weights and never unpickles others such as pytorch_model.bin: convert them "
            "to safetensors first"
        )


def _shard_names(index: Path) -> set[str]:
    """The weight files a sharded checkpoint's index names (its ``weight_map`` values)."""
    try:
        parsed = json.loads(index.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{index} is not JSON: {error}") from None
    weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(name, str) for name in weight_map.values()):
        raise ValueError(f"{index} has no 'weight_map' of parameter names to file names")
    return set(weight_map.values())


def _reinitialise_head(model: nn.Module, seed: int) -> None:
    """Draw every parameter outside the encoder (``model.base_model_prefix``) from ``seed``, the way
    Hugging Face initialises new layers: matrices from N(0, initializer_range), biases 0, norm scales 1."""
    std = float(getattr(model.config, "initializer_range", 0.02))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in _head_parameters(model):
            if parameter.dim() >= 2:
                parameter.normal_(0.0, std, generator=generator)
            elif name.endswith("bias"):
                parameter.zero_()
            else:
                parameter.fill_(1.0)


def _head_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters outside the encoder (``model.base_model_prefix``): the classification head."""
    prefix = f"{model.base_model_prefix}."
    head = [(name, p) for name, p in model.named_parameters() if not name.startswith(prefix)]
    if not head:
        raise ValueError(f"{type(model).__name__} has no parameters outside its encoder to use as a head")
    return head


def read_labelled_texts(
    path: Path, text_column: str, label_column: str, val_fraction: float
) -> LabelledTexts:
    """Read and validate a ``.csv`` or ``.jsonl`` dataset; ``ValueError`` names the file and the problem
    (unknown suffix, empty file, missing column or value, fewer than two labels, an empty split)."""
    records = _read_records(path)
    if not records:
        raise ValueError(f"dataset {path} is empty")
    texts, raw_labels = [], []
    for number, record in enumerate(records, start=1):
        for column in (text_column, label_column):
            if column not in record:
                columns = ", ".join(repr(name) for name in record)
                raise ValueError(
                    f"dataset {path} has no column {column!r} in row {number} (it has {columns})"
                )
        texts.append(_text_value(path, number, record[text_column]))
        raw_labels.append(_label_value(path, number, record[label_column]))
    label_names = _label_order(set(raw_labels))
    if len(label_names) < 2:
        raise ValueError(f"dataset {path} has fewer than 2 labels in column {label_column!r}: {label_names}")
    index = {name: i for i, name in enumerate(label_names)}
    labels = [index[name] for name in raw_labels]
    if any(SPLIT_COLUMN in record for record in records):
        splits = _given_split(path, records)
    else:
        splits = _stratified_split(labels, val_fraction)
    if "train" not in splits or "val" not in splits:
        raise ValueError(f"dataset {path}: the train or the val split is empty")
    return LabelledTexts(texts=texts, labels=labels, splits=splits, label_names=label_names)


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ValueError(f"dataset {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        # utf-8-sig: spreadsheet programs often start their CSV exports with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as file:
            return [dict(row) for row in csv.DictReader(file)]
    if suffix == ".jsonl":
        return [record for _, record in json_lines(path)]
    raise ValueError(f"dataset {path}: expected a .csv or .jsonl file")


def _text_value(path: Path, number: int, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"dataset {path}: row {number} has a text that is not a string: {value!r}")
    return value


def _label_value(path: Path, number: int, value: object) -> str:
    # bool is an int subclass, but a true/false label is almost surely a mistake in the file.
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValueError(
            f"dataset {path}: row {number} has a label that is not a string or integer: {value!r}"
        )
    return str(value)


def _label_order(names: set[str]) -> list[str]:
    """Integer labels in numeric order ("2" before "10"), any others alphabetically."""
    if all(re.fullmatch(r"-?\d+", name) for name in names):
        return sorted(names, key=int)
    return sorted(names)


def _given_split(path: Path, records: list[dict[str, Any]]) -> list[Split]:
    splits: list[Split] = []
    for number, record in enumerate(records, start=1):
        value = record.get(SPLIT_COLUMN)
        if value not in ("train", "val", "test"):
            raise ValueError(
                f"dataset {path}: row {number} has split {value!r}; expected 'train', 'val' or 'test'"
            )
        splits.append(cast(Split, value))
    return splits


def _stratified_split(labels: list[int], val_fraction: float) -> list[Split]:
    """About ``val_fraction`` of each label's rows (at least one, when it has two or more) go to val."""
    rng = random.Random(_SPLIT_SEED)
    splits: list[Split] = ["train"] * len(labels)
    for label in sorted(set(labels)):
        rows = [i for i, value in enumerate(labels) if value == label]
        rng.shuffle(rows)
        count = min(max(round(len(rows) * val_fraction), 1), len(rows) - 1)
        for row in rows[:count]:
            splits[row] = "val"
    return splits
