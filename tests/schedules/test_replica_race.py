"""Exactly once across real API replicas: several ``hps serve`` processes on one PostgreSQL database, all
at the same due moment (``HPS_SCHEDULER_FIXED_NOW``) and ticking fast, fire each schedule's slot once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from harness.api import unique
from harness.databases import postgres_database
from harness.servers import RunningServer, start_server

BEFORE = "2026-03-01T12:30:00Z"
DUE = "2026-03-01T13:00:05Z"  # the 13:00 slot, on time
REPLICAS = 4
SCHEDULES = 6


def replica(database_url: str, data_dir: Path, now: str) -> RunningServer:
    return start_server(
        database_url, data_dir, HPS_SCHEDULER_FIXED_NOW=now, HPS_SCHEDULER_INTERVAL_SECONDS="0.05"
    )


def runs_of(client: httpx.Client, schedule_id: int) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/schedules/{schedule_id}/runs")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def test_racing_replicas_fire_each_slot_once(tmp_path: Path) -> None:
    template = {"metric": "loss", "search_space": {"preset": "adam"}, "budget": {"n_trials": 2}}
    with postgres_database() as url, ExitStack() as servers:
        first = replica(url, tmp_path / "setup", BEFORE)
        with first.client() as client:
            made = [
                client.post(
                    "/v1/schedules",
                    json={"name": unique("race"), "cron": "0 * * * *", "template": template},
                ).json()
                for _ in range(SCHEDULES)
            ]
        first.process.stop()
        assert all(schedule["next_run_at"] == "2026-03-01T13:00:00Z" for schedule in made), made

        # Start the replicas together, so that their first ticks (at start-up) race.
        with ThreadPoolExecutor(REPLICAS) as pool:
            started = list(pool.map(lambda i: replica(url, tmp_path / f"replica{i}", DUE), range(REPLICAS)))
        for server in started:
            servers.callback(server.process.stop)

        with started[0].client() as client:
            deadline = time.monotonic() + 30
            while not all(runs_of(client, schedule["id"]) for schedule in made):
                assert time.monotonic() < deadline, "not every schedule fired"
                time.sleep(0.1)
            time.sleep(1.0)  # about 20 more ticks per replica at the same moment: nothing more may fire
            names = {
                study["name"] for study in client.get("/v1/studies", params={"limit": 200}).json()["items"]
            }
            for schedule in made:
                (run,) = runs_of(client, schedule["id"])
                assert (run["scheduled_for"], run["outcome"], run["trigger"]) == (
                    "2026-03-01T13:00:00Z",
                    "started",
                    "schedule",
                )
                ours = {name for name in names if name.startswith(schedule["name"] + "-")}
                assert ours == {run["study_name"]}
                shown = client.get(f"/v1/schedules/{schedule['id']}").json()
                assert shown["next_run_at"] == "2026-03-01T14:00:00Z"
