"""Digits transfer learning: a small CNN that hps pretrains itself on scikit-learn's digits 0-4, fine-tuned
with a new five-class head to tell the digits 5-9 apart.

Everything is local and small (the 8x8 digits ship inside scikit-learn), so a trial takes seconds on a CPU
while still being a real fine-tuning problem: the pretrained features give a clear head start over the
same network trained from scratch. The pretraining follows a fixed recipe on the CPU, seeded, on one
thread, and its backbone is cached as safetensors in ``cache_dir``; the file's name carries the recipe's
version, so a change to the recipe or the architecture (which must bump :data:`RECIPE_VERSION`) never
reads stale weights. Worker processes that start together on an empty cache pretrain only once: one of
them trains under a file lock while the others wait and then read its file.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.base import Split
from hps.workers.tasks.cache import exclusive, write_safetensors_atomically
from hps.workers.tasks.classification import classification_metrics
from hps.workers.tasks.options import int_option

MODEL_NAME = "digits-cnn"
# The same pretrained CNN with its backbone frozen: only the new head trains (a linear probe, 1,285 params),
# which is small enough for exact Newton.
PROBE_MODEL_NAME = "digits-cnn-probe"
DATASET_NAME = "digits-5to9"
FEW_LABELS_DATASET_NAME = "digits-5to9-few"
RECIPE_VERSION = 1
CLASSES = 5  # digits 0-4 for the pretraining, 5-9 (as labels 0-4) for the fine-tuning
FEATURES = 64 * 2 * 2
# A new head starts with near-uniform logits, so that its first, large gradients hardly disturb the backbone.
_HEAD_STD = 0.01
VAL_FRACTION = 0.3
_SPLIT_SEED = 0  # fixed, so every worker and every run sees the same split
_PIXEL_MAX = 16.0  # scikit-learn's digits are 0..16 gray levels

# The pretraining recipe. Changing any of it changes the weights: bump RECIPE_VERSION with it.
_PRETRAIN_SEED = 0
_PRETRAIN_EPOCHS = 10
_PRETRAIN_BATCH_SIZE = 32
_PRETRAIN_LR = 3e-3

logger = logging.getLogger(__name__)


class DigitsCNN(nn.Module):
    """Two conv-pool blocks (``features``, the backbone: 256 features an image) and a linear ``head``;
    takes images of shape [N, 1, 8, 8] and returns [N, classes] logits."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
            nn.Flatten(),
        )
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.features(images)
        logits: torch.Tensor = self.head(features)
        return logits


@dataclass(frozen=True)
class LabelledImages:
    """Images of shape [N, 1, 8, 8] scaled to [0, 1] and their class indices [N], on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DigitsData:
    """The pretraining set (digits 0-4, all of them) and the fine-tuning splits (digits 5-9 as 0-4)."""

    source: LabelledImages
    target: Mapping[Split, LabelledImages]


def load_data(few_labels: FewLabels | None = None) -> DigitsData:
    """scikit-learn's bundled digits, split by class into the source and the target task. The target is
    split 70/30 into train and val per class with a fixed seed: the same split on every call. With
    ``few_labels``, each class gets that many train and val images instead (fixed seed), and the rest of
    the target images are the held-out test split."""
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / _PIXEL_MAX
    labels = torch.tensor(bunch.target, dtype=torch.long)
    is_source = labels < CLASSES
    source = LabelledImages(images[is_source], labels[is_source])
    target_images, target_labels = images[~is_source], labels[~is_source] - CLASSES
    rows = few_labels.rows(target_labels) if few_labels else _seventy_thirty(target_labels)
    target = {split: LabelledImages(target_images[r], target_labels[r]) for split, r in rows.items()}
    return DigitsData(source=source, target=target)


@dataclass(frozen=True)
class FewLabels:
    """A few-label split of the target task: per class, ``train`` images to fine-tune on and ``val``
    images to steer the search; every other image is held out as ``test``."""

    train: int
    val: int

    def rows(self, labels: torch.Tensor) -> dict[Split, np.ndarray]:
        """Row indices per split, drawn per class with a fixed seed."""
        rng = np.random.default_rng(_SPLIT_SEED)
        chosen: dict[Split, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        for label in range(CLASSES):
            rows = rng.permutation(np.flatnonzero(labels.numpy() == label))
            if len(rows) <= self.train + self.val:
                raise ValueError(
                    f"digit {label + CLASSES} has {len(rows)} images: fewer than train_per_class + "
                    f"val_per_class ({self.train} + {self.val}) leaves no test images"
                )
            chosen["train"].append(rows[: self.train])
            chosen["val"].append(rows[self.train : self.train + self.val])
            chosen["test"].append(rows[self.train + self.val :])
        return {split: np.sort(np.concatenate(parts)) for split, parts in chosen.items()}


def _seventy_thirty(labels: torch.Tensor) -> dict[Split, np.ndarray]:
    train_rows, val_rows = train_test_split(
        np.arange(len(labels)), test_size=VAL_FRACTION, random_state=_SPLIT_SEED, stratify=labels.numpy()
    )
    return {"train": train_rows, "val": val_rows}


def make_task(model: ModelEntry | None, dataset: DatasetEntry | None, cache_dir: Path) -> DigitsTask:
    """The digits task with the pretrained backbone from ``cache_dir`` (pretrained there first when it is
    missing). ``model`` must be the built-in ``digits-cnn`` and ``dataset`` a built-in digits set (None
    means ``digits-5to9``); anything else is a ``ValueError`` naming it. A dataset's options
    ``train_per_class`` and ``val_per_class`` (both or neither) make a few-label split with a test split."""
    if model is not None and model.name not in (MODEL_NAME, PROBE_MODEL_NAME):
        raise ValueError(
            f"the digits task only runs the built-in models {MODEL_NAME!r} and {PROBE_MODEL_NAME!r}, "
            f"not {model.name!r}"
        )
    if dataset is not None and dataset.name not in (DATASET_NAME, FEW_LABELS_DATASET_NAME):
        raise ValueError(
            f"the digits task only runs on the built-in datasets {DATASET_NAME!r} and "
            f"{FEW_LABELS_DATASET_NAME!r}, not {dataset.name!r}"
        )
    data = load_data(_few_labels(dataset.options) if dataset is not None else None)
    frozen = model is not None and model.name == PROBE_MODEL_NAME
    return DigitsTask(pretrained_backbone(cache_dir, data.source), data.target, freeze_backbone=frozen)


def _few_labels(options: Mapping[str, Any]) -> FewLabels | None:
    given = [name for name in ("train_per_class", "val_per_class") if name in options]
    if not given:
        return None
    if len(given) == 1:
        raise ValueError("options 'train_per_class' and 'val_per_class' go together")
    return FewLabels(int_option(options, "train_per_class", 1), int_option(options, "val_per_class", 1))


class DigitsTask:
    """The pretrained CNN (kept on the CPU, never trained) and the target task's splits (in memory). With
    ``freeze_backbone`` a trial trains the new head only."""

    def __init__(
        self,
        backbone: dict[str, torch.Tensor],
        splits: Mapping[Split, LabelledImages],
        freeze_backbone: bool = False,
    ) -> None:
        # Its random initialisation is overwritten at once; drawing it must not move the global random state.
        with torch.random.fork_rng(devices=[]):
            self._pretrained = DigitsCNN()
        self._pretrained.features.load_state_dict(backbone)
        self._pretrained.features.requires_grad_(not freeze_backbone)
        self._splits = splits

    def has_test_split(self) -> bool:
        """Whether the dataset holds out test images (the few-label split does)."""
        return "test" in self._splits

    def fresh_model(self, device: torch.device, seed: int) -> nn.Module:
        """A deep copy of the pretrained backbone with a new head drawn from ``seed``, on ``device``, in
        training mode; every parameter is trainable, unless the backbone is frozen (then the head's only)."""
        model = copy.deepcopy(self._pretrained)
        model.head = _new_head(seed)
        return model.to(device).train()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every training image once as (images, labels) on ``device``, in an order drawn from
        ``generator``; the last batch may be smaller."""
        split = self._splits["train"]
        order = torch.randperm(len(split), generator=generator, device=generator.device).cpu()
        return _batches(split, order, batch_size, device)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The mean cross-entropy of the model's logits on the batch."""
        images, labels = batch
        return F.cross_entropy(model(images), labels)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        """Accuracy and mean cross-entropy over the whole split (``classification_metrics``)."""
        data = self._splits[split]
        batches = _batches(data, torch.arange(len(data)), batch_size, device)
        return classification_metrics(model, lambda: ((model(images), labels) for images, labels in batches))


def _batches(
    data: LabelledImages, order: torch.Tensor, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield data.images[rows].to(device), data.labels[rows].to(device)


def _new_head(seed: int) -> nn.Linear:
    """A five-class linear head drawn from ``seed`` alone, weights from N(0, 0.01^2) and biases 0; the
    global random state is left as it was, so that the training loop's own draws do not depend on it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(FEATURES, CLASSES)
        nn.init.normal_(head.weight, std=_HEAD_STD)
        nn.init.zeros_(head.bias)
    return head


def weights_path(cache_dir: Path) -> Path:
    """Where the pretrained backbone is cached; the name changes with :data:`RECIPE_VERSION`."""
    return cache_dir / f"{MODEL_NAME}-v{RECIPE_VERSION}.safetensors"


def pretrained_backbone(cache_dir: Path, source: LabelledImages) -> dict[str, torch.Tensor]:
    """The backbone's state dict, read from the cache; pretrained on ``source`` and cached first when the
    cache has none. Safe to call from many processes at once: exactly one of them pretrains."""
    path = weights_path(cache_dir)
    # The file only ever appears whole (it is renamed into place), so seeing it means it can be read.
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with exclusive(path.with_name(path.name + ".lock")):
            # Another process may have written it while this one waited for the lock.
            if not path.exists():
                write_safetensors_atomically(path, pretrain(source))
    return load_file(path)


def pretrain(source: LabelledImages) -> dict[str, torch.Tensor]:
    """Train a :class:`DigitsCNN` on ``source`` with the fixed recipe and return its backbone's state dict.

    Deterministic: seeded, on the CPU and on one thread (so that the order of floating-point sums does not
    depend on the machine's core count); the process's random state and thread count are restored after.
    """
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_PRETRAIN_SEED)
            model = _train_source_model(source)
    finally:
        torch.set_num_threads(threads)
    logger.info("pretrained %s v%d in %.1f s", MODEL_NAME, RECIPE_VERSION, time.perf_counter() - started)
    return dict(model.features.state_dict())


def _train_source_model(source: LabelledImages) -> DigitsCNN:
    """The recipe itself: Adam over shuffled batches for a fixed number of epochs, drawing every random
    number from the global generator, which the caller has seeded."""
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=_PRETRAIN_LR)
    cpu = torch.device("cpu")
    for _ in range(_PRETRAIN_EPOCHS):
        for images, labels in _batches(source, torch.randperm(len(source)), _PRETRAIN_BATCH_SIZE, cpu):
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(F.cross_entropy(model(images), labels))
            optimizer.step()
    return model
