"""A short bench/load.py as a test of correctness, not of speed: three `hps serve` replicas on one
PostgreSQL database, external clients spread over them and real workers claiming, until several budgets
run out. No 5xx, no transport error, exact budgets, no lost report."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench_load() -> ModuleType:
    """bench/load.py, imported by path (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.postgres
@pytest.mark.slow
def test_three_replicas_hold_load_together(tmp_path: Path) -> None:
    load = bench_load()
    outcome = load.run(
        load.Load(replicas=3, clients=12, workers=2, duration_s=10.0, external_budget=8, min_exhausted=2),
        tmp_path,
    )
    load.print_outcome(outcome)
    assert outcome.problems == []
    assert outcome.server_errors() == 0
    assert outcome.errors() == {}
    # The run did what it is for: budgets ran out under contention, and every replica was asked.
    assert len(outcome.exhausted) >= 2
    assert outcome.external_trials >= 2 * outcome.load.external_budget
    assert outcome.worker_trials > 0
    assert len(outcome.trials_by_replica) == 3
    assert len(outcome.completed) == sum(len(v) == load.REPORTS_PER_TRIAL for v in outcome.reported.values())
