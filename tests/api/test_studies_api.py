"""The studies and catalog routes over real HTTP, against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.api import assert_error, study_body, unique
from harness.servers import RunningServer


def test_create_get_and_the_normalized_spec(api_server: RunningServer) -> None:
    name = unique()
    with api_server.client() as client:
        created = client.post("/v1/studies", json=study_body(name))
        assert created.status_code == 201, created.text
        study = created.json()
        assert set(study) >= {
            "id",
            "name",
            "state",
            "direction",
            "metric",
            "spec",
            "progress",
            "best",
            "created_at",
        }
        assert study["state"] == "running" and study["best"] is None
        assert study["progress"] == {
            "complete": 0,
            "pruned": 0,
            "diverged": 0,
            "failed": 0,
            "running": 0,
            "queued": 0,
            "remaining": 5,
        }
        # The preset was resolved into the stored spec, so it never changes meaning later.
        assert "params" in study["spec"]["search_space"]
        assert study["spec"]["sampler"]["n_startup_trials"] == 10
        fetched = client.get(f"/v1/studies/{study['id']}")
        assert fetched.status_code == 200 and fetched.json() == study


def test_list_pages_with_cursors_and_filters_by_state(api_server: RunningServer) -> None:
    prefix = unique("page")
    with api_server.client() as client:
        ids = [client.post("/v1/studies", json=study_body(f"{prefix}-{i}")).json()["id"] for i in range(5)]
        client.post(f"/v1/studies/{ids[0]}/cancel")
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/studies", params=params).json()
            assert len(page["items"]) <= 2
            seen.extend(item["id"] for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(seen, reverse=True)
        assert set(ids) <= set(seen) and len(seen) == len(set(seen))
        cancelled = client.get("/v1/studies", params={"state": "cancelled", "limit": 200}).json()
        assert ids[0] in [item["id"] for item in cancelled["items"]]
        assert all(item["state"] == "cancelled" for item in cancelled["items"])


def test_list_finds_a_study_by_its_exact_name(api_server: RunningServer) -> None:
    prefix = unique("named")
    with api_server.client() as client:
        ids = [client.post("/v1/studies", json=study_body(f"{prefix}-{i}")).json()["id"] for i in range(3)]
        found = client.get("/v1/studies", params={"name": f"{prefix}-1"}).json()
        assert [item["id"] for item in found["items"]] == [ids[1]] and found["next_cursor"] is None
        assert client.get("/v1/studies", params={"name": prefix}).json()["items"] == []  # exact, not prefix
        assert_error(client.get("/v1/studies", params={"name": "no spaces"}), 422, field="name")


def test_cancel_and_delete(api_server: RunningServer) -> None:
    with api_server.client() as client:
        study_id = client.post("/v1/studies", json=study_body(unique())).json()["id"]
        cancelled = client.post(f"/v1/studies/{study_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert_error(client.post(f"/v1/studies/{study_id}/trials"), 409, "study_not_running")
        assert client.delete(f"/v1/studies/{study_id}").status_code == 204
        assert_error(client.get(f"/v1/studies/{study_id}"), 404, "study_not_found")
        assert_error(client.delete(f"/v1/studies/{study_id}"), 404, "study_not_found")


def test_name_taken_is_409(api_server: RunningServer) -> None:
    name = unique()
    with api_server.client() as client:
        assert client.post("/v1/studies", json=study_body(name)).status_code == 201
        assert_error(client.post("/v1/studies", json=study_body(name)), 409, "name_taken", "name")


def test_auth_is_required_on_v1_routes_only(api_server: RunningServer) -> None:
    anonymous = httpx.get(f"{api_server.base_url}/v1/studies")
    assert_error(anonymous, 401, "unauthenticated")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    with api_server.client(token="wrong") as client:
        assert_error(client.get("/v1/studies"), 401, "unauthenticated")
        assert_error(client.get("/v1/search-spaces"), 401)
    assert httpx.get(f"{api_server.base_url}/healthz").status_code == 200
    assert httpx.get(f"{api_server.base_url}/readyz").json()["status"] == "ok"


INVALID_SPECS = [
    ({"sampler": {"name": "annealing"}}, "sampler.name"),
    ({"sampler": {"name": "tpe", "n_startup_trials": -1}}, "sampler.n_startup_trials"),
    ({"pruner": {"name": "percentile", "percentile": 120}}, "pruner.percentile"),
    ({"budget": {"n_trials": 0}}, "budget.n_trials"),
    ({"budget": {"n_trials": 10_001}}, "budget.n_trials"),
    ({"direction": "sideways"}, "direction"),
    ({"name": "../etc/passwd"}, "name"),
    ({"search_space": {"preset": "nope"}}, "search_space.preset"),
    (
        {"search_space": {"params": {"lr": {"type": "float", "low": 1.0, "high": 0.1}}}},
        "search_space.params.lr.low",
    ),
    (
        {"search_space": {"params": {"lr": {"type": "float", "low": 0.0, "high": 0.1, "scale": "log"}}}},
        "search_space.params.lr.low",
    ),
    (
        {
            "search_space": {
                "params": {"b2": {"type": "float", "low": 0.9, "high": 1.5, "scale": "reverse_log"}}
            }
        },
        "search_space.params.b2.scale",
    ),
    (
        {"search_space": {"params": {"opt": {"type": "categorical", "choices": ["a", "a"]}}}},
        "search_space.params.opt.choices",
    ),
    (
        {"search_space": {"params": {"m": {"type": "float", "low": 0, "high": 1, "when": {"ghost": ["x"]}}}}},
        "search_space.params.m.when",
    ),
    (
        {
            "search_space": {"params": {"lr": {"type": "float", "low": 0.1, "high": 1}}},
            "sampler": {"name": "grid"},
        },
        "sampler.name",
    ),
    (
        {"search_space": {"preset": "bert-grid"}, "sampler": {"name": "grid"}, "budget": {"n_trials": 19}},
        "budget.n_trials",
    ),
    ({"surprise": 1}, "surprise"),
    ({"task": {"name": "no-such-task"}}, "task.name"),
]


@pytest.mark.parametrize(("change", "field"), INVALID_SPECS, ids=[f for _, f in INVALID_SPECS])
def test_invalid_specs_are_422_naming_the_field(
    api_server: RunningServer, change: dict[str, Any], field: str
) -> None:
    body = {**study_body(unique()), **change}
    with api_server.client() as client:
        response = client.post("/v1/studies", json=body)
    error = assert_error(response, 422, field=field)
    assert field.startswith(error["field"].split(".")[0])


def test_malformed_json_is_400(api_server: RunningServer) -> None:
    with api_server.client() as client:
        response = client.post(
            "/v1/studies", content=b'{"name": ', headers={"content-type": "application/json"}
        )
    assert_error(response, 400, "malformed_json")


def test_bad_paging_parameters_are_422(api_server: RunningServer) -> None:
    with api_server.client() as client:
        assert_error(client.get("/v1/studies", params={"cursor": "bogus!"}), 422, field="cursor")
        assert_error(client.get("/v1/studies", params={"limit": 0}), 422, field="limit")
        assert_error(client.get("/v1/studies", params={"limit": 201}), 422, field="limit")
        assert_error(client.get("/v1/studies", params={"state": "asleep"}), 422, field="state")
        assert_error(client.get("/v1/studies/not-a-number"), 422, field="study_id")


def test_unknown_routes_are_404_in_the_error_format(api_server: RunningServer) -> None:
    with api_server.client() as client:
        assert_error(client.get("/v1/nothing-here"), 404)
        assert_error(client.get("/v1/studies/999999"), 404, "study_not_found")


def test_search_space_catalog(api_server: RunningServer) -> None:
    with api_server.client() as client:
        items = client.get("/v1/search-spaces").json()["items"]
        names = {item["name"] for item in items}
        assert {"adam", "adamw", "sgd", "optimizers", "bert-grid"} <= names
        adam = client.get("/v1/search-spaces/adam").json()
        assert adam["params"]["beta2"]["scale"] == "reverse_log"
        assert_error(client.get("/v1/search-spaces/nope"), 404)
        # A preset's JSON is accepted inline as a study's search space.
        created = client.post("/v1/studies", json=study_body(unique(), search_space=adam))
        assert created.status_code == 201, created.text


def test_openapi_describes_every_route(api_server: RunningServer) -> None:
    document = httpx.get(f"{api_server.base_url}/openapi.json").json()
    paths = document["paths"]
    for path, method in [
        ("/v1/studies", "post"),
        ("/v1/studies", "get"),
        ("/v1/studies/{study_id}", "get"),
        ("/v1/studies/{study_id}", "delete"),
        ("/v1/studies/{study_id}/cancel", "post"),
        ("/v1/studies/{study_id}/trials", "post"),
        ("/v1/studies/{study_id}/trials", "get"),
        ("/v1/studies/{study_id}/trials/{number}", "get"),
        ("/v1/studies/{study_id}/trials/{number}/reports", "post"),
        ("/v1/studies/{study_id}/trials/{number}/heartbeat", "post"),
        ("/v1/studies/{study_id}/trials/{number}/complete", "post"),
        ("/v1/studies/{study_id}/best", "get"),
        ("/v1/search-spaces", "get"),
        ("/v1/search-spaces/{name}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths[path], (path, method)


TASK_ERRORS = [
    ({"task": {"name": "digits", "model": "minilm-l6"}}, "task.model"),
    ({"task": {"name": "digits", "dataset": "nope"}}, "task.dataset"),
    ({"task": {"name": "digits"}, "metric": "val_f1"}, "metric"),
    ({"task": {"name": "digits"}, "metric": "val_loss", "direction": "maximize"}, "direction"),
    ({"task": {"name": "digits", "model": "/etc/passwd"}}, "task.model"),
    ({"task": {"name": "digits", "epochs": 0}}, "task.epochs"),
    ({"search_space": {"preset": "adam", "starts": [{"lr": 5.0}]}}, "search_space.starts.0"),
]


@pytest.mark.parametrize(("change", "field"), TASK_ERRORS, ids=[f for _, f in TASK_ERRORS])
def test_task_and_starts_errors_are_422(
    api_server: RunningServer, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in study_body(unique()).items() if k not in ("metric", "direction")}
    with api_server.client() as client:
        response = client.post("/v1/studies", json={**body, **change})
    assert_error(response, 422, field=field)


def test_catalog_of_tasks_models_and_datasets(api_server: RunningServer) -> None:
    with api_server.client() as client:
        tasks = {t["name"]: t for t in client.get("/v1/tasks").json()["items"]}
        models = {m["name"]: m for m in client.get("/v1/models").json()["items"]}
        datasets = {d["name"]: d for d in client.get("/v1/datasets").json()["items"]}
    assert {"quadratic", "digits", "text-classification", "image-classification"} <= set(tasks)
    assert tasks["digits"]["metrics"] == {"val_accuracy": "maximize", "val_loss": "minimize"}
    assert models["minilm-l6"]["task"] == "text-classification"
    assert "path" not in models["minilm-l6"] and "reviews-sample" in datasets
    # Which learning rates a study's preset is fitted to, per model family.
    text = tasks["text-classification"]
    assert text["family"] == models["minilm-l6"]["family"] == "transformer"
    assert text["learning_rates"]["starts"]["adamw"] == 5e-5 and text["learning_rates"]["high"] == 1e-3
    assert tasks["digits"]["family"] == "cnn" and tasks["digits"]["learning_rates"] is None


def test_a_preset_is_fitted_to_the_models_family_unless_the_study_says_otherwise(
    api_server: RunningServer,
) -> None:
    task = {"name": "text-classification"}
    own_lr = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "scale": "log"}}
    with api_server.client() as client:
        fitted = client.post(
            "/v1/studies", json={"name": unique(), "task": task, "search_space": {"preset": "adamw"}}
        )
        kept = client.post(
            "/v1/studies",
            json={
                "name": unique(),
                "task": task,
                "search_space": {"preset": "adamw", "params": own_lr, "starts": []},
            },
        )
        cnn = client.post(
            "/v1/studies",
            json={"name": unique(), "task": {"name": "digits"}, "search_space": {"preset": "adamw"}},
        )
    space = fitted.json()["spec"]["search_space"]
    assert (space["params"]["lr"]["low"], space["params"]["lr"]["high"]) == (5e-6, 1e-3)
    assert space["starts"][0]["lr"] == 5e-5
    own = kept.json()["spec"]["search_space"]
    assert (own["params"]["lr"]["low"], own["params"]["lr"]["high"], own["starts"]) == (1e-4, 1e-2, [])
    digits = cnn.json()["spec"]["search_space"]
    assert (digits["params"]["lr"]["high"], digits["starts"][0]["lr"]) == (0.1, 1e-3)  # the preset as written


def test_a_task_study_gets_the_tasks_defaults(api_server: RunningServer) -> None:
    body = {"name": unique(), "task": {"name": "digits"}, "search_space": {"preset": "optimizers"}}
    with api_server.client() as client:
        study = client.post("/v1/studies", json=body).json()
    assert (study["metric"], study["direction"]) == ("val_accuracy", "maximize")
    assert study["spec"]["task"]["model"] == "digits-cnn"
    assert study["spec"]["pruner"]["name"] == "successive_halving"
    assert study["progress"]["queued"] == 5  # the preset's starts


def test_claim_answers_204_when_there_is_nothing_to_do(api_server: RunningServer) -> None:
    with api_server.client() as client:
        response = client.post(
            "/v1/workers/claim", json={"worker_id": "w-1", "device": "cpu", "tasks": ["image-classification"]}
        )
        assert response.status_code == 204
        bad = client.post("/v1/workers/claim", json={"worker_id": "w 1", "device": "cpu", "tasks": []})
        assert_error(bad, 422)
