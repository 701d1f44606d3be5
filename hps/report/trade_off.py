"""The HTML of a report's cost sections: what the study cost, and for a cost-aware study its metric
against its cost with the Pareto front highlighted and the recommended trial ringed. Every piece of
user-controlled text is escaped where it is written, as in ``html``."""

from __future__ import annotations

from html import escape

from hps.report.svg import Point, Series, chart, plot_axes
from hps.wire.costs import CostTotals
from hps.wire.reports import CostTradeOff

FRONT = "#c0392b"
OTHERS = "#9aa3ad"
PICKED = "#1d2430"


def cost_section(cost: CostTotals | None) -> str:
    """What the study's finished trials cost together."""
    if cost is None or cost.trials == 0:
        return ""
    cells = [
        ("trials with a cost", f"{cost.trials}"),
        ("device-seconds", f"{cost.device_seconds:,.1f}"),
        ("GPU-seconds", f"{cost.gpu_seconds:,.1f}"),
        ("samples", f"{cost.samples:,}"),
        ("largest peak memory (MiB)", "-" if cost.peak_memory_mb is None else f"{cost.peak_memory_mb:,.0f}"),
        ("money", "-" if cost.money is None else f"{cost.money:,.4f}"),
    ]
    rows = "".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in cells)
    return f'<section id="cost"><h2>Cost</h2><table>{rows}</table></section>'


def trade_off_section(found: CostTradeOff | None, metric: str) -> str:
    """The metric-against-cost chart, the front as a table, and the rule's pick."""
    if found is None:
        return ""
    name = escape(found.cost)
    heading = f'<section id="trade-off"><h2>{escape(metric)} vs {name}: the Pareto front</h2>'
    summary = f'<div class="recommendation"><p class="summary">{escape(found.summary)}</p></div>'
    if not found.points:
        return heading + summary + "</section>"
    front = [p for p in found.points if p.on_front]
    others = [p for p in found.points if not p.on_front]

    def placed(point_number: int, value: float, cost: float, optimizer: str) -> Point:
        tip = f"trial {point_number} ({optimizer}): {metric} {value:.4g}, {found.cost} {cost:.4g}"
        return Point(cost, value, tip)

    series = [
        Series("other trials", OTHERS, [placed(p.number, p.value, p.cost, p.optimizer) for p in others]),
        Series(
            "Pareto front",
            FRONT,
            [placed(p.number, p.value, p.cost, p.optimizer) for p in front],
            line=True,
            step=True,
        ),
    ]
    chosen = next((p for p in found.points if p.number == found.recommended), None)
    if chosen is not None:
        series.append(
            Series(
                "recommended",
                PICKED,
                [placed(chosen.number, chosen.value, chosen.cost, chosen.optimizer)],
                marker="ring",
            )
        )
    costs = [p.cost for p in found.points]
    positive = all(c > 0 for c in costs)
    x, y = plot_axes(
        costs,
        [p.value for p in found.points],
        x_log=positive and max(costs) / min(costs) > 100,
        x_label=found.cost,
        y_label=metric,
    )
    svg = chart(series, x=x, y=y, title=f"{metric} vs {found.cost}")
    legend = (
        '<p class="legend">'
        f'<span><span class="swatch" style="background:{FRONT}"></span>Pareto front</span>'
        f'<span><span class="swatch" style="background:{OTHERS}"></span>dominated trials</span>'
        f'<span><span class="swatch" style="background:{PICKED}"></span>ringed: recommended</span></p>'
    )
    rows = "".join(
        f"<tr><td>{p.number}</td><td>{escape(p.optimizer)}</td><td>{p.value:.4g}</td><td>{p.cost:.4g}</td>"
        f"<td>{'✔' if p.number == found.recommended else ''}</td></tr>"
        for p in front
    )
    table = (
        f"<table><tr><th>trial</th><th>optimizer</th><th>{escape(metric)}</th><th>{name}</th>"
        f"<th>recommended</th></tr>{rows}</table>"
    )
    note = (
        f'<p class="note">Rule: {escape(found.rule)}. A trial is on the front when no other is at least '
        "as good on both and better on one.</p>"
    )
    return heading + summary + svg + legend + table + note + "</section>"
