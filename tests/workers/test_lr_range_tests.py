"""Learning-rate range tests end to end: a real `hps serve` on SQLite and PostgreSQL, real HTTP, and a real
`hps worker` that runs each optimizer's test on `digits-5to9-few` before the study samples."""

from __future__ import annotations

import math
from typing import Any

import httpx
import optuna

from harness.api import assert_error, study_body, unique
from harness.cli import Hps
from harness.servers import RunningServer
from harness.workers import start_worker

WHOLE = (1e-6, 1.0)


def range_test_study(client: httpx.Client, **overrides: Any) -> int:
    body = study_body(
        unique("rt"),
        task={"name": "digits", "dataset": "digits-5to9-few", "epochs": 2},
        search_space={"preset": "fine-tuning"},
        lr_range_test={"steps": 40},
        budget={"n_trials": 4, "max_retries": 1},
    )
    body.update(overrides)
    response = client.post("/v1/studies", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def claim(client: httpx.Client, *kinds: str) -> httpx.Response:
    body: dict[str, Any] = {"worker_id": "probe", "device": "cpu", "tasks": ["digits"]}
    if kinds:
        body["kinds"] = list(kinds)
    return client.post("/v1/workers/claim", json=body)


def test_a_worker_runs_each_optimizers_test_and_the_study_samples_in_the_ranges_they_chose(
    api_server: RunningServer,
) -> None:
    with api_server.client() as client:
        study_id = range_test_study(client)
        pending = client.get(f"/v1/studies/{study_id}/lr-range-tests").json()
        assert [(t["optimizer"], t["state"]) for t in pending["items"]] == [
            ("adamw", "queued"),
            ("sgd", "queued"),
        ]
        assert pending["lr_ranges"] is None
        assert pending["items"][1]["params"] == {"optimizer": "sgd", "momentum": 0.9}
        assert (pending["items"][0]["low"], pending["items"][0]["high"]) == WHOLE  # not fitted to a family
        assert_error(client.post(f"/v1/studies/{study_id}/trials"), 409, "range_test_pending")
    worker = start_worker(api_server, "rt-0")
    try:
        assert worker.wait(timeout=300) == 0, worker.output()
    finally:
        worker.stop()
    with api_server.client() as client:
        tested = client.get(f"/v1/studies/{study_id}/lr-range-tests").json()
        study = client.get(f"/v1/studies/{study_id}").json()
        trials = client.get(f"/v1/studies/{study_id}/trials").json()["items"]
    assert study["state"] == "completed", study
    ranges = tested["lr_ranges"]
    assert set(ranges) == {"adamw", "sgd"}
    for test in tested["items"]:
        assert test["state"] == "complete", test
        assert len(test["points"]) >= 7 and test["epochs"] > 0 and test["worker_id"] == "rt-0"
        lrs = [lr for lr, _ in test["points"]]
        assert lrs == sorted(lrs) and math.isclose(lrs[0], 1e-6)
        chosen = test["chosen"]
        assert chosen["narrowed"], chosen  # digits trains: the loss falls well before it diverges
        assert WHOLE[0] <= chosen["low"] < chosen["high"] <= chosen["lr_lowest"] * (1 + 1e-9)
        assert ranges[test["optimizer"]] == [chosen["low"], chosen["high"]]
    assert len(trials) == 4
    for trial in trials:
        low, high = ranges[trial["params"]["optimizer"]]
        assert low <= trial["params"]["lr"] <= high, (trial, ranges)
    # The starts (trials 0 and 1) take the geometric middle of their optimizer's narrowed range.
    for start in trials[:2]:
        low, high = ranges[start["params"]["optimizer"]]
        assert math.isclose(start["params"]["lr"], math.sqrt(low * high))
    # The report shows each test's curve (one chart per optimizer), and so does the CLI.
    hps = Hps(api_server.base_url)
    html = api_server.data_dir / f"report-{study_id}.html"
    assert hps("report", str(study_id), "--output", str(html)).exit_code == 0
    page = html.read_text()
    assert page.count("lr range test: ") == 2 and "Learning-rate range tests" in page
    shown = hps("study", "range-tests", str(study_id))
    assert shown.exit_code == 0 and "adamw" in shown.stdout and "sgd" in shown.stdout
    assert "decades below" in shown.stdout
    assert "lr range tests" in hps("study", "show", str(study_id)).stdout
    # Optuna sees each optimizer's lr as its own parameter, over its own range.
    loaded = optuna.load_study(study_name=study["optuna_name"], storage=api_server.database_url)
    for frozen in loaded.trials:
        optimizer = frozen.params["optimizer"]
        distribution = frozen.distributions[f"lr@{optimizer}"]
        assert (distribution.low, distribution.high) == tuple(ranges[optimizer])


def test_range_tests_are_leased_work_retried_once_then_kept_at_the_whole_range(
    api_server: RunningServer,
) -> None:
    with api_server.client() as client:
        study_id = range_test_study(client, budget={"n_trials": 2, "max_retries": 1})
        base = f"/v1/studies/{study_id}/lr-range-tests"
        # A worker that does not say it runs range tests is given nothing from this study.
        assert claim(client).status_code == 204
        first = claim(client, "trial", "lr_range_test").json()
        assert first["kind"] == "lr_range_test" and first["trial"] is None
        work = first["lr_range_test"]
        assert (work["optimizer"], work["attempt"], work["steps"], work["low"]) == ("adamw", 1, 40, 1e-6)
        assert client.post(f"{base}/adamw/heartbeat").json()["should_stop"] is False
        # An infrastructure failure is retried (max_retries 1) ...
        oom = client.post(
            f"{base}/adamw/complete", json={"state": "failed", "reason": "oom: CUDA out of memory"}
        )
        assert oom.status_code == 200 and oom.json()["state"] == "queued" and oom.json()["attempt"] == 2
        assert_error(client.post(f"{base}/adamw/heartbeat"), 409, "lease_lost")
        second = claim(client, "lr_range_test").json()["lr_range_test"]
        assert (second["optimizer"], second["attempt"]) == ("adamw", 2)
        # ... a failure of the task itself is not: adamw keeps the whole range.
        error = client.post(
            f"{base}/adamw/complete", json={"state": "failed", "reason": "error: ValueError: x"}
        )
        assert error.json()["state"] == "failed"
        sgd = claim(client, "lr_range_test").json()["lr_range_test"]
        assert sgd["optimizer"] == "sgd"
        assert claim(client, "lr_range_test").status_code == 204  # every test is running or ended
        curve = [[1e-6 * 10 ** (k / 10), 2.0 - 1.5 * math.exp(-(((k - 40) / 12) ** 2))] for k in range(60)]
        done = client.post(f"{base}/sgd/complete", json={"state": "complete", "points": curve, "epochs": 1.5})
        assert done.status_code == 200, done.text
        assert_error(client.post(f"{base}/sgd/complete", json={"state": "complete"}), 409, "lease_lost")
        tests = client.get(base).json()
        chosen = tests["items"][1]["chosen"]
        assert chosen["narrowed"] and math.isclose(chosen["lr_lowest"], 1e-2)
        assert tests["lr_ranges"] == {"adamw": list(WHOLE), "sgd": [chosen["low"], chosen["high"]]}
        # The study samples now: its starts come first, fitted to the ranges.
        asked = client.post(f"/v1/studies/{study_id}/trials").json()
        assert asked["params"]["optimizer"] == "adamw" and asked["params"]["lr"] == 1e-3
        sgd_start = client.post(f"/v1/studies/{study_id}/trials").json()
        assert math.isclose(sgd_start["params"]["lr"], math.sqrt(chosen["low"] * chosen["high"]))
        assert_error(client.post(f"{base}/rmsprop/heartbeat"), 404, "range_test_not_found", "optimizer")


def test_a_study_that_cannot_run_a_range_test_is_refused_naming_the_field(api_server: RunningServer) -> None:
    with api_server.client() as client:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"lr_range_test": {"steps": 40}}, "lr_range_test"),  # no task
            (
                {
                    "task": {"name": "digits"},
                    "search_space": {"preset": "bert-grid"},
                    "sampler": {"name": "grid"},
                    "lr_range_test": {},
                },
                "lr_range_test",
            ),
            (
                {
                    "task": {"name": "digits"},
                    "search_space": {
                        "params": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}}
                    },
                    "lr_range_test": {},
                },
                "search_space.params.optimizer",
            ),
            (
                {
                    "task": {"name": "digits"},
                    "search_space": {
                        "params": {
                            "optimizer": {"type": "categorical", "choices": ["adam"]},
                            "lr": {"type": "float", "low": 1e-4, "high": 1.0},
                        }
                    },
                    "lr_range_test": {},
                },
                "search_space.params.lr",
            ),
            ({"task": {"name": "digits"}, "lr_range_test": {"steps": 5}}, "lr_range_test.steps"),
        ]
        for overrides, field in cases:
            response = client.post("/v1/studies", json=study_body(unique(), **overrides))
            assert_error(response, 422, field=field)


def test_a_cancelled_study_tells_the_worker_running_its_range_test_to_stop(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = range_test_study(client)
        assert claim(client, "lr_range_test").status_code == 200
        assert client.post(f"/v1/studies/{study_id}/cancel").status_code == 200
        answer = client.post(f"/v1/studies/{study_id}/lr-range-tests/adamw/heartbeat").json()
        assert answer["should_stop"] is True
        assert claim(client, "lr_range_test").status_code == 204
