"""``GET /metrics`` of a real server, parsed with prometheus_client's parser: values after real asks,
claims and completions, after a lease is reaped, while the database is away, and who may scrape."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url

from harness.api import assert_error, study_body, unique
from harness.databases import postgres_database
from harness.metrics import Scrape, scrape
from harness.proxy import TcpProxy
from harness.servers import RunningServer, start_server

# Short leases and a busy reaper, so a lease expires within seconds.
FAST_LEASES = {"HPS_LEASE_SECONDS": "2", "HPS_REAPER_INTERVAL_SECONDS": "0.5"}
STATES = ("complete", "pruned", "diverged", "failed", "running", "queued", "retried")


def create(server: RunningServer, **overrides: Any) -> tuple[int, str]:
    """A study (external unless ``task`` is given); returns its id and name."""
    name = unique("metrics")
    with server.client() as client:
        made = client.post("/v1/studies", json=study_body(name, **overrides))
    assert made.status_code == 201, made.text
    return int(made.json()["id"]), name


def trial_counts(found: Scrape, study_id: int, name: str) -> dict[str, float]:
    """The ``hps_trials`` gauge of one study, every state (all seven must be exposed)."""
    labels = {"study_id": str(study_id), "study": name, "project": "default"}
    return {state: found.value("hps_trials", state=state, **labels) for state in STATES}


def scrape_until(server: RunningServer, holds: Callable[[Scrape], bool], timeout: float = 20.0) -> Scrape:
    """Scrape until ``holds`` is true of the answer (a cut proxy may still let one connection through)."""
    deadline = time.monotonic() + timeout
    while not holds(found := scrape(server)):
        assert time.monotonic() < deadline, "the scrapes never showed the expected change"
        time.sleep(0.2)
    return found


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.get(name, **labels) - before.get(name, **labels)


def test_asks_claims_and_completions_show_in_the_metrics(api_server: RunningServer) -> None:
    before = scrape(api_server)
    external_id, external = create(api_server, budget={"n_trials": 2})
    task_id, task_study = create(
        api_server,
        metric="val_loss",
        direction="minimize",
        task={"name": "quadratic"},
        pruner={"name": "none"},
        budget={"n_trials": 3},
    )
    with api_server.client() as client:
        numbers = [client.post(f"/v1/studies/{external_id}/trials").json()["number"] for _ in range(2)]
        assert_error(client.post(f"/v1/studies/{external_id}/trials"), 409, "budget_exhausted")
        done = client.post(
            f"/v1/studies/{external_id}/trials/{numbers[0]}/complete",
            json={"state": "complete", "value": 0.5},
        )
        assert done.status_code == 200, done.text
        claim = {"worker_id": unique("worker"), "device": "cpu", "tasks": ["quadratic"]}
        claimed = client.post("/v1/workers/claim", json=claim)
        assert claimed.status_code == 200 and claimed.json()["study_id"] == task_id, claimed.text
        idle = {"worker_id": unique("idle"), "device": "cpu", "tasks": ["image-classification"]}
        assert client.post("/v1/workers/claim", json=idle).status_code == 204
        number = claimed.json()["trial"]["number"]
        pruned = client.post(
            f"/v1/studies/{task_id}/trials/{number}/complete", json={"state": "pruned", "reason": "test"}
        )
        assert pruned.status_code == 200, pruned.text
    after = scrape(api_server)

    assert trial_counts(after, external_id, external) == {
        **dict.fromkeys(STATES, 0),
        "complete": 1,
        "running": 1,
    }
    assert trial_counts(after, task_id, task_study) == {**dict.fromkeys(STATES, 0), "pruned": 1}
    assert after.types["hps_ask_duration_seconds"] == "histogram"
    assert delta(before, after, "hps_ask_duration_seconds_count", outcome="trial") == 2
    assert delta(before, after, "hps_ask_duration_seconds_count", outcome="refused") == 1
    assert delta(before, after, "hps_claim_duration_seconds_count", outcome="trial") == 1
    assert delta(before, after, "hps_claim_duration_seconds_count", outcome="none") == 1
    assert after.get("hps_claim_duration_seconds_sum", outcome="trial") > 0
    # The buckets are cumulative: every claim took less than +Inf.
    assert after.value("hps_claim_duration_seconds_bucket", outcome="trial", le="+Inf") == after.value(
        "hps_claim_duration_seconds_count", outcome="trial"
    )
    assert delta(before, after, "hps_active_leases") == 1  # the external study's unfinished trial
    assert delta(before, after, "hps_active_workers") == 2  # both asked for work just now
    assert after.value("hps_database_up") == 1
    assert after.value("hps_reaped_leases_total") == 0


def test_schedule_runs_are_counted_by_outcome(api_server: RunningServer) -> None:
    before = scrape(api_server)
    schedule = {
        "name": unique("metrics-schedule"),
        "cron": "0 3 * * *",
        "timezone": "UTC",
        "template": {"direction": "maximize", "metric": "accuracy", "search_space": {"preset": "adam"}},
        "concurrency": "allow",
    }
    with api_server.client() as client:
        made = client.post("/v1/schedules", json=schedule)
        assert made.status_code == 201, made.text
        for _ in range(2):
            ran = client.post(f"/v1/schedules/{made.json()['id']}/run")
            assert ran.status_code == 201, ran.text
    after = scrape(api_server)
    assert after.types["hps_schedule_runs"] == "gauge"
    assert delta(before, after, "hps_schedule_runs", outcome="started") == 2
    assert delta(before, after, "hps_schedule_runs", outcome="skipped") == 0
    # Every outcome is exposed, zeros included (``value`` raises for a missing series).
    assert after.value("hps_schedule_runs", outcome="failed") == before.value(
        "hps_schedule_runs", outcome="failed"
    )


def test_only_project_less_metrics_or_admin_tokens_may_scrape(api_server: RunningServer) -> None:
    assert_error(httpx.get(f"{api_server.base_url}/metrics", timeout=30), 401, "unauthenticated")
    assert_error(
        httpx.get(f"{api_server.base_url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=30), 401
    )
    with api_server.client() as admin:
        for scopes in (["read"], ["write"], ["worker"], ["read", "write", "worker"]):
            made = admin.post(
                "/v1/tokens", json={"name": unique("t"), "scopes": scopes, "project": "metrics"}
            )
            assert made.status_code == 201, made.text
            with api_server.client(made.json()["token"]) as other:
                assert_error(other.get("/metrics"), 403, "forbidden")
        scoped_admin = admin.post("/v1/tokens", json={"name": unique("t"), "scopes": ["admin"]})
        # An admin bound to a project would see other projects' study names in the labels: refused.
        project_admin = admin.post(
            "/v1/tokens", json={"name": unique("t"), "scopes": ["admin"], "project": "metrics"}
        )
        with api_server.client(project_admin.json()["token"]) as other:
            assert_error(other.get("/metrics"), 403, "forbidden")
        # The token to give Prometheus: it scrapes and can do nothing else.
        scraper = admin.post("/v1/tokens", json={"name": unique("prom"), "scopes": ["metrics"]})
        assert scraper.status_code == 201, scraper.text
        with api_server.client(scraper.json()["token"]) as prometheus:
            assert_error(prometheus.get("/v1/studies"), 403, "forbidden")
            assert_error(prometheus.post("/v1/workers/claim", json={}), 403)
        # Metrics tokens cover every project, so they are made without one (and with nothing else).
        for refused in (
            {"scopes": ["metrics"], "project": "metrics"},
            {"scopes": ["metrics", "read"]},
        ):
            assert_error(
                admin.post("/v1/tokens", json={"name": unique("t"), **refused}), 422, field="project"
            )
    assert "hps_trials" in scrape(api_server, scoped_admin.json()["token"]).types
    assert "hps_trials" in scrape(api_server, scraper.json()["token"]).types


def test_a_reaped_lease_is_counted(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path / "server", **FAST_LEASES)
    try:
        study_id, name = create(server, budget={"n_trials": 2, "max_retries": 1})
        with server.client() as client:
            asked = client.post(f"/v1/studies/{study_id}/trials")
            assert asked.status_code == 201, asked.text
            holding = scrape(server)
            assert holding.value("hps_active_leases") == 1
            assert trial_counts(holding, study_id, name)["running"] == 1
            trial = f"/v1/studies/{study_id}/trials/{asked.json()['number']}"
            deadline = time.monotonic() + 30
            while client.get(trial).json()["state"] == "running":  # no heartbeat: the reaper takes it
                assert time.monotonic() < deadline, "the lease was never reaped"
                time.sleep(0.2)
        reaped = scrape(server)
    finally:
        server.process.stop()
    assert reaped.value("hps_reaped_leases_total") == 1
    assert reaped.value("hps_active_leases") == 0
    assert trial_counts(reaped, study_id, name) == {**dict.fromkeys(STATES, 0), "retried": 1, "queued": 1}


def test_without_the_database_only_the_process_figures_are_served(tmp_path: Path) -> None:
    with postgres_database() as database_url:
        proxy = TcpProxy("127.0.0.1", make_url(database_url).port or 5432)
        proxied = make_url(database_url).set(port=proxy.port).render_as_string(hide_password=False)
        server = start_server(proxied, tmp_path / "server")
        try:
            study_id, _ = create(server)
            with server.client() as client:
                assert client.post(f"/v1/studies/{study_id}/trials").status_code == 201
            proxy.cut()
            away = scrape_until(server, lambda found: found.value("hps_database_up") == 0)
            proxy.restore()
            back = scrape(server)
        finally:
            server.process.stop()
            proxy.cut()
    assert away.value("hps_database_up") == 0
    assert not {"hps_trials", "hps_active_leases", "hps_active_workers", "hps_schedule_runs"} & away.names()
    assert away.value("hps_ask_duration_seconds_count", outcome="trial") == 1
    assert back.value("hps_database_up") == 1 and back.value("hps_active_leases") == 1
