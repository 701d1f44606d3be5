"""``hps study watch`` and ``hps study create --wait`` as real processes, following studies that the
test drives to their end through the SDK."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from harness.api import unique
from harness.external import external_spec
from harness.processes import ManagedProcess
from harness.servers import ADMIN_TOKEN, RunningServer
from hps.cli.common import EXIT_STUDY_FAILED
from hps.cli.watch import WatchFormat, take_snapshot, watch
from hps.client.http import HpsClient, HpsError
from hps.wire.studies import StudyOut


def start_hps(server: RunningServer, log: Path, *args: str) -> ManagedProcess:
    """``hps ARGS`` as its own process group, output to ``log``, stopped by PID by the caller."""
    argv = [sys.executable, "-m", "hps.cli", *args, "--api", server.base_url, "--token", ADMIN_TOKEN]
    return ManagedProcess(argv, {}, log)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate()`` until true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def find(client: HpsClient, name: str) -> StudyOut | None:
    """The study named ``name``, or None while it does not exist."""
    try:
        return client.find_study(name)
    except HpsError as error:
        assert error.status == 404, error
        return None


def drive(client: HpsClient, name: str, epochs: int, pause_s: float) -> None:
    """Run one trial of the study: report each epoch (pausing so a watcher sees it), then complete."""
    with client.run_trial(name) as trial:
        for epoch in range(epochs):
            trial.report(epoch, 0.1 * (epoch + 1))
            time.sleep(pause_s)
        trial.complete(0.1 * epochs)


def test_watch_follows_a_study_to_completion(server: RunningServer, tmp_path: Path) -> None:
    name = unique("watched")
    with HpsClient(server.base_url, ADMIN_TOKEN) as client:
        study = client.create_study(external_spec(name, n_trials=2))
        watcher = start_hps(server, tmp_path / "watch.log", "study", "watch", name, "--interval", "0.2")
        try:
            wait_for(lambda: f"study {study.id} running" in watcher.output(), "the first line")
            drive(client, name, epochs=3, pause_s=0.7)
            drive(client, name, epochs=2, pause_s=0.7)
            code = watcher.wait(timeout=60)
        finally:
            watcher.stop()
    lines = watcher.output().splitlines()
    assert code == 0, lines
    assert lines[0].startswith(f"study {study.id} running: 0/2 trials, best accuracy -")
    assert any("running 1 [#0 epoch 2]" in line for line in lines), lines
    assert any(line.startswith(f"study {study.id} running: 1/2 trials, best accuracy 0.3,") for line in lines)
    assert any("running 1 [#1 epoch 1]" in line for line in lines), lines
    assert f"study {study.id} completed: 2/2 trials, best accuracy 0.3, ETA -, running 0" in lines[-2]
    assert lines[-1] == f"study {study.id} completed: budget spent"


def test_create_wait_exits_0_once_the_study_completes(server: RunningServer, tmp_path: Path) -> None:
    name = unique("awaited")
    spec = tmp_path / "study.json"
    spec.write_text(json.dumps(external_spec(name, n_trials=2)))
    args = ("study", "create", "-f", str(spec), "--wait", "--interval", "0.2", "-o", "json")
    creator = start_hps(server, tmp_path / "create.log", *args)
    try:
        with HpsClient(server.base_url, ADMIN_TOKEN) as client:
            wait_for(lambda: find(client, name) is not None, "the study")
            drive(client, name, epochs=1, pause_s=0)
            assert creator.popen.poll() is None  # one trial of two: still waiting
            drive(client, name, epochs=1, pause_s=0)
        code = creator.wait(timeout=60)
    finally:
        creator.stop()
    assert code == 0, creator.output()
    final = json.loads(creator.output())  # one JSON document, nothing else
    assert final["name"] == name and final["state"] == "completed"
    assert final["progress"]["complete"] == 2


def test_create_wait_exits_7_when_the_study_is_cancelled(server: RunningServer, tmp_path: Path) -> None:
    name = unique("abandoned")
    spec = tmp_path / "study.yaml"
    spec.write_text(json.dumps(external_spec(name, n_trials=5)))
    creator = start_hps(server, tmp_path / "create.log", "study", "create", "-f", str(spec), "--wait")
    try:
        with HpsClient(server.base_url, ADMIN_TOKEN) as client:
            wait_for(lambda: find(client, name) is not None, "the study")
            drive(client, name, epochs=1, pause_s=0)
            found = find(client, name)
            assert found is not None
            client.cancel_study(found.id)
        code = creator.wait(timeout=60)
    finally:
        creator.stop()
    output = creator.output()
    assert code == EXIT_STUDY_FAILED, output
    assert f"study {found.id} {name} created" in output
    assert f"study {found.id} cancelled: 1/5 trials" in output  # the last line the watcher printed


def test_the_live_view_on_a_terminal(server: RunningServer) -> None:
    name = unique("live")
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=140)
    with HpsClient(server.base_url, ADMIN_TOKEN) as client:
        study = client.create_study(external_spec(name, n_trials=2))

        def both_trials() -> None:
            try:
                for _ in range(2):
                    drive(client, name, epochs=2, pause_s=0.6)
            except BaseException:
                client.cancel_study(study.id)  # ends the watch, and the test fails on the state
                raise

        driver = threading.Thread(target=both_trials)
        driver.start()
        try:
            last = watch(client, study.id, terminal, show=WatchFormat.live, interval=0.2)
        finally:
            driver.join(timeout=60)
    shown = screen.getvalue()
    assert last.state == "completed"
    assert "running trials (1)" in shown and "epoch" in shown and "0/2 trials" in shown
    assert "2/2 trials" in shown and "best accuracy 0.2" in shown and "━" in shown  # the progress bar


def test_the_eta_leaves_out_the_time_before_the_first_finish(server: RunningServer) -> None:
    with HpsClient(server.base_url, ADMIN_TOKEN) as client:
        study = client.create_study(external_spec(unique("eta"), n_trials=4))
        first = take_snapshot(client, study.id)
        assert first.eta_text == "estimating" and first.mark is None
        time.sleep(2.0)  # a worker's one-off start: loading or pretraining its model
        with client.run_trial(study.id) as trial:
            trial.complete(0.5)
        seen = take_snapshot(client, study.id, first)
        assert seen.mark is not None and seen.mark.done == 1 and seen.eta_text == "estimating"
        with client.run_trial(study.id) as trial:
            trial.complete(0.6)
        paced = take_snapshot(client, study.id, seen)
    # Two trials left at the pace of the second (well under a second), not of the first (2 s and more).
    assert paced.eta_s is not None and paced.eta_s < 2.0, paced.eta_s
