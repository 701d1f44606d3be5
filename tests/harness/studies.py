"""A study run end to end: created over HTTP on a real server, its trials run by real ``hps worker``
processes (``--once``: they exit when no trial is left), and read back with its trials and the workers'
logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.api import study_body, unique
from harness.servers import RunningServer
from harness.workers import start_worker


def run_study_with_workers(
    server: RunningServer, registry: Path | None = None, workers: int = 1, timeout: float = 300, **spec: Any
) -> dict[str, Any]:
    """Create the study ``spec`` describes (``study_body`` defaults, the task's own metric), run ``workers``
    workers (given the operator's ``registry`` file, when there is one) until they exit, and return the
    study with ``trials`` and ``worker_log`` added. A worker that exits with an error fails the test."""
    body = {
        key: value
        for key, value in study_body(unique(), **spec).items()
        if key not in ("metric", "direction")
    }
    with server.client() as client:
        created = client.post("/v1/studies", json=body)
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]
    extra = ("--registry", str(registry)) if registry is not None else ()
    started = [start_worker(server, f"{spec['task']['name']}-{index}", *extra) for index in range(workers)]
    try:
        for worker in started:
            assert worker.wait(timeout=timeout) == 0, worker.output()
    finally:
        for worker in started:
            worker.stop()
    with server.client() as client:
        study = dict(client.get(f"/v1/studies/{study_id}").json())
        study["trials"] = client.get(f"/v1/studies/{study_id}/trials", params={"limit": 200}).json()["items"]
    study["worker_log"] = "\n".join(worker.output() for worker in started)
    return study
