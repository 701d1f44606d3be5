"""Ask → report → heartbeat → complete over real HTTP, including every 4xx of these routes and
concurrent askers in separate processes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from typing import Any

import httpx

from harness.api import assert_error, new_study
from harness.servers import ADMIN_TOKEN, RunningServer


def test_the_ask_report_complete_loop(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = new_study(client)
        asked = client.post(f"/v1/studies/{study_id}/trials", json={"worker_id": "test"})
        assert asked.status_code == 201, asked.text
        trial = asked.json()
        assert set(trial) >= {"number", "params", "lease"}
        assert datetime.fromisoformat(trial["lease"]["expires_at"]) > datetime.now(UTC)
        assert trial["params"]["optimizer"] in {"sgd", "adam", "adamw", "rmsprop", "adagrad"}
        base = f"/v1/studies/{study_id}/trials/{trial['number']}"
        for step, value in enumerate([0.3, 0.6]):
            report = client.post(f"{base}/reports", json={"step": step, "value": value})
            assert report.status_code == 200 and report.json() == {
                "should_prune": False,
                "should_stop": False,
            }
        beat = client.post(f"{base}/heartbeat")
        assert beat.status_code == 200 and "expires_at" in beat.json()["lease"]
        running = client.get(base).json()
        assert running["state"] == "running"
        assert running["intermediate_values"] == [{"step": 0, "value": 0.3}, {"step": 1, "value": 0.6}]
        assert_error(client.get(f"/v1/studies/{study_id}/best"), 404)
        done = client.post(f"{base}/complete", json={"state": "complete", "value": 0.6, "attrs": {"k": "v"}})
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "complete" and done.json()["attrs"] == {"k": "v"}
        best = client.get(f"/v1/studies/{study_id}/best").json()
        assert best["number"] == trial["number"] and best["value"] == 0.6
        study = client.get(f"/v1/studies/{study_id}").json()
        assert study["best"]["number"] == trial["number"]
        assert study["progress"]["complete"] == 1 and study["progress"]["remaining"] == 4


def test_replays_conflicts_and_lost_leases(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = new_study(client)
        number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
        base = f"/v1/studies/{study_id}/trials/{number}"
        body = {"state": "pruned", "reason": "pruned at step 2"}
        first = client.post(f"{base}/complete", json=body)
        assert first.status_code == 200
        replay = client.post(f"{base}/complete", json=body)
        assert replay.status_code == 200 and replay.json() == first.json()
        assert_error(
            client.post(f"{base}/complete", json={"state": "complete", "value": 1.0}),
            409,
            "completion_conflict",
        )
        assert_error(client.post(f"{base}/reports", json={"step": 3, "value": 1.0}), 409, "lease_lost")
        assert_error(client.post(f"{base}/heartbeat"), 409, "lease_lost")


def test_trial_404s(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = new_study(client)
        for method, path, body in [
            ("GET", f"/v1/studies/{study_id}/trials/7", None),
            ("POST", f"/v1/studies/{study_id}/trials/7/reports", {"step": 0, "value": 1.0}),
            ("POST", f"/v1/studies/{study_id}/trials/7/heartbeat", None),
            ("POST", f"/v1/studies/{study_id}/trials/7/complete", {"state": "complete", "value": 1.0}),
        ]:
            assert_error(client.request(method, path, json=body), 404, "trial_not_found")
        for method, path in [
            ("POST", "/v1/studies/987654/trials"),
            ("GET", "/v1/studies/987654/trials"),
            ("GET", "/v1/studies/987654/best"),
            ("POST", "/v1/studies/987654/cancel"),
        ]:
            assert_error(client.request(method, path), 404, "study_not_found")


def test_invalid_reports_and_completions_are_422(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = new_study(client)
        number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
        base = f"/v1/studies/{study_id}/trials/{number}"
        assert_error(client.post(f"{base}/reports", json={"step": -1, "value": 1.0}), 422, field="step")
        assert_error(client.post(f"{base}/reports", json={"step": 0, "value": "high"}), 422, field="value")
        assert_error(client.post(f"{base}/reports", json={"step": 0}), 422, field="value")
        assert_error(client.post(f"{base}/complete", json={"state": "complete"}), 422, field="value")
        assert_error(client.post(f"{base}/complete", json={"state": "won"}), 422, field="state")
        assert_error(
            client.post(f"{base}/complete", json={"state": "failed", "reason": "x", "value": 2.0}),
            422,
            field="value",
        )
        assert_error(
            client.post(
                f"{base}/complete",
                content=b'{"state": "complete", "value": 1.0, "attrs": {"n": Infinity}}',
                headers={"content-type": "application/json"},
            ),
            422,
            field="attrs",
        )
        # Nothing was stored by the refused requests: the trial still runs, with no curve.
        trial = client.get(base).json()
        assert trial["state"] == "running" and trial["intermediate_values"] == []


def test_budget_spent_is_409_and_the_study_completes(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = new_study(client, budget={"n_trials": 2})
        numbers = [client.post(f"/v1/studies/{study_id}/trials").json()["number"] for _ in range(2)]
        assert_error(client.post(f"/v1/studies/{study_id}/trials"), 409, "budget_exhausted")
        for number in numbers:
            client.post(
                f"/v1/studies/{study_id}/trials/{number}/complete", json={"state": "complete", "value": 1.0}
            )
        assert client.get(f"/v1/studies/{study_id}").json()["state"] == "completed"
        assert_error(client.post(f"/v1/studies/{study_id}/trials"), 409, "study_not_running")


def test_trial_list_pages_and_filters(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = new_study(client, budget={"n_trials": 5})
        for _ in range(5):
            number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
            if number % 2 == 0:
                client.post(
                    f"/v1/studies/{study_id}/trials/{number}/complete",
                    json={"state": "complete", "value": 1.0},
                )
        first = client.get(f"/v1/studies/{study_id}/trials", params={"limit": 3}).json()
        assert [t["number"] for t in first["items"]] == [0, 1, 2]
        rest = client.get(
            f"/v1/studies/{study_id}/trials", params={"limit": 3, "cursor": first["next_cursor"]}
        ).json()
        assert [t["number"] for t in rest["items"]] == [3, 4] and rest["next_cursor"] is None
        running = client.get(f"/v1/studies/{study_id}/trials", params={"state": "running"}).json()
        assert [t["number"] for t in running["items"]] == [1, 3]


def _ask_many(base_url: str, study_id: int, attempts: int, results: Any) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        for _ in range(attempts):
            response = client.post(f"/v1/studies/{study_id}/trials")
            results.put((response.status_code, response.json().get("number")))


def test_concurrent_askers_in_processes_get_exactly_the_budget(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = new_study(client, budget={"n_trials": 12})
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    askers = [
        context.Process(target=_ask_many, args=(api_server.base_url, study_id, 4, results)) for _ in range(6)
    ]
    for process in askers:
        process.start()
    for process in askers:
        process.join(timeout=120)
        assert process.exitcode == 0
    answers = [results.get(timeout=10) for _ in range(24)]
    granted = sorted(number for status, number in answers if status == 201)
    assert granted == list(range(12))
    assert sum(1 for status, _ in answers if status == 409) == 12
