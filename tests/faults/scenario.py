"""Shared steps of the fault scenarios: studies, waiting, and reading what the service recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from harness.api import unique
from harness.servers import RunningServer

SLOW_ADAM = {
    "params": {
        "optimizer": {"type": "categorical", "choices": ["adam"]},
        "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "scale": "log"},
    }
}


def create_study(
    server: RunningServer, n_trials: int, *, epochs: int = 60, steps: int = 100, **budget: Any
) -> int:
    """A `quadratic` study whose trials take a few seconds (epochs x steps optimizer steps)."""
    body = {
        "name": unique("fault"),
        "task": {"name": "quadratic", "epochs": epochs, "max_steps_per_epoch": steps},
        "search_space": SLOW_ADAM,
        "sampler": {"name": "random", "seed": 5},
        "pruner": {"name": "none"},
        "budget": {"n_trials": n_trials, **budget},
    }
    with server.client() as client:
        created = client.post("/v1/studies", json=body)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def study(server: RunningServer, study_id: int) -> dict[str, Any]:
    with server.client() as client:
        return dict(client.get(f"/v1/studies/{study_id}").json())


def trials(server: RunningServer, study_id: int) -> list[dict[str, Any]]:
    with server.client() as client:
        return list(client.get(f"/v1/studies/{study_id}/trials", params={"limit": 200}).json()["items"])


def wait_until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def running_with_report(server: RunningServer, study_id: int) -> dict[str, Any] | None:
    """A running trial that reported at least once."""
    return next(
        (t for t in trials(server, study_id) if t["state"] == "running" and t["intermediate_values"]),
        None,
    )


def assert_exact_budget(server: RunningServer, study_id: int, n_trials: int) -> dict[str, Any]:
    """The study completed with exactly n_trials counted trials and consistent attempt chains."""
    final = wait_until(lambda: (s := study(server, study_id))["state"] != "running" and s, 120, "the end")
    assert final["state"] == "completed", final
    progress = final["progress"]
    counted = sum(progress[k] for k in ("complete", "pruned", "diverged", "failed", "running", "queued"))
    assert counted == n_trials and progress["remaining"] == 0, progress
    every = trials(server, study_id)
    assert len({t["number"] for t in every}) == len(every)
    for trial in every:
        if trial["retry_of"] is not None:
            original = next(t for t in every if t["number"] == trial["retry_of"])
            assert original["params"] == trial["params"]
    return final
