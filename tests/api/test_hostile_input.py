"""The red team's scenarios (issue 10), over real HTTP against real servers on SQLite and PostgreSQL: what
the service accepts works later, no input gets a 500, one study cannot stall another, deleted ids stay
gone, names do not leak across projects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
from sqlalchemy import create_engine, select, update

from harness.api import assert_error, study_body, unique
from harness.servers import RunningServer, serving
from hps.server.store.models import StudyRow

QUADRATIC = {
    "task": {"name": "quadratic"},
    "search_space": {"preset": "adam", "starts": []},
    "sampler": {"name": "random", "seed": 1},
    "budget": {"n_trials": 4},
}


def new_token(server: RunningServer, scopes: list[str], project: str | None) -> str:
    with server.client() as admin:
        made = admin.post("/v1/tokens", json={"name": unique("tok"), "scopes": scopes, "project": project})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def send(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    """Send ``body`` as JSON with every non-ASCII character escaped, as a JSON client may: so a lone
    surrogate travels as the escape ``\\ud800``, which httpx's own encoder cannot produce."""
    content = json.dumps(body)
    return client.request(method, path, content=content, headers={"content-type": "application/json"})


def assert_listings_answer(client: httpx.Client) -> None:
    """Whatever was sent before, every listing still answers."""
    for path in ("/v1/studies", "/v1/schedules", "/v1/tokens", "/v1/tasks", "/v1/search-spaces"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)


def rewrite_spec(server: RunningServer, study_id: int, change: dict[str, Any]) -> None:
    """Write a study's stored spec by hand, as an operator or a future hps might: past the API's checks."""
    engine = create_engine(server.database_url)
    with engine.begin() as conn:
        spec = conn.execute(select(StudyRow.spec).where(StudyRow.id == study_id)).scalar_one()
        spec = {**spec, **change}
        conn.execute(update(StudyRow).where(StudyRow.id == study_id).values(spec=spec))
    engine.dispose()


# 1. Accepted, then broken: settings Optuna refuses are refused at the door.
REFUSED_STRATEGIES = [
    ({"name": "successive_halving", "min_resource": 0}, "pruner.min_resource"),
    ({"name": "successive_halving", "min_resource": -3}, "pruner.min_resource"),
    ({"name": "successive_halving", "bootstrap_count": 2}, "pruner.bootstrap_count"),
    ({"name": "hyperband", "max_resource": -5}, "pruner.max_resource"),
    ({"name": "hyperband", "bootstrap_count": 3}, "pruner.bootstrap_count"),
    ({"name": "hyperband", "min_resource": 9, "max_resource": 3}, "pruner.max_resource"),
]


@pytest.mark.parametrize(("pruner", "field"), REFUSED_STRATEGIES)
def test_pruner_settings_optuna_refuses_are_a_422_at_creation(
    api_server: RunningServer, pruner: dict[str, Any], field: str
) -> None:
    name = unique()
    with api_server.client() as client:
        assert_error(client.post("/v1/studies", json=study_body(name, pruner=pruner)), 422, "invalid", field)
        assert client.get("/v1/studies", params={"name": name}).json()["items"] == []
        assert_listings_answer(client)


def test_schedule_templates_are_rehearsed_like_studies(api_server: RunningServer) -> None:
    body = {
        "name": unique("sch"),
        "cron": "0 3 * * *",
        "template": {**study_body("x", pruner={"name": "hyperband", "max_resource": -5}), "name": None},
    }
    del body["template"]["name"]  # type: ignore[attr-defined]
    with api_server.client() as client:
        assert_error(client.post("/v1/schedules", json=body), 422, "invalid", "template.pruner.max_resource")


def test_a_study_optuna_fails_on_is_ended_and_claims_serve_the_others(
    api_server: RunningServer, tmp_path: Path
) -> None:
    project = unique("iso")
    worker = new_token(api_server, ["worker"], project)
    with api_server.client() as admin:
        # Created first, so the claim (least recently served, then oldest) tries it first.
        broken = admin.post("/v1/studies", params={"project": project}, json={"name": unique(), **QUADRATIC})
        healthy = admin.post("/v1/studies", params={"project": project}, json={"name": unique(), **QUADRATIC})
        assert broken.status_code == healthy.status_code == 201, broken.text
    broken_id, healthy_id = broken.json()["id"], healthy.json()["id"]
    rewrite_spec(api_server, broken_id, {"sampler": {"name": "tpe", "n_startup_trials": -1}})
    # A replica that reads the hand-written spec (the server that created the study keeps the plan it made).
    with serving(api_server.database_url, tmp_path) as replica, replica.client(worker) as client:
        claim = client.post(
            "/v1/workers/claim", json={"worker_id": "w1", "device": "cpu", "tasks": ["quadratic"]}
        )
        assert claim.status_code == 200, claim.text
        assert claim.json()["study_id"] == healthy_id
    with api_server.client() as admin:
        ended = admin.get(f"/v1/studies/{broken_id}").json()
        assert ended["state"] == "failed" and "Optuna failed" in ended["state_reason"]
        assert_error(admin.post(f"/v1/studies/{broken_id}/trials"), 409, "study_not_running")
        assert_listings_answer(admin)


def test_a_report_the_study_cannot_prune_stops_the_study_and_keeps_the_point(
    api_server: RunningServer, tmp_path: Path
) -> None:
    with api_server.client() as client:
        study_id = client.post("/v1/studies", json={"name": unique(), **QUADRATIC}).json()["id"]
        number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
    # Written by hand after the ask: a replica that has not built this study's Optuna objects yet (a
    # second server on the same database) meets it at the trial's first report.
    rewrite_spec(api_server, study_id, {"pruner": {"name": "hyperband", "max_resource": -5}})
    with serving(api_server.database_url, tmp_path) as replica, replica.client() as client:
        report = client.post(
            f"/v1/studies/{study_id}/trials/{number}/reports", json={"step": 1, "value": 0.5}
        )
        assert report.status_code == 200, report.text
        assert report.json() == {"should_prune": False, "should_stop": True}
        trial = client.get(f"/v1/studies/{study_id}/trials/{number}").json()
        assert trial["intermediate_values"] == [{"step": 1, "value": 0.5}]
        study = client.get(f"/v1/studies/{study_id}").json()
        assert study["state"] == "failed" and "Optuna failed" in study["state_reason"]
    assert "Traceback" not in replica.process.output()


# 2 and 3. Text the databases cannot hold: refused with 422 naming the field, identically on both.
def test_a_lone_surrogate_is_refused_and_nothing_is_stored(api_server: RunningServer) -> None:
    name = unique()
    space = {"params": {"opt": {"type": "categorical", "choices": ["sgd", "\ud800"]}}}
    with api_server.client() as client:
        response = send(client, "POST", "/v1/studies", study_body(name, search_space=space))
        assert_error(response, 422, "invalid", "search_space.params.opt.choices.1")
        assert client.get("/v1/studies", params={"name": name}).json()["items"] == []
        assert_listings_answer(client)


@pytest.mark.parametrize("bad", ["a\x00b", "\udfff"])
def test_nul_and_surrogates_are_refused_in_every_kind_of_field(api_server: RunningServer, bad: str) -> None:
    worker = new_token(api_server, ["worker"], "textrule")
    with api_server.client() as client:
        assert_error(
            send(client, "POST", "/v1/studies", study_body(unique(), metric=bad)), 422, "invalid", "metric"
        )
        token = send(client, "POST", "/v1/tokens", {"name": bad, "scopes": ["read"], "project": "p"})
        assert_error(token, 422, "invalid", "name")
        study_id = send(client, "POST", "/v1/studies", study_body(unique())).json()["id"]
        asked = send(client, "POST", f"/v1/studies/{study_id}/trials", {"worker_id": bad})
        assert_error(asked, 422, "invalid", "worker_id")
        number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
        complete = f"/v1/studies/{study_id}/trials/{number}/complete"
        failed = send(client, "POST", complete, {"state": "failed", "reason": bad})
        assert_error(failed, 422, "invalid", "reason")
        nested = send(
            client, "POST", complete, {"state": "complete", "value": 1.0, "attrs": {"run": {"log": [bad]}}}
        )
        assert_error(nested, 422, "invalid", "attrs.run.log.0")
        keyed = send(client, "POST", complete, {"state": "complete", "value": 1.0, "attrs": {bad: 1}})
        assert keyed.status_code == 422 and keyed.json()["field"].startswith("attrs."), keyed.text
        # The trial is untouched by the refusals and can still be completed.
        done = send(client, "POST", complete, {"state": "complete", "value": 1.0, "attrs": {"ok": True}})
        assert done.status_code == 200, done.text
        assert_listings_answer(client)
    with api_server.client(worker) as client:
        for body, field in (
            ({"worker_id": "w", "device": "cpu", "tasks": [bad]}, "tasks.0"),
            ({"worker_id": bad, "device": "cpu", "tasks": ["quadratic"]}, "worker_id"),
        ):
            response = send(client, "POST", "/v1/workers/claim", body)
            assert response.status_code == 422 and response.json()["field"] == field, response.text


# 4. Sizes past the limits.
def test_a_huge_grid_is_refused_without_being_enumerated(api_server: RunningServer) -> None:
    values = list(range(256))
    grid = {f"p{i}": values for i in range(64)}
    with api_server.client() as client:
        for budget in ({}, {"n_trials": 256**64}):
            body = study_body(unique(), search_space={"grid": grid}, sampler={"name": "grid"}, budget=budget)
            response = client.post("/v1/studies", json=body, timeout=60)
            assert response.status_code == 422, response.text
        small = {"a": [1, 2, 3], "b": ["x", "y"]}
        made = client.post(
            "/v1/studies",
            json=study_body(unique(), search_space={"grid": small}, sampler={"name": "grid"}, budget={}),
        )
        assert made.status_code == 201 and made.json()["progress"]["remaining"] == 6, made.text


@pytest.mark.parametrize(
    ("param", "field"),
    [
        ({"type": "int", "low": 0, "high": 10**30}, "search_space.params.n.high"),
        ({"type": "int", "low": 0, "high": 1e30}, "search_space.params.n.high"),
        ({"type": "float", "low": 0, "high": 1e30, "step": 1}, "search_space.params.n.step"),
        ({"type": "float", "low": -1e308, "high": 1e308}, "search_space.params.n.high"),
    ],
)
def test_numbers_beyond_what_optuna_stores_exactly_are_refused(
    api_server: RunningServer, param: dict[str, Any], field: str
) -> None:
    body = study_body(unique(), search_space={"params": {"n": param}})
    with api_server.client() as client:
        assert_error(client.post("/v1/studies", json=body), 422, "invalid", field)


def test_free_form_attrs_keep_any_json_number_exactly(api_server: RunningServer) -> None:
    attrs = {"flops": 2**64 + 1, "tiny": 5e-324, "huge": 1.5e300}
    with api_server.client() as client:
        study_id = client.post("/v1/studies", json=study_body(unique())).json()["id"]
        number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
        path = f"/v1/studies/{study_id}/trials/{number}"
        done = client.post(f"{path}/complete", json={"state": "complete", "value": 1.0, "attrs": attrs})
        assert done.status_code == 200, done.text
        assert client.get(path).json()["attrs"] == attrs


def test_cursors_past_the_id_column_are_pages_not_errors(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = client.post("/v1/studies", json=study_body(unique())).json()["id"]
        for cursor in ("2147483648", "999999999999999999"):
            studies = client.get("/v1/studies", params={"cursor": cursor, "limit": 1})
            assert studies.status_code == 200 and studies.json()["items"], studies.text
            assert client.get("/v1/schedules", params={"cursor": cursor}).status_code == 200
            trials = client.get(f"/v1/studies/{study_id}/trials", params={"cursor": cursor})
            assert trials.status_code == 200 and trials.json()["items"] == [], trials.text


# 5. Schedules.
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Europe"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"cron": "0 0 30 2 *"}, "cron"),
    ],
)
def test_schedules_refuse_zones_that_are_folders_and_crons_that_never_fire(
    api_server: RunningServer, change: dict[str, str], field: str
) -> None:
    template = {k: v for k, v in study_body("x").items() if k != "name"}
    body = {"name": unique("sch"), "cron": "0 3 * * *", "template": template, **change}
    with api_server.client() as client:
        assert_error(client.post("/v1/schedules", json=body), 422, "invalid", field)
        made = client.post("/v1/schedules", json={**body, "cron": "0 3 * * *", "timezone": "UTC"})
        assert made.status_code == 201, made.text
        patched = client.patch(f"/v1/schedules/{made.json()['id']}", json=change)
        assert_error(patched, 422, "invalid", field)
        assert_listings_answer(client)


# 7. Deleted means gone.
def test_a_deleted_studys_ids_are_never_handed_out_again(api_server: RunningServer) -> None:
    with api_server.client() as client:
        old = client.post("/v1/studies", json=study_body(unique())).json()["id"]
        old_number = client.post(f"/v1/studies/{old}/trials").json()["number"]
        assert client.delete(f"/v1/studies/{old}").status_code == 204
        new = client.post("/v1/studies", json=study_body(unique())).json()["id"]
        assert new != old
        new_number = client.post(f"/v1/studies/{new}/trials").json()["number"]
        # The deleted study's leftover client: every call naming its trial is a 404 and writes nothing.
        base = f"/v1/studies/{old}/trials/{old_number}"
        assert_error(client.post(f"{base}/complete", json={"state": "complete", "value": 9.0}), 404)
        assert_error(client.post(f"{base}/reports", json={"step": 1, "value": 9.0}), 404)
        assert_error(client.post(f"{base}/heartbeat"), 404)
        trial = client.get(f"/v1/studies/{new}/trials/{new_number}").json()
        assert trial["state"] == "running" and trial["intermediate_values"] == []


# 8. No existence leaks across projects.
def test_names_are_unique_within_a_project_only(api_server: RunningServer) -> None:
    name, schedule = unique("shared"), unique("shared-sch")
    first, second = unique("pa"), unique("pb")
    tokens = {project: new_token(api_server, ["write"], project) for project in (first, second)}
    ids = {}
    template = {k: v for k, v in study_body("x").items() if k != "name"}
    for project, token in tokens.items():
        with api_server.client(token) as client:
            made = client.post("/v1/studies", json=study_body(name))
            assert made.status_code == 201, made.text
            ids[project] = made.json()
            assert (
                client.post(
                    "/v1/schedules", json={"name": schedule, "cron": "0 3 * * *", "template": template}
                ).status_code
                == 201
            )
            assert_error(client.post("/v1/studies", json=study_body(name)), 409, "name_taken")
            listed = client.get("/v1/studies", params={"name": name}).json()["items"]
            assert [s["id"] for s in listed] == [made.json()["id"]]
    assert ids[first]["optuna_name"] == f"{first}/{name}"
    # What `optuna.load_study` users pass: the Optuna name the study shows.
    storage = optuna.storages.RDBStorage(api_server.database_url, skip_table_creation=True)
    loaded = optuna.load_study(study_name=ids[second]["optuna_name"], storage=storage)
    assert loaded._study_id == ids[second]["id"]
    storage.engine.dispose()
    with api_server.client() as admin:
        both = admin.get("/v1/studies", params={"name": name}).json()["items"]
        assert sorted(s["id"] for s in both) == sorted(s["id"] for s in ids.values())


# 9. Every 405 says what is allowed.
def test_every_405_carries_a_non_empty_allow_header(api_server: RunningServer) -> None:
    paths = [
        path.replace("{study_id}", "1")
        .replace("{number}", "0")
        .replace("{schedule_id}", "1")
        .replace("{token_id}", "x")
        .replace("{name}", "adam")
        for path in httpx.get(f"{api_server.base_url}/openapi.json").json()["paths"]
    ]
    seen = 0
    with api_server.client() as client:
        for path in [*paths, "/openapi.json", "/docs", "/redoc", "/metrics", "/healthz"]:
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                response = client.request(method, path)
                if response.status_code == 405:
                    seen += 1
                    allow = response.headers.get("allow", "")
                    assert allow and method not in allow.split(", "), (method, path, allow)
    assert seen > 20


# A study with a task takes only what the task's workers run.
@pytest.mark.parametrize(
    ("params", "field"),
    [
        (
            {"optimizer": {"type": "categorical", "choices": ["lion"]}},
            "search_space.params.optimizer.choices",
        ),
        (
            {
                "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
                "momentum": {"type": "float", "low": 0.1, "high": 0.9},
            },
            "search_space.params.momentum.when",
        ),
        ({"momentum": {"type": "float", "low": 0.1, "high": 0.9}}, "search_space.params.momentum.when"),
        (
            {
                "optimizer": {"type": "categorical", "choices": ["sgd"]},
                "momentum": {"type": "float", "low": 0, "high": 1.5},
            },
            "search_space.params.momentum",
        ),
        ({"lr": {"type": "float", "low": -1, "high": 1}}, "search_space.params.lr"),
        ({"learning_rate": {"type": "float", "low": 0.1, "high": 1}}, "search_space.params.learning_rate"),
        (
            {"warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2}},
            "search_space.params.warmup_ratio.when",
        ),
        ({"epochs": {"type": "int", "low": 0, "high": 3}}, "search_space.params.epochs"),
    ],
)
def test_a_task_study_takes_only_what_the_tasks_workers_run(
    api_server: RunningServer, params: dict[str, Any], field: str
) -> None:
    body = {"name": unique(), "task": {"name": "quadratic"}, "search_space": {"params": params}}
    with api_server.client() as client:
        assert_error(client.post("/v1/studies", json=body), 422, "invalid", field)
        # The same space is fine for an external study: its client runs what it likes.
        external = {"name": unique(), "search_space": {"params": params}}
        assert client.post("/v1/studies", json=external).status_code == 201
        tasks = {task["name"]: task for task in client.get("/v1/tasks").json()["items"]}
        assert "lion" not in tasks["quadratic"]["optimizers"] and "adamw" in tasks["quadratic"]["optimizers"]
