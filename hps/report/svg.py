"""Inline SVG charts for the HTML report: scatter and line charts with linear or log axes, and horizontal
bar charts. Plain strings, no plotting library and no JavaScript, so a report opens anywhere offline.

Every piece of text that reaches the SVG passes through ``html.escape``: labels carry user-chosen
names (metrics, categorical choices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Literal

Marker = Literal["circle", "cross", "ring", "none"]

WIDTH = 760
HEIGHT = 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 14, 44


@dataclass(frozen=True)
class Point:
    """A data point; ``tip`` becomes its hover text."""

    x: float
    y: float
    tip: str = ""


@dataclass(frozen=True)
class Series:
    """Points drawn one way: dots, crosses, and/or a line (``None`` points break the line; ``dash`` is
    an SVG dash pattern)."""

    label: str
    color: str
    points: list[Point | None]
    marker: Marker = "circle"
    line: bool = False
    step: bool = False
    dash: str = ""


@dataclass(frozen=True)
class Axis:
    """Maps data values in ``[low, high]`` to pixels in ``[start, end]``, linearly or on a log scale."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False
    label: str = ""
    ticks: list[float] = field(default_factory=list)

    def __call__(self, value: float) -> float:
        low, high = self.low, self.high
        if self.log:  # callers put only positive values on a log axis
            low, high, value = math.log10(low), math.log10(high), math.log10(value)
        share = 0.5 if high == low else (value - low) / (high - low)
        return self.start + share * (self.end - self.start)


def axis(
    values: list[float], start: float, end: float, *, log: bool, label: str, integer: bool = False
) -> Axis:
    """An axis spanning ``values`` with a little margin and round ticks (whole numbers only when
    ``integer``: trial numbers and epochs)."""
    low, high = min(values), max(values)
    if log:
        low_exp, high_exp = math.floor(math.log10(low)), math.ceil(math.log10(high))
        high_exp = max(high_exp, low_exp + 1)
        ticks = [10.0**e for e in range(low_exp, high_exp + 1)]
        return Axis(10.0**low_exp, 10.0**high_exp, start, end, True, label, ticks)
    if high == low:
        low, high = low - (abs(low) or 1.0) * 0.1, high + (abs(high) or 1.0) * 0.1
    margin = (high - low) * 0.05
    low, high = low - margin, high + margin
    ticks = [t for t in nice_ticks(low, high) if low <= t <= high and (not integer or t == int(t))]
    return Axis(low, high, start, end, False, label, ticks)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round numbers (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    power = 10.0 ** math.floor(math.log10((high - low) / count))
    # The round step that cuts the range into the number of pieces closest to ``count``.
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda s: abs((high - low) / s - count))
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def chart(series: list[Series], *, x: Axis, y: Axis, title: str, vlines: list[float] | None = None) -> str:
    """A chart of ``series`` on the given axes (build them with ``axis``), as an ``<svg>`` element."""
    parts = [_frame(x, y, title)]
    for value in vlines or []:
        px = x(value)
        parts.append(f'<line class="edge" x1="{px:.1f}" y1="{y.end:.1f}" x2="{px:.1f}" y2="{y.start:.1f}"/>')
    for one in series:
        parts.append(_series(one, x, y))
    parts.append("</svg>")
    return "".join(parts)


def plot_axes(
    xs: list[float], ys: list[float], *, x_log: bool, x_label: str, y_label: str, x_integer: bool = False
) -> tuple[Axis, Axis]:
    """The x and y axes of a standard-size chart of these values."""
    x = axis(xs, _LEFT, WIDTH - _RIGHT, log=x_log, label=x_label, integer=x_integer)
    y = axis(ys, HEIGHT - _BOTTOM, _TOP, log=False, label=y_label)
    return x, y


def bar_chart(items: list[tuple[str, float]], *, title: str, color: str = "#3b6fb6") -> str:
    """Horizontal bars for shares between 0 and 1 (importances), largest first as given."""
    row, label_width, bar_width = 24, 150, WIDTH - 150 - 70
    height = row * len(items) + 8
    parts = [
        f'<svg class="chart bars" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for index, (name, share) in enumerate(items):
        top = 4 + index * row
        width = max(share, 0.0) * bar_width
        parts.append(
            f'<text class="label" x="{label_width - 8}" y="{top + 15}" text-anchor="end">'
            f"{escape(name)}</text>"
            f'<rect x="{label_width}" y="{top + 3}" width="{width:.1f}" height="{row - 8}" fill="{color}">'
            f"<title>{escape(name)}: {share:.3f}</title></rect>"
            f'<text class="value" x="{label_width + width + 6:.1f}" y="{top + 15}">{share:.3f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _frame(x: Axis, y: Axis, title: str) -> str:
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<rect class="plot" x="{_LEFT}" y="{_TOP}" width="{WIDTH - _LEFT - _RIGHT}" '
        f'height="{HEIGHT - _TOP - _BOTTOM}"/>'
    ]
    for tick in x.ticks:
        px = x(tick)
        parts.append(
            f'<line class="grid" x1="{px:.1f}" y1="{y.start:.1f}" x2="{px:.1f}" y2="{y.end:.1f}"/>'
            f'<text class="tick" x="{px:.1f}" y="{HEIGHT - _BOTTOM + 16}" text-anchor="middle">'
            f"{_tick_text(tick, x.log)}</text>"
        )
    for tick in y.ticks:
        py = y(tick)
        parts.append(
            f'<line class="grid" x1="{x.start:.1f}" y1="{py:.1f}" x2="{x.end:.1f}" y2="{py:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">'
            f"{_tick_text(tick, False)}</text>"
        )
    parts.append(
        f'<text class="axis" x="{(x.start + x.end) / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{escape(_short(x.label))}</text>"
        f'<text class="axis" transform="translate(14 {(y.start + y.end) / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(_short(y.label))}</text>'
    )
    return "".join(parts)


def _series(series: Series, x: Axis, y: Axis) -> str:
    parts = [f'<g class="series" data-label="{escape(series.label)}">']
    if series.line:
        dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
        for path in _paths(series, x, y):
            parts.append(f'<path d="{path}" fill="none" stroke="{series.color}" stroke-width="2"{dash}/>')
    for point in series.points:
        if point is None or series.marker == "none":
            continue
        px, py = x(point.x), y(point.y)
        tip = f"<title>{escape(point.tip)}</title>" if point.tip else ""
        if series.marker == "circle":
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{series.color}">{tip}</circle>')
        elif series.marker == "ring":  # drawn around a dot to single it out (a recommended trial)
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="9" fill="none" stroke="{series.color}" '
                f'stroke-width="2.5">{tip}</circle>'
            )
        else:
            parts.append(
                f'<path d="M{px - 4:.1f},{py - 4:.1f}L{px + 4:.1f},{py + 4:.1f}M{px - 4:.1f},{py + 4:.1f}'
                f'L{px + 4:.1f},{py - 4:.1f}" stroke="{series.color}" stroke-width="2">{tip}</path>'
            )
    parts.append("</g>")
    return "".join(parts)


def _paths(series: Series, x: Axis, y: Axis) -> list[str]:
    """SVG path data for the series' line: one path per run of points between ``None`` gaps."""
    paths, current = [], ""
    previous: Point | None = None
    for point in [*series.points, None]:
        if point is None:
            if current:
                paths.append(current)
            current, previous = "", None
            continue
        px, py = x(point.x), y(point.y)
        if previous is None:
            current = f"M{px:.1f},{py:.1f}"
        elif series.step:
            current += f"H{px:.1f}V{py:.1f}"
        else:
            current += f"L{px:.1f},{py:.1f}"
        previous = point
    return paths


def _short(label: str, most: int = 36) -> str:
    """An axis label that fits beside the plot; the full text is in the section's heading."""
    return label if len(label) <= most else label[: most - 1] + "…"


def _tick_text(value: float, log: bool) -> str:
    if log:
        return f"1e{round(math.log10(value))}"
    return f"{value:.4g}"
