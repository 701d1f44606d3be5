"""Specs of external studies (no task): tests drive their trials themselves through the SDK."""

from __future__ import annotations

from typing import Any


def external_spec(name: str, n_trials: int = 3, pruner: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-parameter study maximizing ``accuracy``, random sampling, no pruning unless asked."""
    return {
        "name": name,
        "direction": "maximize",
        "metric": "accuracy",
        "search_space": {"params": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "scale": "log"}}},
        "sampler": {"name": "random", "seed": 0},
        "pruner": pruner or {"name": "none"},
        "budget": {"n_trials": n_trials},
    }
