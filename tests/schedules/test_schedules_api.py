"""``/v1/schedules`` over real HTTP against real servers on SQLite and PostgreSQL: the resource, bad input
naming the field, projects and scopes, manual runs with warm starts that asks hand out."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.api import assert_error, unique
from harness.servers import RunningServer


def template(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "direction": "maximize",
        "metric": "accuracy",
        "search_space": {
            "params": {
                "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "scale": "log"},
                "beta1": {"type": "float", "low": 0.8, "high": 0.99},
            }
        },
        "sampler": {"name": "random", "seed": 3},
        "budget": {"n_trials": 4},
    }
    body.update(overrides)
    return body


def schedule_body(name: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "template": template(),
        "concurrency": "allow",
        "warm_start": {"from": "previous", "top_k": 2},
        "promotion": {"margin": 0.01},
    }
    body.update(overrides)
    return body


def create(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/schedules", json=schedule_body(unique("sch"), **overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_create_read_patch_pause_resume_delete(api_server: RunningServer) -> None:
    with api_server.client() as client:
        schedule = create(client)
        assert set(schedule) == {
            *("id", "name", "state", "cron", "timezone", "template", "misfire", "concurrency"),
            *("warm_start", "promotion", "incumbent", "next_run_at", "created_at", "updated_at"),
        }
        assert schedule["state"] == "active" and schedule["incumbent"] is None
        assert schedule["misfire"] == "run_once" and schedule["warm_start"] == {
            "from": "previous",
            "top_k": 2,
        }
        assert schedule["template"]["budget"]["n_trials"] == 4 and "name" not in schedule["template"]
        assert schedule["next_run_at"].endswith(("00:30:00Z", "01:30:00Z"))  # 02:30 Berlin, CEST or CET
        path = f"/v1/schedules/{schedule['id']}"
        assert client.get(path).json() == schedule
        patched = client.patch(path, json={"cron": "0 6 * * 1", "timezone": "UTC", "warm_start": None})
        assert patched.status_code == 200, patched.text
        assert patched.json()["next_run_at"].endswith("06:00:00Z") and patched.json()["warm_start"] is None
        assert client.post(f"{path}/pause").json()["state"] == "paused"
        assert client.post(f"{path}/resume").json()["state"] == "active"
        assert client.get(f"{path}/runs").json() == {"items": [], "next_cursor": None}
        assert client.delete(path).status_code == 204
        assert_error(client.get(path), 404, "schedule_not_found")
        assert_error(client.post(f"{path}/run"), 404, "schedule_not_found")


def test_list_pages_newest_first(api_server: RunningServer) -> None:
    with api_server.client() as client:
        ids = [create(client)["id"] for _ in range(3)]
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/schedules", params=params).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(seen, reverse=True) and set(ids) <= set(seen)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cron": "every night"}, "cron"),
        ({"cron": "0 2 * * * *"}, "cron"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"misfire": "always"}, "misfire"),
        ({"concurrency": "queue"}, "concurrency"),
        ({"warm_start": {"from": "previous", "top_k": 0}}, "warm_start.top_k"),
        ({"promotion": {"margin": -1}}, "promotion.margin"),
        ({"template": template(name="mine")}, "template.name"),
        ({"template": template(budget={"n_trials": 0})}, "template.budget.n_trials"),
        (
            {
                "template": template(
                    search_space={"params": {"lr": {"type": "float", "low": 1.0, "high": 0.1}}}
                )
            },
            "template.search_space.params.lr.low",
        ),
        ({"template": template(task={"name": "no-such-task"})}, "template.task.name"),
        ({"template": template(task={"name": "digits"}, metric="bleu")}, "template.metric"),
        ({"name": "has space"}, "name"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    api_server: RunningServer, overrides: dict[str, Any], field: str
) -> None:
    with api_server.client() as client:
        body = {**schedule_body(unique()), **overrides}
        assert_error(client.post("/v1/schedules", json=body), 422, field=field)


def test_bad_patches_and_taken_names(api_server: RunningServer) -> None:
    with api_server.client() as client:
        schedule = create(client)
        path = f"/v1/schedules/{schedule['id']}"
        assert_error(client.patch(path, json={"cron": "0 25 * * *"}), 422, field="cron")
        assert_error(client.patch(path, json={"timezone": "Nowhere"}), 422, field="timezone")
        assert_error(client.patch(path, json={"cron": "x" * 200}), 422, field="cron")
        assert_error(client.patch(path, json={"name": "renamed"}), 422, field="name")
        bad_template = template(sampler={"name": "annealing"})
        assert_error(client.patch(path, json={"template": bad_template}), 422, field="template.sampler.name")
        again = client.post("/v1/schedules", json=schedule_body(schedule["name"]))
        assert_error(again, 409, "name_taken", field="name")
        assert_error(client.get("/v1/schedules/0"), 422)
        assert client.get(path).json() == schedule  # nothing changed
        kept = client.patch(path, json={"cron": None, "timezone": None, "template": None})  # null keeps
        assert kept.status_code == 200 and kept.json()["cron"] == schedule["cron"]
        assert kept.json()["next_run_at"] == schedule["next_run_at"]


def test_manual_runs_warm_start_from_the_previous_one(api_server: RunningServer) -> None:
    with api_server.client() as client:
        schedule = create(client)
        first = client.post(f"/v1/schedules/{schedule['id']}/run")
        assert first.status_code == 201, first.text
        run, study = first.json()["run"], first.json()["study"]
        assert (run["trigger"], run["outcome"], run["seeded"]) == ("manual", "started", 0)
        assert study["name"] == run["study_name"] and study["name"].startswith(schedule["name"] + "-")
        assert study["warm_start"]["note"].startswith("no earlier run")
        scores = {}
        for value in (0.6, 0.9, 0.7):
            asked = client.post(f"/v1/studies/{study['id']}/trials").json()
            done = client.post(
                f"/v1/studies/{study['id']}/trials/{asked['number']}/complete",
                json={"state": "complete", "value": value},
            )
            assert done.status_code == 200, done.text
            scores[value] = asked["params"]
        second = client.post(f"/v1/schedules/{schedule['id']}/run").json()
        assert second["run"]["seeded_from"] == study["id"] and second["run"]["seeded"] == 2
        seeded = client.get(f"/v1/studies/{second['study']['id']}").json()
        warm = seeded["warm_start"]
        assert warm["from"] == "previous" and warm["seeded_from"] == study["id"]
        assert [config["params"] for config in warm["configs"]] == [scores[0.9], scores[0.7]]
        assert seeded["progress"]["queued"] == 2
        handed = [client.post(f"/v1/studies/{seeded['id']}/trials").json()["params"] for _ in range(2)]
        assert handed == [scores[0.9], scores[0.7]]
        runs = client.get(f"/v1/schedules/{schedule['id']}/runs", params={"limit": 1}).json()
        assert runs["items"][0]["id"] == second["run"]["id"] and runs["next_cursor"] is not None


def test_concurrency_skip_refuses_a_manual_run_while_the_last_study_runs(api_server: RunningServer) -> None:
    with api_server.client() as client:
        schedule = create(client, concurrency="skip")
        assert client.post(f"/v1/schedules/{schedule['id']}/run").status_code == 201
        assert_error(client.post(f"/v1/schedules/{schedule['id']}/run"), 409, "schedule_busy")


def new_token(server: RunningServer, scopes: list[str], project: str) -> str:
    with server.client() as admin:
        made = admin.post("/v1/tokens", json={"name": unique("tok"), "scopes": scopes, "project": project})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def test_projects_hide_schedules_and_scopes_apply(api_server: RunningServer) -> None:
    ours, theirs = unique("ours"), unique("theirs")
    with api_server.client(new_token(api_server, ["write"], theirs)) as other:
        hidden = create(other)
    with api_server.client(new_token(api_server, ["write"], ours)) as client:
        mine = create(client)
        listed = [item["id"] for item in client.get("/v1/schedules", params={"limit": 200}).json()["items"]]
        assert mine["id"] in listed and hidden["id"] not in listed
        path = f"/v1/schedules/{hidden['id']}"
        for method, suffix, body in [
            ("GET", "", None),
            ("PATCH", "", {"misfire": "skip"}),
            ("DELETE", "", None),
            ("POST", "/pause", None),
            ("POST", "/resume", None),
            ("POST", "/run", None),
            ("GET", "/runs", None),
        ]:
            assert_error(client.request(method, path + suffix, json=body), 404, "schedule_not_found")
        assert_error(
            client.post("/v1/schedules", params={"project": theirs}, json=schedule_body(unique())), 403
        )
    with api_server.client(new_token(api_server, ["read"], ours)) as reader:
        assert reader.get(f"/v1/schedules/{mine['id']}").status_code == 200
        assert_error(reader.post("/v1/schedules", json=schedule_body(unique())), 403, "forbidden")
        assert_error(reader.patch(f"/v1/schedules/{mine['id']}", json={"misfire": "skip"}), 403, "forbidden")
        assert_error(reader.post(f"/v1/schedules/{mine['id']}/run"), 403, "forbidden")
        assert_error(reader.delete(f"/v1/schedules/{mine['id']}"), 403, "forbidden")
