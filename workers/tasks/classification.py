"""What classification tasks measure on a split: accuracy and mean cross-entropy, computed the same way by
every task (digits, text, images), in eval mode and without gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

LogitsAndLabels = Iterator[tuple[torch.Tensor, torch.Tensor]]


def classification_metrics(model: nn.Module, outputs: Callable[[], LogitsAndLabels]) -> dict[str, float]:
    """Accuracy and mean cross-entropy over every ``(logits, labels)`` pair ``outputs`` yields, computed
    in eval mode without gradients; the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    correct, count, total_loss = 0, 0, 0.0
    try:
        with torch.no_grad():
            for logits, labels in outputs():
                total_loss += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
                correct += int((logits.argmax(dim=-1) == labels).sum())
                count += len(labels)
    finally:
        model.train(was_training)
    return {"accuracy": correct / count, "loss": total_loss / count}
