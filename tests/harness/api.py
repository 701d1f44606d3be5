"""Helpers for HTTP tests: unique names, study bodies, and checks of the error format."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def study_body(name: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "direction": "maximize",
        "metric": "val_accuracy",
        "search_space": {"preset": "optimizers", "starts": []},
        "sampler": {"name": "tpe", "seed": 42},
        "pruner": {"name": "hyperband"},
        "budget": {"n_trials": 5, "max_parallel": 4, "max_failed": 3, "max_retries": 2},
    }
    body.update(overrides)
    return body


def assert_error(
    response: httpx.Response, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "field"}
    assert body["detail"] and "Traceback" not in body["detail"]
    if code is not None:
        assert body["error"] == code
    if field is not None:
        assert body["field"] == field, body
        assert field.split(".")[-1] in body["detail"], body
    return body


def new_study(client: httpx.Client, **overrides: Any) -> int:
    """Create a study with ``study_body`` defaults and return its id."""
    response = client.post("/v1/studies", json=study_body(unique(), **overrides))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def ask_once(base_url: str, study_id: int, results: Any) -> None:
    """Ask one trial and put the status on ``results`` (a multiprocessing queue): run in a child."""
    from harness.servers import ADMIN_TOKEN

    response = httpx.post(
        f"{base_url}/v1/studies/{study_id}/trials",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=120,
    )
    results.put(response.status_code)
