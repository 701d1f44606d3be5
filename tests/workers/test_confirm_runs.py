"""Seed-robust recommendations (`budget.confirm`) end to end: a real `hps serve` on SQLite and PostgreSQL and
a real `hps worker` on `digits-5to9-few`; after the search, the best configurations run again with fresh
seeds, are never pruned, and the report ranks them by a confidence bound."""

from __future__ import annotations

from collections import Counter

from harness.api import assert_error, study_body, unique
from harness.cli import Hps
from harness.servers import RunningServer
from harness.workers import start_worker


def test_the_best_configurations_rerun_with_fresh_seeds_and_the_report_ranks_them_by_a_bound(
    api_server: RunningServer,
) -> None:
    body = study_body(
        unique("confirm"),
        task={"name": "digits", "dataset": "digits-5to9-few", "epochs": 3},
        search_space={"preset": "fine-tuning", "starts": []},
        sampler={"name": "random", "seed": 4},
        pruner={"name": "median", "n_startup_trials": 0},
        budget={"n_trials": 5, "confirm": {"top_k": 2, "seeds": 3}},
    )
    with api_server.client() as client:
        created = client.post("/v1/studies", json=body)
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]
    worker = start_worker(api_server, "confirm-0")
    try:
        assert worker.wait(timeout=300) == 0, worker.output()
    finally:
        worker.stop()
    with api_server.client() as client:
        study = client.get(f"/v1/studies/{study_id}").json()
        trials = client.get(f"/v1/studies/{study_id}/trials").json()["items"]
        report = client.get(f"/v1/studies/{study_id}/report").json()
    assert study["state"] == "completed" and study["state_reason"] == "budget spent"
    search = [t for t in trials if t["confirms"] is None]
    runs = [t for t in trials if t["confirms"] is not None]
    assert len(search) == 5 and len(runs) == 6
    best_two = sorted((t for t in search if t["state"] == "complete"), key=lambda t: -t["value"])[:2]
    assert Counter(t["confirms"] for t in runs) == {t["number"]: 3 for t in best_two}
    by_number = {t["number"]: t for t in trials}
    for run in runs:
        assert run["params"] == by_number[run["confirms"]]["params"]
        assert run["state"] == "complete"  # never pruned, though the median pruner prunes from the start
        assert len(run["intermediate_values"]) == 3
    confirmed = report["confirmed"]
    assert [c["trial"] for c in confirmed] and len(confirmed) == 2
    for config in confirmed:
        assert len(config["values"]) == 3 and config["low"] <= config["mean"] <= config["high"]
        assert config["bound"] == config["low"]  # maximizing: the pessimistic end is the lower one
    assert confirmed[0]["bound"] >= confirmed[1]["bound"]
    advice = report["recommendation"]
    assert advice["ranked_by"] == "confirmed bound" and advice["best_trial"] == confirmed[0]["trial"]
    assert isinstance(advice["distinguishable"], bool)
    assert ("not distinguishable" in advice["summary"]) == (not advice["distinguishable"])
    html = api_server.data_dir / f"confirm-{study_id}.html"
    assert Hps(api_server.base_url)("report", str(study_id), "--output", str(html)).exit_code == 0
    assert "Confirmed on fresh seeds" in html.read_text()


def test_confirm_settings_are_checked_at_the_door(api_server: RunningServer) -> None:
    with api_server.client() as client:
        for confirm, field in (
            ({"top_k": 0}, "budget.confirm.top_k"),
            ({"seeds": 1}, "budget.confirm.seeds"),
            ({"seeds": 3, "rounds": 2}, "budget.confirm.rounds"),
        ):
            response = client.post("/v1/studies", json=study_body(unique(), budget={"confirm": confirm}))
            assert_error(response, 422, field=field)
