"""Cost-aware studies at the door of a real server (SQLite and PostgreSQL): every bad ``objectives``,
``recommend`` or completion is a 422 naming its field, never a 500; a completion's cost shows on the trial."""

from __future__ import annotations

from typing import Any

import pytest

from harness.api import assert_error, study_body, unique
from harness.servers import RunningServer

OBJECTIVES = [{"metric": "val_accuracy"}, {"cost": "gpu_seconds"}]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"objectives": [{"metric": "val_accuracy"}, {"cost": "watts"}]}, "objectives.1"),
        ({"objectives": [{"metric": "val_accuracy"}, {"metric": "val_loss"}]}, "objectives.1"),
        (
            {"objectives": [{"metric": "val_accuracy"}, {"cost": "money"}], "pruner": {"name": "none"}},
            "objectives.1.cost",
        ),
        ({"objectives": OBJECTIVES * 2}, "objectives"),
        ({"objectives": OBJECTIVES}, "pruner.name"),  # study_body asks for hyperband
        (
            {"objectives": OBJECTIVES, "pruner": {"name": "none"}, "recommend": {"rule": "best_under"}},
            "recommend",
        ),
        ({"recommend": {"rule": "cheapest_within"}}, "recommend"),
    ],
)
def test_bad_objectives_are_422_naming_the_field(
    api_server: RunningServer, overrides: dict[str, Any], field: str
) -> None:
    with api_server.client() as client:
        answer = client.post("/v1/studies", json=study_body(unique("bad-cost"), **overrides))
    body = assert_error(answer, 422)
    assert body["field"] is not None and body["field"].startswith(field), body


def test_an_external_cost_aware_study_takes_costs_and_refuses_a_complete_without_one(
    api_server: RunningServer,
) -> None:
    body = study_body(unique("ext-cost"), objectives=OBJECTIVES, pruner={"name": "none"})
    with api_server.client() as client:
        created = client.post("/v1/studies", json=body)
        assert created.status_code == 201, created.text
        study = created.json()
        assert study["cost"] == {
            "trials": 0,
            "device_seconds": 0.0,
            "gpu_seconds": 0.0,
            "samples": 0,
            "peak_memory_mb": None,
            "money": None,
        }
        asked = client.post(f"/v1/studies/{study['id']}/trials").json()
        path = f"/v1/studies/{study['id']}/trials/{asked['number']}/complete"
        assert_error(client.post(path, json={"state": "complete", "value": 0.5}), 422, field="cost")
        bad = {"state": "complete", "value": 0.5, "cost": {"device_seconds": -1}}
        assert assert_error(client.post(path, json=bad), 422)["field"].startswith("cost.device_seconds")
        good = {
            "state": "complete",
            "value": 0.5,
            "cost": {"device_seconds": 90.0, "gpus": 0.5, "samples": 10},
        }
        done = client.post(path, json=good)
        assert done.status_code == 200, done.text
        assert done.json()["cost"] == {
            "device_seconds": 90.0,
            "gpus": 0.5,
            "gpu_seconds": 45.0,
            "peak_memory_mb": None,
            "samples": 10,
            "money": None,
        }
        again = client.get(f"/v1/studies/{study['id']}").json()
    assert again["cost"]["gpu_seconds"] == 45.0 and again["cost"]["trials"] == 1
