"""The measures of a task's strategies (compute to target, best at equal compute, held-out test of the
recommended configuration) and their table and summary line."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from quality.records import Bench, History, recommend
from quality.strategies import GRID, RANDOM
from quality.trainers import Trainer


@dataclass(frozen=True)
class Reach:
    """Compute spent until the first result at or above the target (all of it when ``reached`` is False)."""

    epochs: float
    seconds: float
    reached: bool


def reach(history: History, target: float) -> Reach:
    for epochs, seconds, trial in history.timeline():
        if trial.result is not None and trial.result >= target:
            return Reach(epochs, seconds, True)
    return Reach(history.total_epochs, history.total_seconds, False)


@dataclass(frozen=True)
class Summary:
    """One strategy on one task over its seeds: medians of compute, means of results."""

    strategy: str
    seeds: int
    reached: int
    epochs_to_target: float
    seconds_to_target: float
    total_epochs: float
    total_seconds: float
    best_at_equal_epochs: float
    best_at_equal_seconds: float
    best: float
    test: float

    @property
    def censored(self) -> bool:
        """Whether most seeds never reached the target: the medians of compute are then lower bounds."""
        return 2 * self.reached < self.seeds


@dataclass(frozen=True)
class Measured:
    """A task's measures: the best result of any strategy, the target, the equal-compute budget in epochs,
    each strategy's summary and its ratios (epochs, seconds) against random and, on text, the grid."""

    best: float
    target: float
    equal_epochs: float
    equal_seconds: float
    summaries: dict[str, Summary]
    versus: dict[str, dict[str, tuple[float, float]]]


def measure(bench: Bench, histories: Mapping[str, list[History]], trainer: Trainer) -> Measured:
    """The measures of the module docstring."""
    results = [
        t.result for runs in histories.values() for h in runs for t in h.trials if t.result is not None
    ]
    best = max(results)
    target = best - bench.margin
    equal_epochs = min(statistics.median(h.total_epochs for h in runs) for runs in histories.values())
    equal_seconds = min(statistics.median(h.total_seconds for h in runs) for runs in histories.values())
    summaries = {}
    for name, runs in histories.items():
        reaches = [reach(h, target) for h in runs]
        recommended = [recommend(h) for h in runs]
        summaries[name] = Summary(
            strategy=name,
            seeds=len(runs),
            reached=sum(r.reached for r in reaches),
            epochs_to_target=statistics.median(r.epochs for r in reaches),
            seconds_to_target=statistics.median(r.seconds for r in reaches),
            total_epochs=statistics.median(h.total_epochs for h in runs),
            total_seconds=statistics.median(h.total_seconds for h in runs),
            best_at_equal_epochs=statistics.mean(
                or_chance(h.best_within(epochs=equal_epochs), bench.chance) for h in runs
            ),
            best_at_equal_seconds=statistics.mean(
                or_chance(h.best_within(seconds=equal_seconds), bench.chance) for h in runs
            ),
            best=statistics.mean(or_chance(t.result if t else None, bench.chance) for t in recommended),
            test=statistics.mean(trainer.test_accuracy(t.params) if t else bench.chance for t in recommended),
        )
    versus = {base: _ratios(summaries, base) for base in (RANDOM, GRID) if base in summaries}
    return Measured(best, target, equal_epochs, equal_seconds, summaries, versus)


def or_chance(value: float | None, default: float) -> float:
    return default if value is None else value


def _ratios(summaries: Mapping[str, Summary], base: str) -> dict[str, tuple[float, float]]:
    """The base's median compute to target over each strategy's, epochs and seconds (> 1: less compute)."""
    of = summaries[base]
    return {
        name: (of.epochs_to_target / s.epochs_to_target, of.seconds_to_target / s.seconds_to_target)
        for name, s in summaries.items()
    }


def spread(bench: Bench, runs: list[History]) -> dict[str, float]:
    """How random configurations fare: quantiles of their results (a trial with none, diverged, counts as
    chance) and the share within the margin of chance."""
    results = sorted(or_chance(t.result, bench.chance) for h in runs for t in h.trials)
    q25, median, q75 = statistics.quantiles(results, n=4, method="inclusive")
    return {
        "trials": len(results),
        "min": results[0],
        "q25": q25,
        "median": median,
        "q75": q75,
        "max": results[-1],
        "at_chance": sum(r <= bench.chance + bench.margin for r in results) / len(results),
        "diverged": sum(t.state == "diverged" for h in runs for t in h.trials),
    }


def report(bench: Bench, measured: Measured, random_spread: Mapping[str, float], header: str) -> list[str]:
    """The task's table, as lines."""
    lines = [
        "",
        header,
        f"target: within {bench.margin} of the best result any strategy found ({measured.best:.4f}), i.e. "
        f">= {measured.target:.4f}. epochs, seconds: median compute to target ('>': most seeds never got "
        "there, so a lower bound); x rand, x grid: their median over the strategy's (> 1: less compute); "
        f"best@E, best@S: mean best result within E = {measured.equal_epochs:g} epochs, S = "
        f"{measured.equal_seconds:.1f} s (the smallest median totals); best: of the recommended "
        "configuration; test: its held-out accuracy",
        f"{'strategy':15} {'reached':>7} {'epochs':>7} {'x rand':>6} {'x grid':>6} {'seconds':>8} "
        f"{'x rand':>6} {'x grid':>6} {'total ep':>8} {'total s':>8} {'best@E':>7} {'best@S':>7} {'best':>7} "
        f"{'test':>7}",
    ]
    for name, s in measured.summaries.items():
        mark = ">" if s.censored else " "
        by_random = measured.versus[RANDOM][name]
        by_grid = measured.versus.get(GRID, {}).get(name)
        grid = (f"{by_grid[0]:6.2f}", f"{by_grid[1]:6.2f}") if by_grid else ("     -", "     -")
        lines.append(
            f"{name:15} {s.reached:>4}/{s.seeds:<2} {mark}{s.epochs_to_target:6.1f} {by_random[0]:6.2f} "
            f"{grid[0]} {mark}{s.seconds_to_target:7.1f} {by_random[1]:6.2f} {grid[1]} "
            f"{s.total_epochs:8.1f} {s.total_seconds:8.1f} {s.best_at_equal_epochs:7.4f} "
            f"{s.best_at_equal_seconds:7.4f} {s.best:7.4f} {s.test:7.4f}"
        )
    r = random_spread
    lines.append(
        f"random configurations ({r['trials']:g} trials of random search): results min {r['min']:.3f} / q25 "
        f"{r['q25']:.3f} / median {r['median']:.3f} / q75 {r['q75']:.3f} / max {r['max']:.3f}; "
        f"{r['at_chance']:.0%} within {bench.margin} of chance ({bench.chance:.3f}); "
        f"{r['diverged']:g} diverged"
    )
    return lines


def summary_part(bench: Bench, measured: Measured, seeds: int) -> str:
    """The task's part of the summary line: compute ratios (with how many seeds reached the target) and
    test accuracies."""
    names, summaries = list(measured.summaries), measured.summaries

    def ratios(base: str, which: int) -> str:
        return ", ".join(
            f"{n} {measured.versus[base][n][which]:.2f}x ({summaries[n].reached}/{summaries[n].seeds})"
            for n in names
            if n != base
        )

    part = (
        f"{bench.label} (margin {bench.margin}, {seeds} seeds; in brackets: seeds that reached the target): "
    )
    part += f"epochs-to-target vs random ({summaries[RANDOM].reached}/{seeds}) {ratios(RANDOM, 0)}"
    if GRID in measured.versus:
        part += f"; vs grid ({summaries[GRID].reached}/{seeds}) {ratios(GRID, 0)}"
    part += f"; seconds vs random {', '.join(f'{n} {measured.versus[RANDOM][n][1]:.2f}x' for n in names[1:])}"
    tests = ", ".join(f"{n} {s.test:.3f}" for n, s in summaries.items())
    return part + f"; test {tests}"
