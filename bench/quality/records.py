"""What the benchmark measures and what a strategy did: the tasks (``Bench``), each trial's record and
each strategy run's history, from which every measure is computed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hps.search_spaces.lr_range import LrRange
from hps.wire.studies import TaskSpec

BENCH = Path(__file__).resolve().parents[1]
PRESET, GRID_PRESET = "fine-tuning", "bert-grid"
METRIC = "val_accuracy"
# Told after each epoch of a trial: (epoch, value) -> go on?
Judge = Callable[[int, float], bool]


@dataclass(frozen=True)
class Bench:
    """One task of the benchmark: the study's task, the margin of "as good as the best", and chance."""

    label: str
    task: TaskSpec
    margin: float
    chance: float


def text_bench(epochs: int) -> Bench:
    return Bench(
        "text",
        TaskSpec(name="text-classification", model="minilm-l6", dataset="debian-packages", epochs=epochs),
        margin=0.02,
        chance=1 / 12,
    )


DIGITS = Bench("digits", TaskSpec(name="digits", dataset="digits-5to9-few"), margin=0.03, chance=1 / 5)


@dataclass(frozen=True)
class TrialRecord:
    """One trial: the configuration the strategy asked for and the one trained (for a replay, the
    tabulated one: same optimizer and batch size, the nearest lr), how it ended
    (``complete``, ``pruned`` or ``diverged``), the validation value after each epoch it trained and the
    seconds it cost. Its epochs are those it completed: a diverged run's last, partial epoch is not
    charged (the table does not time it), which flatters the strategies that diverge most, the baselines."""

    number: int
    asked: dict[str, Any]
    params: dict[str, Any]
    state: str
    values: tuple[float, ...]
    seconds: float
    confirms: int | None = None  # a confirmation run: the number of the search trial it re-runs

    @property
    def epochs(self) -> int:
        return len(self.values)

    @property
    def result(self) -> float | None:
        """The value Optuna's best trial is chosen by: the last epoch's, for a complete trial only."""
        return self.values[-1] if self.state == "complete" and self.values else None


@dataclass(frozen=True)
class RangeTestRecord:
    """One optimizer's range test as the strategy used it: the range read off the curve, and its cost."""

    optimizer: str
    chosen: LrRange
    epochs: float
    seconds: float


@dataclass
class History:
    """One strategy's run on one seed: compute spent before the first trial (range tests), then trials."""

    strategy: str
    seed: int
    trials: list[TrialRecord] = field(default_factory=list)
    range_tests: list[RangeTestRecord] = field(default_factory=list)
    recommended: TrialRecord | None = None  # set by a confirmation phase; else the best search trial

    @property
    def setup_epochs(self) -> float:
        return sum(test.epochs for test in self.range_tests)

    @property
    def setup_seconds(self) -> float:
        return sum(test.seconds for test in self.range_tests)

    def timeline(self) -> list[tuple[float, float, TrialRecord]]:
        """(epochs, seconds) spent in all when each trial ended, with the trial."""
        epochs, seconds = self.setup_epochs, self.setup_seconds
        points = []
        for trial in self.trials:
            epochs, seconds = epochs + trial.epochs, seconds + trial.seconds
            points.append((epochs, seconds, trial))
        return points

    @property
    def total_epochs(self) -> float:
        return self.setup_epochs + sum(trial.epochs for trial in self.trials)

    @property
    def total_seconds(self) -> float:
        return self.setup_seconds + sum(trial.seconds for trial in self.trials)

    def best_within(self, *, epochs: float = math.inf, seconds: float = math.inf) -> float | None:
        """The best result of the trials that ended within ``epochs`` and ``seconds`` (None: none had)."""
        found = [
            trial.result
            for spent, took, trial in self.timeline()
            if spent <= epochs and took <= seconds and trial.result is not None
        ]
        return max(found, default=None)


def recommend(history: History) -> TrialRecord | None:
    """The configuration a strategy recommends: the one its confirmation phase chose, else its best search
    result (the earliest of equals)."""
    if history.recommended is not None:
        return history.recommended
    searched = [trial for trial in history.trials if trial.result is not None and trial.confirms is None]
    return max(searched, key=lambda trial: trial.result or 0.0, default=None)
