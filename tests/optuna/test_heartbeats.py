"""Fault tolerance the Optuna way, backed by hps: a program killed mid-trial has its trial failed by hps's
reaper (no client left to notice), and the next run of the program retries it through Optuna's
``RetryHeartbeatStaleTrialCallback``, with the same params."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from harness.processes import ManagedProcess
from harness.servers import RunningServer
from hps.optuna import HpsStorage

HANGING = Path(__file__).with_name("hanging_program.py")


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_killed_program_is_reaped_and_its_trial_retried_on_resume(
    optuna_server: RunningServer, new_token: Callable[..., tuple[str, str]], tmp_path: Path
) -> None:
    _, token = new_token()
    marker = tmp_path / "running"
    program = ManagedProcess(
        [sys.executable, str(HANGING), optuna_server.base_url, token, str(marker)],
        {},
        tmp_path / "program.log",
    )
    try:
        _wait_for(marker.exists, 60, f"the program's trial to start: {program.output()}")
        program.signal(signal.SIGKILL)
        program.wait(10)
    finally:
        program.stop()
    x = float(marker.read_text())

    reader = HpsStorage(optuna_server.base_url, token=token)
    study_id = reader.get_study_id_from_name("resumable")
    _wait_for(
        lambda: reader.get_all_trials(study_id)[0].state == TrialState.FAIL,
        30,
        "hps's reaper to fail the trial",
    )
    killed = reader.get_all_trials(study_id)[0]
    assert "no heartbeat" in killed.system_attrs["hps:reaped"]

    storage = HpsStorage(
        optuna_server.base_url,
        token=token,
        heartbeat_interval=1,
        grace_period=2,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
    )
    study = optuna.load_study(study_name="resumable", storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)

    first, retry = study.trials
    assert first.state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE
    assert retry.params == {"x": x}
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0
    # The failure was handed to one client's callback only: a second resume retries nothing more.
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    assert len(study.trials) == 3
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(study.trials[2]) is None
