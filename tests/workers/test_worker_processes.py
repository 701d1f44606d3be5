"""Real `hps serve` + real `hps worker` processes, on SQLite and PostgreSQL: studies on `quadratic`,
`digits` and `text-classification` run to exactly their budget, pruning happens, divergence is caught."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import optuna

from harness.api import study_body, unique
from harness.processes import ManagedProcess
from harness.servers import ADMIN_TOKEN, RunningServer


def start_workers(server: RunningServer, count: int, *extra: str, tag: str = "w") -> list[ManagedProcess]:
    workers = []
    for index in range(count):
        args = [sys.executable, "-m", "hps.cli", "worker", "--api", server.base_url, "--once"]
        args += ["--threads", "1", "--data-dir", str(server.data_dir)]
        args += ["--worker-id", f"{tag}-{index}", *extra]
        log = server.data_dir / f"worker-{tag}-{index}-{time.monotonic_ns()}.log"
        workers.append(ManagedProcess(args, {"HPS_TOKEN": ADMIN_TOKEN}, log))
    return workers


def wait_for(workers: list[ManagedProcess], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    try:
        for worker in workers:
            code = worker.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert code == 0, worker.output()
    finally:
        for worker in workers:
            worker.stop()


def run_study(server: RunningServer, workers: int, timeout: float = 300, **spec: Any) -> dict[str, Any]:
    body = {k: v for k, v in study_body(unique(), **spec).items() if k not in ("metric", "direction")}
    with server.client() as client:
        created = client.post("/v1/studies", json=body)
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]
    started = start_workers(server, workers)
    wait_for(started, timeout)
    with server.client() as client:
        study = client.get(f"/v1/studies/{study_id}").json()
        study["trials"] = client.get(f"/v1/studies/{study_id}/trials", params={"limit": 200}).json()["items"]
    study["worker_log"] = "\n".join(worker.output() for worker in started)
    return dict(study)


def test_quadratic_with_three_workers_runs_exactly_the_budget_and_prunes(api_server: RunningServer) -> None:
    study = run_study(
        api_server,
        workers=3,
        task={"name": "quadratic"},
        search_space={"preset": "optimizers"},
        sampler={"name": "tpe", "seed": 1, "n_startup_trials": 5},
        pruner={"name": "median", "n_startup_trials": 3},
        budget={"n_trials": 24, "max_parallel": 3},
    )
    assert study["state"] == "completed", study
    assert (study["metric"], study["direction"]) == ("val_loss", "minimize")
    trials = study["trials"]
    assert [t["number"] for t in trials] == list(range(24))
    states = [t["state"] for t in trials]
    assert set(states) <= {"complete", "pruned", "diverged"}
    assert "pruned" in states
    complete = [t for t in trials if t["state"] == "complete"]
    for trial in complete:
        attrs = trial["attrs"]
        for key in (
            "learning_curve",
            "final_train_loss",
            "best_epoch",
            "convergence_epochs",
            "generalization_gap",
            "wall_time_s",
            "peak_memory_mb",
            "device",
        ):
            assert key in attrs, (key, attrs)
        assert attrs["device"] == "cpu"
        assert len(trial["intermediate_values"]) == study["spec"]["task"]["epochs"]
    assert len({t["attrs"]["worker_id"] for t in trials if "worker_id" in t["attrs"]}) >= 2


def test_a_diverging_learning_rate_ends_as_diverged(api_server: RunningServer) -> None:
    space = {
        "params": {
            "optimizer": {"type": "categorical", "choices": ["sgd"]},
            "lr": {"type": "float", "low": 5.0, "high": 10.0},
        }
    }
    study = run_study(
        api_server, workers=1, task={"name": "quadratic"}, search_space=space, budget={"n_trials": 2}
    )
    assert [t["state"] for t in study["trials"]] == ["diverged", "diverged"]
    assert all("loss" in t["reason"] for t in study["trials"])
    loaded = optuna.load_study(study_name=study["name"], storage=api_server.database_url)
    assert {t.state for t in loaded.trials} == {optuna.trial.TrialState.PRUNED}


def test_digits_with_three_workers(api_server: RunningServer) -> None:
    study = run_study(
        api_server,
        workers=3,
        timeout=600,
        task={"name": "digits", "epochs": 3},
        search_space={"preset": "adam"},
        sampler={"name": "random", "seed": 3},
        pruner={"name": "none"},
        budget={"n_trials": 6},
    )
    assert study["state"] == "completed", study
    assert (study["metric"], study["direction"]) == ("val_accuracy", "maximize")
    trials = study["trials"]
    assert len(trials) == 6 and {t["state"] for t in trials} <= {"complete", "diverged"}
    best = study["best"]
    assert best["value"] > 0.5, best
    assert [p["step"] for p in best["intermediate_values"]] == [1, 2, 3]


def test_text_classification_fine_tunes_minilm(api_server: RunningServer) -> None:
    study = run_study(
        api_server,
        workers=1,
        timeout=600,
        task={"name": "text-classification", "epochs": 1, "max_steps_per_epoch": 3, "batch_size": 8},
        search_space={"preset": "adamw"},
        sampler={"name": "random", "seed": 0},
        pruner={"name": "none"},
        budget={"n_trials": 1},
    )
    (trial,) = study["trials"]
    assert trial["state"] == "complete", trial
    assert study["spec"]["task"]["model"] == "minilm-l6"
    assert 0.0 <= trial["value"] <= 1.0
    assert trial["attrs"]["steps"] == 3
    # The new classification head is said in one plain line, not transformers' coloured table.
    log = study["worker_log"]
    assert "new classification head (2 labels" in log
    assert "LOAD REPORT" not in log and "MISSING" not in log and "\x1b[" not in log


def test_device_all_without_gpus_runs_one_cpu_worker(api_server: RunningServer, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "hps.cli", "worker", "--api", api_server.base_url, "--once"]
    args += ["--device", "all", "--tasks", "quadratic", "--data-dir", str(tmp_path)]
    worker = ManagedProcess(args, {"HPS_TOKEN": ADMIN_TOKEN}, tmp_path / "all.log")
    try:
        assert worker.wait(timeout=120) == 0
    finally:
        worker.stop()
    assert "no GPU is visible" in worker.output()
