"""Real `hps serve` (with a price per GPU-hour) and real `hps worker` processes, on SQLite and PostgreSQL:
a cost-aware study run by a worker returns its Pareto front over REST, every trial carries what it cost,
and ``--trials-per-device N`` runs N claiming processes on one device, sized by measured peak memory
and stopped through their supervisor's PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.api import study_body, unique
from harness.databases import database
from harness.metrics import scrape
from harness.processes import ManagedProcess
from harness.servers import ADMIN_TOKEN, RunningServer, serving
from hps.wire.reports import StudyReport

PRICE = 2.5


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def priced_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server whose operator set a price per GPU-hour."""
    directory = tmp_path_factory.mktemp(f"priced-{request.param}")
    with (
        database(str(request.param), directory) as url,
        serving(url, directory, HPS_PRICE_PER_GPU_HOUR=str(PRICE)) as server,
    ):
        yield server


def worker(server: RunningServer, data_dir: Path, *extra: str, tag: str) -> ManagedProcess:
    args = [sys.executable, "-m", "hps.cli", "worker", "--api", server.base_url, "--threads", "1"]
    args += ["--tasks", "quadratic", "--data-dir", str(data_dir), "--worker-id", tag, *extra]
    return ManagedProcess(args, {"HPS_TOKEN": ADMIN_TOKEN}, data_dir / f"{tag}-{time.monotonic_ns()}.log")


def create(server: RunningServer, **spec: Any) -> int:
    body = {k: v for k, v in study_body(unique(), **spec).items() if k not in ("metric", "direction")}
    with server.client() as client:
        created = client.post("/v1/studies", json=body)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def state_of(server: RunningServer, study_id: int) -> str:
    with server.client() as client:
        return str(client.get(f"/v1/studies/{study_id}").json()["state"])


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_cost_aware_study_run_by_a_worker_returns_its_pareto_front(
    priced_server: RunningServer, tmp_path: Path
) -> None:
    study_id = create(
        priced_server,
        task={"name": "quadratic"},
        objectives=[{"metric": "val_loss"}, {"cost": "device_seconds"}],
        recommend={"rule": "cheapest_within", "within": 0.5},
        pruner={"name": "none"},
        sampler={"name": "tpe", "seed": 3, "n_startup_trials": 2},
        budget={"n_trials": 5},
    )
    run = worker(priced_server, tmp_path, "--once", tag="costed")
    try:
        assert run.wait(timeout=240) == 0, run.output()
    finally:
        run.stop()
    with priced_server.client() as client:
        study = client.get(f"/v1/studies/{study_id}").json()
        trials = client.get(f"/v1/studies/{study_id}/trials").json()["items"]
        answer = client.get(f"/v1/studies/{study_id}/report")
    assert study["state"] == "completed", study
    assert study["spec"]["pruner"] == {"name": "none"}
    complete = [t for t in trials if t["state"] == "complete"]
    assert complete
    for trial in trials:
        cost = trial["cost"]
        assert cost["device_seconds"] > 0 and cost["gpus"] == 0.0 and cost["gpu_seconds"] == 0.0
        assert cost["peak_memory_mb"] > 0 and cost["samples"] > 0
        assert cost["money"] == 0.0  # priced, and a CPU holds no GPU
    totals = study["cost"]
    assert totals["trials"] == len(trials)
    assert totals["device_seconds"] == pytest.approx(sum(t["cost"]["device_seconds"] for t in trials))
    assert totals["samples"] == sum(t["cost"]["samples"] for t in trials)
    labels = {"study_id": str(study_id), "study": study["name"], "project": "default"}
    found = scrape(priced_server)
    assert found.value("hps_study_device_seconds", **labels) == pytest.approx(totals["device_seconds"])
    assert found.value("hps_study_samples", **labels) == totals["samples"]
    assert found.value("hps_study_gpu_seconds", **labels) == 0.0
    assert found.value("hps_study_money", **labels) == 0.0

    assert answer.status_code == 200, answer.text
    report = StudyReport.model_validate(answer.json())
    trade = report.trade_off
    assert trade is not None and trade.cost == "device_seconds"
    assert sorted(p.number for p in trade.points) == [t["number"] for t in complete]
    placed = {t["number"]: (t["value"], t["cost"]["device_seconds"]) for t in complete}
    for point in trade.points:
        dominated = any(
            v <= point.value and c <= point.cost and (v, c) != (point.value, point.cost)
            for v, c in placed.values()
        )
        assert point.on_front == (not dominated), (point, placed)
    assert trade.front and trade.recommended in trade.front
    best = min(v for v, _ in placed.values())
    near = [c for v, c in placed.values() if v - best <= 0.5]
    assert trade.recommended_cost == min(near)
    assert report.cost is not None and report.cost.trials == len(trials)
    page_file = tmp_path / "report.html"
    command = [sys.executable, "-m", "hps.cli", "report", study["name"], "-o", str(page_file)]
    command += ["--api", priced_server.base_url, "--token", ADMIN_TOKEN]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    page = page_file.read_text()
    assert 'id="trade-off"' in page and 'data-label="Pareto front"' in page and 'id="cost"' in page


def test_n_trials_per_device_claim_side_by_side_and_stop_by_pid(
    priced_server: RunningServer, tmp_path: Path
) -> None:
    # Nothing measured yet: one process starts, and the second joins once the first trial recorded its peak.
    first_study = create(
        priced_server, task={"name": "quadratic"}, budget={"n_trials": 2}, pruner={"name": "none"}
    )
    supervisor = worker(priced_server, tmp_path, "--trials-per-device", "2", "--device", "cpu", tag="packed")
    try:
        wait_until(lambda: (tmp_path / "peak-memory.json").exists(), 120, "a measured peak")
        wait_until(lambda: len(children_of(supervisor.pid)) == 2, 60, "the second process")
        pids = children_of(supervisor.pid)
        book = json.loads((tmp_path / "peak-memory.json").read_text())
        assert any(key.startswith("cpu|quadratic/") and peak > 0 for key, peak in book.items())
        assert "measuring peak memory on cpu first" in supervisor.output()
        wait_until(lambda: state_of(priced_server, first_study) == "completed", 120, "the first study")
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0, supervisor.output()
        assert not any(alive(pid) for pid in pids)
    finally:
        supervisor.stop()

    # Measured now: both start at once, and each runs its share (the study completes only if both did).
    study_id = create(
        priced_server, task={"name": "quadratic"}, budget={"n_trials": 4}, pruner={"name": "none"}
    )
    packed = worker(
        priced_server,
        tmp_path,
        "--trials-per-device",
        "2",
        "--device",
        "cpu",
        "--max-trials",
        "2",
        tag="pair",
    )
    try:
        assert packed.wait(timeout=240) == 0, packed.output()
    finally:
        packed.stop()
    with priced_server.client() as client:
        study = client.get(f"/v1/studies/{study_id}").json()
        trials = client.get(f"/v1/studies/{study_id}/trials").json()["items"]
    assert study["state"] == "completed"
    assert sorted(t["attrs"]["worker_id"] for t in trials) == ["pair-0", "pair-0", "pair-1", "pair-1"]


def test_n_that_cannot_fit_is_refused(priced_server: RunningServer, tmp_path: Path) -> None:
    # A peak recorded earlier on this kind of device (the host, here) that leaves room for one trial only.
    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    (tmp_path / "peak-memory.json").write_text(json.dumps({"cpu|quadratic/None/None/32": total_mb * 0.6}))
    refused = worker(priced_server, tmp_path, "--trials-per-device", "2", "--device", "cpu", tag="big")
    try:
        assert refused.wait(timeout=60) == 2
    finally:
        refused.stop()
    assert "--trials-per-device 2 cannot fit on cpu" in refused.output()
    assert "at most 1 fit" in refused.output()
