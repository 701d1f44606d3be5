"""What a trial cost, as the worker that ran it measures it: sent with the completion
(``hps.wire.costs.TrialCost``) and, for its peak memory, kept in the peak-memory book that
``--trials-per-device`` sizes against (``devices.PeakMemoryBook``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hps.wire.costs import TrialCost
from hps.workers.devices import PeakMemoryBook, device_kind, peak_memory_mb

log = logging.getLogger("hps.worker")


def trial_batch_size(task: Mapping[str, Any], params: Mapping[str, Any]) -> int | None:
    """The batch size a trial trains with: its own param when it searches one, else the task's."""
    size = params.get("batch_size") or task.get("batch_size")
    return size if isinstance(size, int) else None


def measure_cost(
    held: float, attrs: Mapping[str, Any], batch_size: int | None, device: torch.device, share: float
) -> TrialCost:
    """What the trial used: ``held`` wall seconds on ``device`` (loading the task on first use included,
    as the device was held then too), the ``share`` of a GPU it held (0 on the CPU), its peak memory
    (from the training's attrs, or the device's now when training raised before measuring) and the samples
    it stepped on (steps x batch size: a short last batch counts as full)."""
    peak = attrs.get("peak_memory_mb")
    if not isinstance(peak, int | float):
        peak = peak_memory_mb(device)
    steps = attrs.get("steps")
    samples = steps * batch_size if isinstance(steps, int) and batch_size is not None else None
    return TrialCost(
        device_seconds=max(0.0, held),
        gpus=share if device.type == "cuda" else 0.0,
        peak_memory_mb=max(0.0, float(peak)),
        samples=samples,
    )


def record_peak(
    book: Path | None, device: torch.device, task: Mapping[str, Any], batch_size: int | None, cost: TrialCost
) -> None:
    """Keep the trial's peak memory in ``book`` under the device's kind and the task
    (``name/model/dataset/batch size``); a disk that cannot take it is logged, never the trial's failure."""
    if book is None or cost.peak_memory_mb is None:
        return
    key = "/".join(
        str(part) for part in (task.get("name"), task.get("model"), task.get("dataset"), batch_size)
    )
    try:
        PeakMemoryBook(book).record(device_kind(device), key, cost.peak_memory_mb)
    except OSError as error:
        log.warning("could not record peak memory in %s: %s", book, error)
