"""``hps worker --log-format json``: real worker processes against a real server write one JSON object per
line — start-up lines and tracebacks included — and exactly one per-trial line for each trial they ran,
agreeing with what the service recorded."""

from __future__ import annotations

import json
from typing import Any

from harness.api import study_body, unique
from harness.processes import ManagedProcess
from harness.servers import RunningServer
from harness.workers import start_worker

TRIAL_FIELDS = {
    *("time", "level", "logger", "message", "event", "study_id", "trial", "attempt", "task", "model"),
    *("dataset", "params", "state", "value", "reason", "epochs", "wall_time_s", "device", "worker_id"),
}


def json_lines(worker: ManagedProcess) -> list[dict[str, Any]]:
    """Every line the worker wrote, each parsed as a JSON object (any other line fails the test)."""
    lines = [line for line in worker.output().splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    parsed = []
    for line in lines:
        value = json.loads(line)  # raises on any line that is not JSON
        assert isinstance(value, dict) and {"time", "level", "logger", "message"} <= set(value), line
        parsed.append(value)
    return parsed


def run(worker: ManagedProcess) -> list[dict[str, Any]]:
    try:
        assert worker.wait(timeout=180) == 0, worker.output()
    finally:
        worker.stop()
    return json_lines(worker)


def test_json_logs_have_one_line_per_trial_and_nothing_else_but_json(api_server: RunningServer) -> None:
    body = study_body(
        unique("logs"),
        metric="val_loss",
        direction="minimize",
        task={"name": "quadratic", "epochs": 3},
        pruner={"name": "none"},
        budget={"n_trials": 4, "max_failed": 3},
    )
    with api_server.client() as client:
        made = client.post("/v1/studies", json=body)
        assert made.status_code == 201, made.text
    study_id = made.json()["id"]
    # A task that raises: its trial fails (not retried) and the worker logs the traceback.
    failing = start_worker(
        api_server,
        unique("raise"),
        "--log-format",
        "json",
        "--max-trials",
        "1",
        once=False,
        env={"HPS_WORKER_FAULT": "raise@1"},
    )
    failing_lines = run(failing)
    healthy = start_worker(api_server, unique("ok"), "--log-format", "json")
    healthy_lines = run(healthy)

    with api_server.client() as client:
        trials = client.get(f"/v1/studies/{study_id}/trials").json()["items"]
    assert sorted(t["state"] for t in trials) == ["complete", "complete", "complete", "failed"]
    assert any("exception" in line and "Traceback" in line["exception"] for line in failing_lines)
    logged: list[dict[str, Any]] = []
    for lines in (failing_lines, healthy_lines):
        per_trial = [line for line in lines if line.get("event") == "trial"]
        assert all(set(line) == TRIAL_FIELDS for line in per_trial), per_trial
        logged += per_trial
    assert len(logged) == len(trials) == 4  # exactly one line per trial
    by_number = {t["number"]: t for t in trials}
    assert sorted(line["trial"] for line in logged) == sorted(by_number)
    for line in logged:
        trial = by_number[line["trial"]]
        assert line["study_id"] == study_id and line["worker_id"] == trial["attrs"]["worker_id"]
        assert (line["state"], line["value"], line["params"]) == (
            trial["state"],
            trial["value"],
            trial["params"],
        )
        assert (line["task"], line["device"], line["attempt"]) == ("quadratic", "cpu", 1)
        assert line["wall_time_s"] > 0 and line["level"] == "info"
        if line["state"] == "complete":
            assert line["epochs"] == 3 and line["reason"] is None
        else:
            assert line["epochs"] is None and line["reason"].startswith("error:")
