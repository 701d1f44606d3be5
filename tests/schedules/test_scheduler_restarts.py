"""Real ``hps serve`` processes restarted over a controlled clock (``HPS_SCHEDULER_FIXED_NOW``, a test-only
setting): misfire policies after downtime, no slot fired twice across restarts, and the incumbent a
pipeline fetches once a run's study finishes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from harness.api import unique
from harness.servers import RunningServer, start_server

T0 = "2026-03-01T12:00:00Z"
BACK = "2026-03-01T17:30:00Z"  # down through the 13:00 … 17:00 slots


def server_at(database_url: str, data_dir: Path, now: str) -> RunningServer:
    return start_server(
        database_url, data_dir, HPS_SCHEDULER_FIXED_NOW=now, HPS_SCHEDULER_INTERVAL_SECONDS="0.2"
    )


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not true after {timeout}s")


def runs(client: httpx.Client, schedule_id: int) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/schedules/{schedule_id}/runs").json()["items"])


def test_downtime_restarts_and_promotion_with_real_servers(database_url: str, tmp_path: Path) -> None:
    body: dict[str, Any] = {
        "cron": "0 * * * *",
        "concurrency": "allow",
        "template": {
            "metric": "loss",
            "search_space": {"params": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "scale": "log"}}},
            "budget": {"n_trials": 2},
        },
    }
    server = server_at(database_url, tmp_path / "a", T0)
    try:
        with server.client() as client:
            once = client.post(
                "/v1/schedules", json={**body, "name": unique("once"), "misfire": "run_once"}
            ).json()
            skip = client.post(
                "/v1/schedules", json={**body, "name": unique("skip"), "misfire": "skip"}
            ).json()
            assert once["next_run_at"] == "2026-03-01T13:00:00Z"
            time.sleep(0.6)  # a few ticks at T0: nothing is due
            assert runs(client, once["id"]) == [] and runs(client, skip["id"]) == []
    finally:
        server.process.stop()

    for attempt in range(2):  # back after downtime, then a second restart at the same moment
        server = server_at(database_url, tmp_path / f"b{attempt}", BACK)
        try:
            with server.client() as client:
                caught_up = wait_for(lambda: runs(client, once["id"]))
                skipped = wait_for(lambda: runs(client, skip["id"]))
                time.sleep(0.6)  # more ticks: nothing more may fire
                assert runs(client, once["id"]) == caught_up and runs(client, skip["id"]) == skipped
        finally:
            server.process.stop()
    (run,) = caught_up
    assert (run["trigger"], run["outcome"], run["scheduled_for"]) == (
        "catch_up",
        "started",
        "2026-03-01T17:00:00Z",
    )
    assert "5 slots missed" in run["detail"]
    (missed,) = skipped
    assert (missed["outcome"], missed["study_id"], missed["scheduled_for"]) == (
        "skipped",
        None,
        "2026-03-01T17:00:00Z",
    )

    server = server_at(database_url, tmp_path / "c", BACK)
    try:
        with server.client() as client:
            study_id = run["study_id"]
            for value in (0.4, 0.2):
                asked = client.post(f"/v1/studies/{study_id}/trials").json()
                done = client.post(
                    f"/v1/studies/{study_id}/trials/{asked['number']}/complete",
                    json={"state": "complete", "value": value},
                )
                assert done.status_code == 200, done.text
                if value == 0.2:
                    winner = asked["params"]
            incumbent = wait_for(lambda: client.get(f"/v1/schedules/{once['id']}").json()["incumbent"])
            assert incumbent["params"] == winner and incumbent["value"] == 0.2
            assert (incumbent["metric"], incumbent["study_id"]) == ("loss", study_id)
            (judged,) = runs(client, once["id"])
            assert judged["promotion"]["decision"] == "promoted"
    finally:
        server.process.stop()
