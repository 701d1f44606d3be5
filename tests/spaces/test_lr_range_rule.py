"""The rule that reads an lr range off a range test's curve (search_spaces/lr_range.py), held to curves of
known shape."""

from __future__ import annotations

import math

from hps.search_spaces.lr_range import DECADES, RangeTestPoint, narrow_lr_range, smoothed

LOW, HIGH = 1e-6, 1.0


def curve(loss_at: dict[str, float] | None = None, steps: int = 100) -> list[RangeTestPoint]:
    """A range test over [LOW, HIGH]: flat at 2.3 until lr 1e-4, falling to 0.3 at lr 1e-2, then rising."""
    points = []
    for step in range(steps):
        lr = LOW * (HIGH / LOW) ** (step / (steps - 1))
        decades = math.log10(lr)
        loss = 2.3 - 2.0 * math.exp(-(((decades + 2.0) / 1.0) ** 2)) + max(0.0, decades + 2.0) ** 2
        points.append(RangeTestPoint(lr, loss))
    return points


def test_a_curve_with_a_clear_minimum_gives_the_two_decades_below_it() -> None:
    chosen = narrow_lr_range(curve(), LOW, HIGH)
    assert chosen.narrowed
    assert chosen.lr_lowest is not None and chosen.lr_steepest is not None
    assert 10**-2.3 <= chosen.lr_lowest <= 10**-1.7  # the minimum at 1e-2, give or take the smoothing
    assert math.isclose(chosen.high, chosen.lr_lowest)
    assert math.isclose(chosen.low, chosen.lr_lowest / 10**DECADES)
    assert chosen.lr_steepest < chosen.lr_lowest  # the loss falls fastest before its lowest point
    assert "decades below the lowest" in chosen.rule


def test_a_flat_curve_keeps_the_whole_range() -> None:
    flat = [RangeTestPoint(LOW * 10 ** (k / 16), 2.3 + 0.01 * math.sin(k)) for k in range(100)]
    chosen = narrow_lr_range(flat, LOW, HIGH)
    assert (chosen.low, chosen.high, chosen.narrowed) == (LOW, HIGH, False)
    assert "no clear minimum" in chosen.rule


def test_a_curve_that_only_rises_keeps_the_whole_range() -> None:
    rising = [RangeTestPoint(LOW * 10 ** (k / 16), 1.0 + k) for k in range(50)]
    chosen = narrow_lr_range(rising, LOW, HIGH)
    assert not chosen.narrowed and (chosen.low, chosen.high) == (LOW, HIGH)


def test_too_short_a_curve_keeps_the_whole_range() -> None:
    chosen = narrow_lr_range(curve()[:5], LOW, HIGH)
    assert not chosen.narrowed and "5 steps" in chosen.rule


def test_the_range_is_clipped_into_the_range_the_test_covered() -> None:
    # A minimum one decade above the low end: two decades below it would fall outside the test.
    points = [p for p in curve() if p.lr >= 1e-3]
    chosen = narrow_lr_range(points, 1e-3, HIGH)
    assert chosen.narrowed and chosen.low == 1e-3 and chosen.high < 1e-1


def test_non_finite_losses_are_left_out() -> None:
    points = [*curve(), RangeTestPoint(2.0, math.inf), RangeTestPoint(3.0, math.nan)]
    assert narrow_lr_range(points, LOW, HIGH) == narrow_lr_range(curve(), LOW, HIGH)


def test_smoothing_is_centred_and_shrinks_at_the_ends() -> None:
    assert smoothed([0.0, 0.0, 0.0, 7.0, 0.0, 0.0, 0.0], window=7) == [
        7 / 4,
        7 / 5,
        7 / 6,
        1.0,
        7 / 6,
        7 / 5,
        7 / 4,
    ]
