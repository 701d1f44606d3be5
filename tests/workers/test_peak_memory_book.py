"""The peak-memory book ``--trials-per-device`` sizes against, and how many trials fit."""

from __future__ import annotations

from pathlib import Path

import torch

from hps.workers.devices import PeakMemoryBook, memory_capacity_mb, trials_that_fit


def test_the_largest_peak_per_device_kind_and_task_is_kept(tmp_path: Path) -> None:
    book = PeakMemoryBook(tmp_path / "peak-memory.json")
    assert book.peak("cpu") is None
    book.record("cpu", "quadratic/None/None/32", 300.0)
    book.record("cpu", "quadratic/None/None/32", 200.0)  # smaller: kept as it was
    book.record("cpu", "digits/None/None/64", 500.0)
    book.record("NVIDIA H200", "text-classification/minilm-l6/reviews-sample/32", 4000.0)
    assert book.peak("cpu", ("quadratic",)) == 300.0
    assert book.peak("cpu", ("quadratic", "digits")) == 500.0
    assert book.peak("cpu") == 500.0
    assert book.peak("cpu", ("text-classification",)) is None
    assert book.peak("NVIDIA H200", ("text-classification",)) == 4000.0
    assert PeakMemoryBook(tmp_path / "peak-memory.json").read() == book.read()  # it is on disk


def test_an_unreadable_book_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "peak-memory.json"
    path.write_text("{not json")
    assert PeakMemoryBook(path).read() == {}
    path.write_text('{"cpu|quadratic": "big", "cpu|digits": 12}')
    assert PeakMemoryBook(path).read() == {"cpu|digits": 12.0}


def test_trials_that_fit_leave_headroom_and_at_least_one_runs() -> None:
    assert trials_that_fit(143_000.0, 4_000.0) == 32  # 90 % of an H200 for MiniLM-sized trials
    assert trials_that_fit(80_000.0, 36_000.0) == 2
    assert trials_that_fit(80_000.0, 40_000.0) == 1  # two would leave no headroom
    assert trials_that_fit(1_000.0, 5_000.0) == 1  # one trial alone is what the device runs anyway
    capacity = memory_capacity_mb(torch.device("cpu"))
    assert capacity is not None and capacity > 100
