"""Studies made through hps are Optuna studies: `optuna.load_study` and the Optuna dashboard read them
from the same database unchanged."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import optuna

from harness.api import new_study
from harness.ports import free_port
from harness.processes import ManagedProcess
from harness.servers import RunningServer


def run_study(server: RunningServer, n_trials: int = 3) -> tuple[int, str]:
    with server.client() as client:
        study_id = new_study(client, budget={"n_trials": n_trials}, direction="minimize")
        for index in range(n_trials):
            number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
            base = f"/v1/studies/{study_id}/trials/{number}"
            client.post(f"{base}/reports", json={"step": 0, "value": 10.0 + index})
            client.post(f"{base}/reports", json={"step": 1, "value": 5.0 + index})
            client.post(f"{base}/complete", json={"state": "complete", "value": 5.0 + index})
        name = client.get(f"/v1/studies/{study_id}").json()["name"]
    return study_id, name


def test_load_study_sees_params_values_and_curves(api_server: RunningServer) -> None:
    study_id, name = run_study(api_server)
    study = optuna.load_study(study_name=name, storage=api_server.database_url)
    assert len(study.trials) == 3
    assert [t.value for t in study.trials] == [5.0, 6.0, 7.0]
    assert study.trials[1].intermediate_values == {0: 11.0, 1: 6.0}
    assert study.best_trial.number == 0
    with api_server.client() as client:
        hps_trials = client.get(f"/v1/studies/{study_id}/trials").json()["items"]
    for ours, theirs in zip(hps_trials, study.trials, strict=True):
        assert ours["params"]["lr"] == theirs.params["lr"]
        assert ours["params"]["optimizer"] == theirs.params["optimizer"]
        if "beta2" in ours["params"]:
            assert abs(1 - theirs.params["1-beta2"] - ours["params"]["beta2"]) < 1e-12


def test_the_optuna_dashboard_lists_the_study(api_server: RunningServer, tmp_path: Path) -> None:
    _, name = run_study(api_server, n_trials=2)
    port = free_port()
    dashboard = ManagedProcess(
        [
            str(Path(sys.executable).with_name("optuna-dashboard")),
            api_server.database_url,
            "--port",
            str(port),
            "--quiet",
        ],
        {},
        tmp_path / "dashboard.log",
    )
    try:
        studies = _get_json(f"http://127.0.0.1:{port}/api/studies", dashboard)
        listed = {s["study_name"]: s for s in studies["study_summaries"]}
        assert name in listed
        detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{listed[name]['study_id']}", dashboard)
        assert len(detail["trials"]) == 2
    finally:
        dashboard.stop()


def _get_json(url: str, process: ManagedProcess, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.popen.poll() is not None:
            raise AssertionError(f"dashboard did not answer {url}:\n{process.output()}")
        time.sleep(0.2)
