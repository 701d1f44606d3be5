"""Reading the learning-rate range worth searching off a range test's curve.

A range test (``hps.workers.lr_range_test``) trains a fresh model for a few hundred steps while the learning
rate grows exponentially, and records each step's loss. Too small a rate leaves the loss flat; past some
rate the loss falls fast; past a larger one it turns up and diverges. The rule, in order:

1. Smooth the losses with a centred moving average over :data:`SMOOTHING_WINDOW` steps (centred, so the
   smoothed curve does not lag behind the rates).
2. Find the step where the smoothed loss is lowest (``lr_lowest``) and where it falls fastest per decade of
   lr before that (``lr_steepest``).
3. If the smoothed loss never fell below its start by :data:`MIN_DROP` of the start, the curve says nothing:
   the range is kept as it was.
4. Otherwise search the :data:`DECADES` decades of lr that end at ``lr_lowest``, clipped into the range the
   test covered. Rates above the lowest loss are where training turns unstable; the best rate for a run of
   several epochs lies below it, usually one to one and a half decades below (measured on MiniLM and
   digits, docs/benchmarks.md), because a whole run accumulates many more steps at its rate than the test
   spends at any one.

Pure Python: the service applies it, the benchmark replays it, and a test holds it to known curves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SMOOTHING_WINDOW = 7
MIN_DROP = 0.05
DECADES = 2.0


@dataclass(frozen=True)
class RangeTestPoint:
    """One step of a range test: the learning rate it used and the loss of its batch before the step."""

    lr: float
    loss: float


@dataclass(frozen=True)
class LrRange:
    """What a range test's curve says: the range to search (``low``..``high``), the rates where the
    smoothed loss fell fastest and was lowest (None when the curve had no clear minimum), and why, in
    words."""

    low: float
    high: float
    lr_steepest: float | None
    lr_lowest: float | None
    narrowed: bool
    rule: str


def smoothed(losses: Sequence[float], window: int = SMOOTHING_WINDOW) -> list[float]:
    """The centred moving average of ``losses`` (the window shrinks at both ends)."""
    half = window // 2
    out = []
    for index in range(len(losses)):
        part = losses[max(0, index - half) : index + half + 1]
        out.append(sum(part) / len(part))
    return out


def narrow_lr_range(points: Sequence[RangeTestPoint], low: float, high: float) -> LrRange:
    """The range to search, read off ``points`` (ordered by rising lr) of a test that covered
    [``low``, ``high``]; the range itself, unchanged, when the curve shows no clear minimum."""
    finite = [point for point in points if math.isfinite(point.loss) and point.lr > 0]
    if len(finite) < SMOOTHING_WINDOW:
        return LrRange(low, high, None, None, False, f"kept: the test recorded {len(finite)} steps")
    losses = smoothed([point.loss for point in finite])
    lowest = min(range(len(losses)), key=losses.__getitem__)
    drop = (losses[0] - losses[lowest]) / abs(losses[0]) if losses[0] else 0.0
    if drop < MIN_DROP:
        return LrRange(
            low, high, None, None, False,
            f"kept: the smoothed loss fell by {drop:.1%} of its start (less than {MIN_DROP:.0%}), so the "
            "curve has no clear minimum",
        )  # fmt: skip
    lr_lowest = finite[lowest].lr
    lr_steepest = _steepest(finite, losses, lowest)
    new_high = min(high, lr_lowest)
    new_low = max(low, lr_lowest / 10**DECADES)
    if not new_low < new_high:
        return LrRange(
            low, high, lr_steepest, lr_lowest, False, "kept: the lowest loss came at the first rates"
        )
    return LrRange(
        new_low,
        new_high,
        lr_steepest,
        lr_lowest,
        True,
        f"the {DECADES:g} decades below the lowest smoothed loss (lr {lr_lowest:.3g}); the loss fell fastest "
        f"at lr {lr_steepest:.3g}",
    )


def _steepest(points: Sequence[RangeTestPoint], losses: Sequence[float], lowest: int) -> float:
    """The rate where the smoothed loss falls fastest per decade of lr, at or before the lowest loss."""
    best, best_slope = 0, math.inf
    for index in range(1, lowest + 1):
        run = math.log10(points[index].lr) - math.log10(points[index - 1].lr)
        slope = (losses[index] - losses[index - 1]) / run if run > 0 else 0.0
        if slope < best_slope:
            best, best_slope = index, slope
    return points[best].lr
