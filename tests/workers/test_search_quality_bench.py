"""bench/search_quality.py on small real inputs: its replay of a fine-tuning table (a small one written here
in the table script's format), every strategy run through it, the measures and the summary line; and live
digits training through the same trainer interface, pruning and the range-test strategy included."""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from hps.catalog.registry import load_registry
from hps.report.confirmed import t95
from hps.server.strategies import build_pruner, build_sampler
from hps.server.studies import default_pruner

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
EPOCHS = 4
# Per optimizer, the rate the synthetic curves peak at; the range test's loss is lowest a decade above.
PEAKS = {"adamw": 1e-4, "sgd": 1e-2}
RATES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
GRID_RATES = (2e-5, 3e-5, 5e-5)


# bench/ is no package: its script and the script's own package are imported as the script imports them.
sys.path.insert(0, str(BENCH_DIR))
import search_quality as sq  # noqa: E402
from quality import measures, records, strategies, trainers  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def peak(optimizer: str, lr: float, batch_size: int, seed: int) -> float:
    """The final validation accuracy of a synthetic run: best at the optimizer's peak rate."""
    distance = abs(math.log10(lr / PEAKS[optimizer]))
    return max(0.08, 0.8 - 0.15 * distance - 0.01 * seed - (0.02 if batch_size == 32 else 0.0))


def run_row(params: dict[str, Any], batch_size: int, epochs: int, seed: int) -> dict[str, Any]:
    optimizer, lr = params["optimizer"], params["lr"]
    top = peak(optimizer, lr, batch_size, seed)
    values = [0.08 + (top - 0.08) * epoch / epochs for epoch in range(1, epochs + 1)]
    state = "complete"
    test: float | None = top - 0.03
    if (lr >= 0.1 and optimizer == "adamw") or lr >= 1.0:
        # Diverges: AdamW in its first epoch, SGD after one.
        values, state, test = ([] if optimizer == "adamw" else values[:1]), "diverged", None
    per_epoch = 3.0 if batch_size == 16 else 2.0
    if (optimizer, lr, seed) == ("adamw", 1e-3, 1):
        per_epoch *= 3  # something else ran on the machine meanwhile
    return {
        "kind": "run",
        "key": json.dumps([f"run/{epochs}", params, batch_size, seed], sort_keys=True),
        "params": params,
        "batch_size": batch_size,
        "epochs": epochs,
        "seed": seed,
        "state": state,
        "reason": None if state == "complete" else "loss is nan at epoch 1 step 3",
        "values": values,
        "seconds": [per_epoch * epoch for epoch in range(1, len(values) + 1)],
        "steps": 12 * len(values),
        "test_accuracy": test,
    }


def range_row(optimizer: str, seed: int) -> dict[str, Any]:
    """Flat, then falling to its lowest a decade above the peak rate, then exploding."""
    params = {"optimizer": "sgd", "momentum": 0.9} if optimizer == "sgd" else {"optimizer": optimizer}
    lowest_at = math.log10(PEAKS[optimizer] * 10)
    points = []
    for step in range(100):
        lr = 1e-6 * 1e6 ** (step / 99)
        x = math.log10(lr) - lowest_at
        loss = 2.5 if x < -2 else 2.5 - 0.75 * (x + 2) if x <= 0 else 1.0 * 10 ** (2 * x)
        if loss > 4.0:
            break
        points.append([lr, loss])
    return {
        "kind": "range_test",
        "key": json.dumps(["range_test", params, 16, seed], sort_keys=True),
        "params": params,
        "seed": seed,
        "low": 1e-6,
        "high": 1.0,
        "steps": 100,
        "batch_size": 16,
        "points": points,
        "stopped_early": "the loss exceeds 4x its lowest",
        "epochs": len(points) / 12,
        "wall_time_s": len(points) * 0.25,
    }


def seed_rows(seed: int) -> list[dict[str, Any]]:
    rows = [range_row(optimizer, seed) for optimizer in ("adamw", "sgd")]
    # The search at the task's batch size; the grid tries 16 and 32 itself.
    for lr in sorted(RATES + GRID_RATES):
        rows.append(run_row({"optimizer": "adamw", "lr": lr}, 16, EPOCHS, seed))
    for lr in RATES:
        rows.append(run_row({"optimizer": "sgd", "momentum": 0.9, "lr": lr}, 16, EPOCHS, seed))
    for batch_size in (16, 32):
        for epochs in (2, 3, 4):
            for lr in GRID_RATES:
                params = {"optimizer": "adamw", "lr": lr, "schedule": "linear_warmup", "warmup_ratio": 0.1}
                rows.append(run_row(params, batch_size, epochs, seed))
    return rows


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeds 0 and 1 complete, seed 2 cut off halfway (as while the table script still runs)."""
    provenance = {
        "kind": "provenance",
        "command": "python bench/fine_tuning_table.py",
        "commit": "0" * 40,
        "started": "2026-01-01T00:00:00+00:00",
        "machine": "test",
        "torch": torch.__version__,
        "task": "text-classification",
        "model": "minilm-l6",
        "dataset": "debian-packages",
        "metric": "val_accuracy",
        "seeds": [0, 1, 2],
        "search_epochs": EPOCHS,
        "rates": sorted(RATES + GRID_RATES),
        "range_test": {"low": 1e-6, "high": 1.0, "steps": 100, "batch_size": 16},
    }
    # A resumed table says "done" once for each run of the script that finished.
    rows = [
        *seed_rows(0),
        {"kind": "done", "finished": "2026-01-01T01:00:00+00:00"},
        *seed_rows(1),
        *seed_rows(2)[:20],
    ]
    path = tmp_path_factory.mktemp("table") / "table.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [provenance, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def table(table_path: Path) -> Any:
    return trainers.Table(table_path, strategies.grid_points())


def prune_after(last: int) -> Any:
    return lambda epoch, value: epoch < last


def test_table_uses_complete_seeds_and_the_nearest_rate(table: Any) -> None:
    assert table.seeds == (0, 1)
    assert table.ignored_seeds == (2,)
    assert table.row({"optimizer": "adamw", "lr": 1.4e-4, "batch_size": 16}, 1)["params"]["lr"] == 1e-4
    assert table.row({"optimizer": "adamw", "lr": 4e-5, "batch_size": 16}, 0)["params"]["lr"] == 5e-5
    # SGD has no grid rates: 4e-5 lies 0.40 decades from 1e-4 and 0.60 from 1e-5.
    assert (
        table.row({"optimizer": "sgd", "momentum": 0.9, "lr": 4e-5, "batch_size": 16}, 0)["params"]["lr"]
        == 1e-4
    )
    point = {"optimizer": "adamw", "lr": 3e-5, "schedule": "linear_warmup", "batch_size": 32, "epochs": 3}
    assert table.row(point, 1)["epochs"] == 3


def test_a_replayed_trial_costs_the_epochs_it_ran(table: Any) -> None:
    trainer = trainers.ReplayTrainer(table, 1 / 12, 16)
    params = {"optimizer": "adamw", "lr": 1e-3}  # at the study's batch size, as the preset leaves it
    full = trainer.run(params, 0, 1, trainers.always_continue)
    pruned = trainer.run(params, 0, 1, prune_after(2))
    row = table.row({**params, "batch_size": 16}, 1)  # (strategy seed 0 + trial 1) mod 2 seeds
    assert full.asked == params and full.params == {**params, "batch_size": 16}
    # Charged the table's typical time for the batch size, not the slowed row's.
    assert row["seconds"] == [9.0, 18.0, 27.0, 36.0]
    assert (full.state, full.values, full.seconds) == ("complete", tuple(row["values"]), 3.0 * 4)
    assert (pruned.state, pruned.epochs, pruned.seconds) == ("pruned", 2, 3.0 * 2)
    assert pruned.values == full.values[:2] and pruned.result is None and full.result == row["values"][-1]
    diverged = trainer.run({"optimizer": "sgd", "momentum": 0.9, "lr": 0.9}, 1, 0, trainers.always_continue)
    assert (diverged.state, diverged.epochs, diverged.result) == ("diverged", 1, None)
    assert trainer.test_accuracy(params) == pytest.approx(
        (peak("adamw", 1e-3, 16, 0) + peak("adamw", 1e-3, 16, 1)) / 2 - 0.03
    )


def test_every_strategy_replays_and_charges_compute_cumulatively(table: Any) -> None:
    trainer = trainers.ReplayTrainer(table, 1 / 12, 16)
    registry = load_registry()
    found = strategies.strategies(records.text_bench(EPOCHS), registry, grid=strategies.grid_points())
    assert list(found) == [
        strategies.RANDOM,
        strategies.OPTUNA,
        strategies.GRID,
        strategies.HPS,
        strategies.HPS_RANGE_TEST,
        strategies.HPS_CONFIRM,
    ]
    histories = sq.run_all(found, trainer, range(2), "text")
    for name, runs in histories.items():
        for history in runs:
            searched = [trial for trial in history.trials if trial.confirms is None]
            assert len(searched) == (18 if name == strategies.GRID else 20)
            timeline = history.timeline()
            spent = [(epochs, seconds) for epochs, seconds, _ in timeline]
            assert spent == sorted(spent)
            assert spent[-1] == pytest.approx((history.total_epochs, history.total_seconds))
            first_epochs, _, first = timeline[0]
            assert first_epochs == history.setup_epochs + first.epochs
    grid = histories[strategies.GRID][0].trials
    assert {json.dumps(t.asked, sort_keys=True) for t in grid} == {
        json.dumps(point, sort_keys=True) for point in strategies.grid_points()
    }
    assert all(t.epochs == t.asked["epochs"] for t in grid)
    hps = [t for h in histories[strategies.HPS] for t in h.trials]
    full = max(t.epochs for t in hps)
    assert full == EPOCHS and any(t.state == "pruned" for t in hps)
    assert all(t.epochs < full for t in hps if t.state == "pruned")
    plan = strategies.service_plan(records.text_bench(EPOCHS), registry, range_test=False)
    starts = plan.spec.search_space.starts
    assert [t.asked for t in histories[strategies.HPS][0].trials[:2]] == starts
    tested = histories[strategies.HPS_RANGE_TEST][0]
    assert [test.optimizer for test in tested.range_tests] == ["adamw", "sgd"]
    assert tested.setup_epochs > 0 and tested.setup_seconds > 0
    for test, start in zip(tested.range_tests, tested.trials[:2], strict=True):
        # The range ends at the curve's smoothed lowest loss: a decade above the peak, or a few steps below.
        assert test.chosen.narrowed
        assert PEAKS[test.optimizer] * 10 / 2 <= test.chosen.high <= PEAKS[test.optimizer] * 10
        assert start.asked["lr"] == pytest.approx(math.sqrt(test.chosen.low * test.chosen.high))
    for confirmed in histories[strategies.HPS_CONFIRM]:
        check_confirmation(confirmed)
    measured = measures.measure(records.text_bench(EPOCHS), histories, trainer)
    random = measured.summaries[strategies.RANDOM]
    for name, summary in measured.summaries.items():
        assert measured.versus[strategies.RANDOM][name] == (
            random.epochs_to_target / summary.epochs_to_target,
            random.seconds_to_target / summary.seconds_to_target,
        )
        assert measured.versus[strategies.GRID][name][0] == (
            measured.summaries[strategies.GRID].epochs_to_target / summary.epochs_to_target
        )


def check_confirmation(history: Any) -> None:
    """hps+confirm: the search's 3 best distinct configurations re-run 3 times each, in full, after the
    search; the recommendation is the one whose fresh runs have the best lower 90% bound."""
    searched = [trial for trial in history.trials if trial.confirms is None]
    runs = [trial for trial in history.trials if trial.confirms is not None]
    assert history.trials == searched + runs and len(runs) == 9
    by_number = {trial.number: trial for trial in searched}
    sources = list(dict.fromkeys(run.confirms for run in runs))
    assert len(sources) == 3
    assert len({json.dumps(by_number[n].asked, sort_keys=True) for n in sources}) == 3
    best = max(t.result for t in searched if t.result is not None)
    assert by_number[sources[0]].result == best
    bounds = {}
    for number in sources:
        group = [run for run in runs if run.confirms == number]
        assert [run.asked for run in group] == [by_number[number].asked] * 3
        assert all(run.state != "pruned" for run in group)
        values = [run.result for run in group]
        if None not in values:
            half = t95(2) * statistics.stdev(values) / math.sqrt(3)
            bounds[number] = statistics.fmean(values) - half
    if bounds:
        assert history.recommended is by_number[max(bounds, key=lambda n: bounds[n])]
        assert records.recommend(history) is history.recommended


def test_the_default_pruner_is_the_candidate_the_benchmark_chose() -> None:
    for epochs in (1, 3, 4, 8):
        chosen = strategies.candidate_pruners(epochs)["sh@half"]
        assert default_pruner(epochs) == chosen
    plan = strategies.service_plan(records.DIGITS, load_registry(), range_test=False)
    assert plan.spec.pruner == default_pruner(8)


def test_the_summary_line_comes_last(
    table_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results.json"
    sq.main(
        ["--quick", "--tasks", "text", "--seeds", "2", "--table", str(table_path), "--output", str(output)]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("summary: text (margin 0.02, 2 seeds")
    assert not any(line.startswith("summary:") for line in lines[:-1])
    results = json.loads(output.read_text(encoding="utf-8"))
    assert results["summary"] == lines[-1]
    text = results["tasks"]["text"]
    assert text["table"]["seeds_used"] == [0, 1] and text["table"]["seeds_ignored_incomplete"] == [2]
    assert text["target"] == pytest.approx(text["best"] - 0.02)
    assert set(text["runs"]) == {
        strategies.RANDOM,
        strategies.OPTUNA,
        strategies.GRID,
        strategies.HPS,
        strategies.HPS_RANGE_TEST,
        strategies.HPS_CONFIRM,
    }


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from hps.workers.tasks.digits import make_task

    resolved = load_registry().resolve("digits", None, "digits-5to9-few")
    task = make_task(resolved.model, resolved.dataset, tmp_path_factory.mktemp("digits-cache"))
    return trainers.LiveTrainer(task, resolved, 0.2)


def test_live_digits_trials_and_a_short_hps_search(digits: Any) -> None:
    params = {"optimizer": "adamw", "lr": 3e-3}
    full = digits.run(params, 0, 0, trainers.always_continue)
    pruned = digits.run(params, 0, 0, prune_after(2))
    assert full.state == "complete" and full.epochs == digits.resolved.epochs == 8
    assert pruned.state == "pruned" and pruned.values == full.values[:2]
    plan = strategies.service_plan(records.DIGITS, load_registry(), range_test=False)
    sampler = build_sampler(plan.spec.sampler.model_copy(update={"seed": 0}), plan.space)
    starts = plan.spec.search_space.starts
    history = strategies.run_search(
        records.History(strategies.HPS, 0),
        digits,
        plan.space,
        sampler,
        build_pruner(plan.spec.pruner),
        starts,
        3,
        reseed=True,
    )
    assert [t.asked for t in history.trials[:2]] == starts and len(history.trials) == 3
    assert history.total_epochs == sum(t.epochs for t in history.trials) <= 3 * 8


def test_live_digits_range_test_strategy(digits: Any) -> None:
    strategy = strategies.hps_with_range_test(
        strategies.service_plan(records.DIGITS, load_registry(), range_test=True)
    )
    history = strategy(digits, 0)
    assert [test.optimizer for test in history.range_tests] == ["adamw", "sgd"]
    assert all(test.chosen.high <= 1.0 and test.epochs > 0 for test in history.range_tests)
    epochs, _, first = history.timeline()[0]
    assert epochs == history.setup_epochs + first.epochs
    ranges = {test.optimizer: test.chosen for test in history.range_tests}
    for trial in history.trials:
        chosen = ranges[trial.asked["optimizer"]]
        assert chosen.low <= trial.asked["lr"] <= chosen.high
