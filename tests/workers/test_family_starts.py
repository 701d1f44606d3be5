"""A preset fitted to the model family (issue 11): the README's text study — MiniLM, the `adamw` preset —
starts where a pretrained transformer learns, not at chance, with a real worker on the CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.api import unique
from harness.databases import sqlite_url
from harness.servers import RunningServer, serving
from harness.workers import start_worker


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with serving(sqlite_url(tmp_path), tmp_path) as running:
        yield running


def test_the_headline_text_study_starts_in_the_fine_tuning_region(server: RunningServer) -> None:
    body = {
        "name": unique("minilm"),
        "task": {"name": "text-classification"},
        "search_space": {"preset": "adamw"},
    }
    with server.client() as client:
        made = client.post("/v1/studies", json={**body, "budget": {"n_trials": 1}})
        assert made.status_code == 201, made.text
        study = made.json()
    lr = study["spec"]["search_space"]["params"]["lr"]
    assert (lr["low"], lr["high"]) == (5e-6, 1e-3)
    assert [start["lr"] for start in study["spec"]["search_space"]["starts"]] == [5e-5]
    worker = start_worker(server, "text")
    try:
        assert worker.wait(timeout=300) == 0, worker.output()
    finally:
        worker.stop()
    with server.client() as client:
        (trial,) = client.get(f"/v1/studies/{study['id']}/trials").json()["items"]
    assert trial["state"] == "complete" and trial["params"]["lr"] == 5e-5
    assert trial["value"] >= 0.9, trial  # chance is 0.5; the preset's own lr 1e-3 stays there
