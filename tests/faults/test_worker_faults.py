"""Workers that die, freeze, get signalled or hit device faults: nothing is lost, nothing counted twice.
Real server and worker processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from scenario import (
    assert_exact_budget,
    create_study,
    running_with_report,
    study,
    trials,
    wait_until,
)

from harness.servers import ADMIN_TOKEN, ServerFactory
from harness.workers import start_worker


def test_kill_9_mid_trial_is_reaped_and_retried_with_the_same_params(make_server: ServerFactory) -> None:
    server = make_server()
    study_id = create_study(server, n_trials=3, max_retries=2)
    doomed = start_worker(server, "doomed", once=False, env={"HPS_WORKER_FAULT": "hang@150"})
    try:
        victim = wait_until(lambda: running_with_report(server, study_id), 60, "a running trial")
        doomed.signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        doomed.stop()
    reaped = wait_until(
        lambda: next((t for t in trials(server, study_id) if t["state"] == "failed"), None), 30, "the reaper"
    )
    assert reaped["number"] == victim["number"] and reaped["reason"].startswith("lease-expired")
    rescuer = start_worker(server, "rescuer")
    try:
        assert rescuer.wait(timeout=120) == 0, rescuer.output()
    finally:
        rescuer.stop()
    assert_exact_budget(server, study_id, 3)
    retry = next(t for t in trials(server, study_id) if t["retry_of"] == victim["number"])
    assert (retry["attempt"], retry["state"], retry["params"]) == (2, "complete", victim["params"])


def test_a_worker_killed_between_claim_and_first_heartbeat_is_reaped(make_server: ServerFactory) -> None:
    server = make_server()
    study_id = create_study(server, n_trials=2, epochs=5)
    # A worker that claims and dies at once, before any heartbeat or report.
    claim_and_die = (
        "import httpx, os, signal, sys\n"
        "httpx.post(sys.argv[1] + '/v1/workers/claim', headers={'Authorization': 'Bearer ' + sys.argv[2]},"
        " json={'worker_id': 'ghost', 'device': 'cpu', 'tasks': ['quadratic']}).raise_for_status()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    ghost = subprocess.run([sys.executable, "-c", claim_and_die, server.base_url, ADMIN_TOKEN], timeout=60)
    assert ghost.returncode == -signal.SIGKILL
    claimed = trials(server, study_id)
    assert [t["state"] for t in claimed] == ["running"]
    wait_until(lambda: trials(server, study_id)[0]["state"] == "failed", 30, "the reaper")
    worker = start_worker(server, "rescuer")
    try:
        assert worker.wait(timeout=120) == 0, worker.output()
    finally:
        worker.stop()
    assert_exact_budget(server, study_id, 2)
    retry = next(t for t in trials(server, study_id) if t["retry_of"] == 0)
    assert retry["params"] == claimed[0]["params"] and retry["state"] == "complete"


def test_a_frozen_worker_gets_409_for_its_late_report_and_carries_on(make_server: ServerFactory) -> None:
    server = make_server()
    study_id = create_study(server, n_trials=2, epochs=40)
    worker = start_worker(server, "sleepy")
    try:
        victim = wait_until(lambda: running_with_report(server, study_id), 60, "a running trial")
        worker.signal(signal.SIGSTOP)
        wait_until(lambda: trials(server, study_id)[victim["number"]]["state"] == "failed", 30, "the reaper")
        worker.signal(signal.SIGCONT)
        assert worker.wait(timeout=120) == 0, worker.output()
    finally:
        worker.signal(signal.SIGCONT)
        worker.stop()
    assert "lease" in worker.output() and "409" in worker.output()
    final = assert_exact_budget(server, study_id, 2)
    reaped = trials(server, study_id)[victim["number"]]
    assert reaped["state"] == "failed" and reaped["reason"].startswith("lease-expired")
    assert final["progress"]["complete"] == 2


def test_sigterm_hands_the_trial_back_and_exits_0(make_server: ServerFactory) -> None:
    server = make_server()
    study_id = create_study(server, n_trials=1, epochs=200)
    worker = start_worker(server, "polite", once=False)
    try:
        victim = wait_until(lambda: running_with_report(server, study_id), 60, "a running trial")
        worker.signal(signal.SIGTERM)
        began = time.monotonic()
        assert worker.wait(timeout=20) == 0, worker.output()
        assert time.monotonic() - began < 15
    finally:
        worker.stop()
    handed_back = trials(server, study_id)[victim["number"]]
    assert handed_back["state"] == "failed" and handed_back["reason"].startswith("interrupted")
    queued = next(t for t in trials(server, study_id) if t["retry_of"] == victim["number"])
    assert (queued["state"], queued["attempt"], queued["params"]) == ("queued", 1, victim["params"])
    progress = study(server, study_id)["progress"]
    assert (progress["failed"], progress["queued"], progress["remaining"]) == (0, 1, 0)


def test_a_second_signal_exits_at_once_even_when_a_step_hangs(make_server: ServerFactory) -> None:
    server = make_server()
    study_id = create_study(server, n_trials=1)
    worker = start_worker(server, "stuck", once=False, env={"HPS_WORKER_FAULT": "hang@150"})
    try:
        wait_until(lambda: running_with_report(server, study_id), 60, "a running trial")
        time.sleep(1.0)  # the hang comes 50 steps after the first report
        worker.signal(signal.SIGTERM)
        time.sleep(1.0)
        assert worker.popen.poll() is None  # the graceful path cannot finish a hung step
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=5) == 130
    finally:
        worker.stop()


def test_out_of_memory_is_retried_then_max_failed_fails_the_study(make_server: ServerFactory) -> None:
    server = make_server()
    study_id = create_study(server, n_trials=10, epochs=2, max_retries=1, max_failed=2)
    worker = start_worker(server, "oom", env={"HPS_WORKER_FAULT": "oom@3"})
    try:
        assert worker.wait(timeout=120) == 0, worker.output()
    finally:
        worker.stop()
    final = study(server, study_id)
    assert final["state"] == "failed" and "max_failed" in final["state_reason"]
    attempts = [(t["attempt"], t["state"], t["reason"].split(":")[0]) for t in trials(server, study_id)]
    assert attempts == [(1, "failed", "oom"), (2, "failed", "oom")] * 2


def test_a_task_error_is_not_retried(make_server: ServerFactory) -> None:
    server = make_server()
    study_id = create_study(server, n_trials=4, epochs=2, max_retries=2, max_failed=2)
    worker = start_worker(server, "buggy", env={"HPS_WORKER_FAULT": "raise@3"})
    try:
        assert worker.wait(timeout=120) == 0, worker.output()
    finally:
        worker.stop()
    attempts = [(t["attempt"], t["reason"]) for t in trials(server, study_id)]
    assert attempts == [(1, "error: ValueError: the task failed (injected)")] * 2
    assert study(server, study_id)["state"] == "failed"


def test_a_device_error_hands_the_trial_back_and_the_worker_exits_non_zero(
    make_server: ServerFactory,
) -> None:
    server = make_server()
    study_id = create_study(server, n_trials=2, epochs=2)
    worker = start_worker(server, "broken-gpu", once=False, env={"HPS_WORKER_FAULT": "device-error@3"})
    try:
        assert worker.wait(timeout=60) == 3, worker.output()
    finally:
        worker.stop()
    first, retry = trials(server, study_id)
    assert first["reason"].startswith("device-error") and retry["state"] == "queued"
    assert retry["params"] == first["params"] and retry["attempt"] == 2


def test_a_200_trial_soak_keeps_worker_memory_bounded(make_server: ServerFactory) -> None:
    from harness.workers import resident_memory_mb

    server = make_server(HPS_LEASE_SECONDS="60")
    study_id = create_study(server, n_trials=200, epochs=2, steps=10)
    worker = start_worker(server, "soak")
    try:
        wait_until(lambda: study(server, study_id)["progress"]["complete"] >= 20, 120, "20 trials")
        early = resident_memory_mb(worker.pid)
        wait_until(lambda: study(server, study_id)["progress"]["complete"] >= 190, 600, "190 trials")
        late = resident_memory_mb(worker.pid)
        assert worker.wait(timeout=120) == 0, worker.output()
    finally:
        worker.stop()
    growth = late - early
    print(f"worker RSS after 20 trials {early:.1f} MiB, after 190: {late:.1f} MiB ({growth:+.1f} MiB)")
    assert growth < 25, growth
    assert_exact_budget(server, study_id, 200)
