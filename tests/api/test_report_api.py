"""``GET /v1/studies/{id}/report`` and ``hps report`` against real servers on SQLite and PostgreSQL: a
study driven over HTTP with the real client, then its report read back over HTTP and through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.api import assert_error, study_body, unique
from harness.servers import ADMIN_TOKEN, RunningServer
from harness.synthetic import ClientDriver, run_trials
from hps.client.http import HpsClient
from hps.wire.reports import StudyReport

N_TRIALS = 30


@pytest.fixture(scope="module")
def driven(api_server: RunningServer) -> tuple[int, str]:
    """One study of the `optimizers` preset (its four starts first), 30 trials driven over HTTP."""
    body = study_body(unique("report"), search_space={"preset": "optimizers"}, pruner={"name": "median"})
    body["budget"] = {"n_trials": N_TRIALS}
    with HpsClient(api_server.base_url, ADMIN_TOKEN) as hps:
        study = hps.create_study(body)
        run_trials(ClientDriver(hps, study.id), N_TRIALS)
    return study.id, study.name


def hps_report(
    server: RunningServer, *args: str, token: str = ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    """Run ``hps report`` as a user would, against ``server``."""
    command = [sys.executable, "-m", "hps.cli", "report", *args]
    command += ["--api", server.base_url, "--token", token]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_report_agrees_with_the_trials_and_the_best_trial(
    api_server: RunningServer, driven: tuple[int, str]
) -> None:
    study_id, name = driven
    with api_server.client() as client:
        answer = client.get(f"/v1/studies/{study_id}/report")
        assert answer.status_code == 200, answer.text
        report = StudyReport.model_validate(answer.json())
        trials = client.get(f"/v1/studies/{study_id}/trials", params={"limit": 200}).json()["items"]
        best = client.get(f"/v1/studies/{study_id}/best").json()
        two = client.get(f"/v1/studies/{study_id}/report", params={"top": 2}).json()

    assert report.study_id == study_id and report.study_name == name and report.state == "completed"
    assert len(trials) == N_TRIALS and sum(row.trials for row in report.optimizers) == N_TRIALS
    complete = [t for t in trials if t["state"] == "complete"]
    assert [p.number for p in report.history] == [t["number"] for t in complete]
    assert report.progress.complete == len(complete)
    # The four starts (adamw, adam, sgd, adagrad defaults) ran first, so four optimizers have results.
    assert len([row for row in report.optimizers if row.complete]) >= 4
    advice = report.recommendation
    assert advice.best_trial == best["number"] and advice.best_params == best["params"]
    assert advice.best_value == best["value"] == report.top_curves[0].value
    assert report.top_curves[0].points[-1].value == best["value"]
    assert advice.runner_up is not None and (advice.gap_to_runner_up or 0) > 0
    assert {p.param for p in report.importances.params} == {"optimizer", "lr"}
    assert [c["number"] for c in two["top_curves"]] == [c.number for c in report.top_curves[:2]]


def test_a_study_without_trials_has_a_report_that_says_so(api_server: RunningServer) -> None:
    with api_server.client() as client:
        made = client.post("/v1/studies", json=study_body(unique("empty")))
        assert made.status_code == 201, made.text
        answer = client.get(f"/v1/studies/{made.json()['id']}/report")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["optimizers"] == [] and report["history"] == [] and report["top_curves"] == []
    assert report["recommendation"]["confidence"] == "none"
    assert "nothing to recommend" in report["recommendation"]["summary"]
    assert report["importances"]["notes"] == ["importances need at least 5 complete trials; there are 0."]


def test_bad_requests_are_4xx_naming_the_field_and_other_projects_studies_are_404(
    api_server: RunningServer, driven: tuple[int, str]
) -> None:
    study_id, _ = driven
    with api_server.client() as admin:
        assert (
            assert_error(admin.get("/v1/studies/2147483000/report"), 404, "study_not_found")["field"]
            == "study_id"
        )
        assert_error(admin.get(f"/v1/studies/{study_id}/report", params={"top": 0}), 422, field="top")
        assert_error(admin.get(f"/v1/studies/{study_id}/report", params={"top": "five"}), 422, field="top")
        assert_error(admin.get("/v1/studies/0/report"), 422, field="study_id")
        made = admin.post(
            "/v1/tokens", json={"name": unique("t"), "scopes": ["read"], "project": unique("p")}
        )
        assert made.status_code == 201, made.text
        openapi = admin.get("/openapi.json").json()
    with httpx.Client(base_url=api_server.base_url, timeout=30.0) as anonymous:
        assert_error(anonymous.get(f"/v1/studies/{study_id}/report"), 401, "unauthenticated")
    with api_server.client(made.json()["token"]) as outsider:
        assert_error(outsider.get(f"/v1/studies/{study_id}/report"), 404, "study_not_found")
    route = openapi["paths"]["/v1/studies/{study_id}/report"]["get"]
    assert route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/StudyReport")
    assert "404" in route["responses"]


def test_hps_report_writes_one_offline_html_file_and_json(
    api_server: RunningServer, driven: tuple[int, str], tmp_path: Path
) -> None:
    study_id, name = driven
    page = tmp_path / "report.html"
    done = hps_report(api_server, name, "-o", str(page))
    assert done.returncode == 0, done.stderr
    assert f"report of study {study_id} ({name}) written to {page}" in done.stderr
    html = page.read_text()
    assert html.startswith("<!doctype html>") and f"Optimizer report: {name}" in html
    assert html.count('<svg class="chart') >= 4 and "<script" not in html
    # Nothing to fetch: no src or href attributes at all, and a policy that forbids fetching anyway.
    assert " src=" not in html and " href=" not in html and "default-src 'none'" in html

    as_json = hps_report(api_server, str(study_id), "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert StudyReport.model_validate(json.loads(as_json.stdout)).study_id == study_id


def test_hps_report_exit_codes(api_server: RunningServer, tmp_path: Path) -> None:
    missing = hps_report(api_server, unique("nothing"), "-o", str(tmp_path / "x.html"))
    assert missing.returncode == 4 and "study_not_found" in missing.stderr
    refused = hps_report(api_server, "1", token="not-a-token")
    assert refused.returncode == 6 and "401" in refused.stderr
    assert not (tmp_path / "x.html").exists()
