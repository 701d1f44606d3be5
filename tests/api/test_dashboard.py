"""The Optuna dashboard served at ``/dashboard`` behind hps's auth, over real HTTP against a real server
on SQLite and PostgreSQL: browsers get a basic-auth challenge, readers see only their project's studies,
and only project-less admins may change anything through it."""

from __future__ import annotations

import httpx
import optuna
import pytest
from optuna.storages import RDBStorage

from harness.api import assert_error, new_study, study_body, unique
from harness.servers import ADMIN_TOKEN, RunningServer
from hps.server.api.dashboard import ProjectStorage, ProjectStudies
from hps.server.errors import Forbidden
from hps.server.store.database import Database

BASIC_CHALLENGE = 'Basic realm="hps dashboard"'


def browser(server: RunningServer, token: str) -> httpx.Client:
    """A client that authenticates as a browser does: the token as the password of basic auth."""
    return httpx.Client(base_url=server.base_url, auth=("hps", token), timeout=30.0)


def make_token(server: RunningServer, project: str, *scopes: str) -> str:
    with server.client() as admin:
        made = admin.post(
            "/v1/tokens", json={"name": unique("t"), "scopes": list(scopes), "project": project}
        )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def project_study(server: RunningServer, project: str) -> tuple[int, str]:
    """A study created by the admin in ``project``: its id and name."""
    name = unique()
    with server.client() as admin:
        created = admin.post("/v1/studies", params={"project": project}, json=study_body(name))
    assert created.status_code == 201, created.text
    return int(created.json()["id"]), name


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/studies/1", "/", "/api/studies", "/csv/1"])
def test_every_dashboard_path_challenges_a_caller_without_a_token(
    api_server: RunningServer, path: str
) -> None:
    refused = httpx.get(api_server.base_url + path, timeout=30.0)
    assert_error(refused, 401, "unauthenticated")
    assert refused.headers["www-authenticate"] == BASIC_CHALLENGE
    with browser(api_server, "not-a-token") as client:
        wrong = client.get(path)
    assert_error(wrong, 401, "unauthenticated")
    assert wrong.headers["www-authenticate"] == BASIC_CHALLENGE


def test_the_token_as_basic_password_or_bearer_opens_the_dashboard(api_server: RunningServer) -> None:
    with browser(api_server, ADMIN_TOKEN) as client:
        page = client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>Optuna Dashboard</title>" in page.text
        assert client.get("/", follow_redirects=False).headers["location"].endswith("/dashboard")
        assert client.get("/favicon.ico").status_code == 200
    with api_server.client() as bearer:
        assert bearer.get("/dashboard").status_code == 200


def test_the_api_lists_a_study_made_through_hps_with_its_trials(api_server: RunningServer) -> None:
    with api_server.client() as admin:
        study_id = new_study(admin, budget={"n_trials": 2})
        name = admin.get(f"/v1/studies/{study_id}").json()["name"]
        number = admin.post(f"/v1/studies/{study_id}/trials").json()["number"]
        done = admin.post(
            f"/v1/studies/{study_id}/trials/{number}/complete", json={"state": "complete", "value": 0.75}
        )
        assert done.status_code == 200, done.text
    with browser(api_server, ADMIN_TOKEN) as client:
        listed = client.get("/api/studies")
        assert listed.status_code == 200
        names = {s["study_name"]: s["study_id"] for s in listed.json()["study_summaries"]}
        assert names[name] == study_id
        detail = client.get(f"/api/studies/{study_id}").json()
        assert detail["name"] == name
        assert [t["values"] for t in detail["trials"]] == [[0.75]]
        csv = client.get(f"/csv/{study_id}")
        assert csv.status_code == 200 and csv.text.startswith("Number,State")


def test_a_project_token_sees_only_its_projects_studies(api_server: RunningServer) -> None:
    ours, theirs = unique("team"), unique("team")
    our_id, our_name = project_study(api_server, ours)
    their_id, their_name = project_study(api_server, theirs)
    with browser(api_server, make_token(api_server, ours, "read")) as client:
        listed = client.get("/api/studies").json()["study_summaries"]
        assert [s["study_name"] for s in listed] == [our_name]
        assert client.get(f"/api/studies/{our_id}").json()["name"] == our_name
        assert client.get(f"/csv/{our_id}").status_code == 200
        for path in (
            f"/api/studies/{their_id}",
            f"/api/studies/{their_id}/param_importances",
            f"/api/studies/{their_id}/plot/slice",
            f"/csv/{their_id}",
        ):
            body = assert_error(client.get(path), 404, "study_not_found")
            assert their_name not in body["detail"]
        # A study id nobody has is answered the same way: no way to tell the two apart.
        assert_error(client.get("/api/studies/99999999"), 404, "study_not_found")


def test_a_token_without_the_read_scope_is_refused(api_server: RunningServer) -> None:
    with browser(api_server, make_token(api_server, unique("team"), "worker")) as client:
        assert_error(client.get("/dashboard"), 403, "forbidden")
        assert_error(client.get("/api/studies"), 403, "forbidden")


def test_mutating_routes_are_refused_to_all_but_project_less_admins(api_server: RunningServer) -> None:
    project = unique("team")
    study_id, name = project_study(api_server, project)
    with api_server.client() as admin:
        number = admin.post(f"/v1/studies/{study_id}/trials").json()["number"]
    trial_id = _trial_id(api_server, study_id, number)
    writers = [make_token(api_server, project, scope) for scope in ("read", "write", "admin")]
    for token in writers:
        with browser(api_server, token) as client:
            attempts = [
                client.post(f"/api/studies/{study_id}/rename", json={"study_name": unique()}),
                client.delete(f"/api/studies/{study_id}"),
                client.put(f"/api/studies/{study_id}/note", json={"version": 1, "body": "defaced"}),
                client.post(f"/api/trials/{trial_id}/tell", json={"state": "fail"}),
                client.post("/api/studies", json={"study_name": unique(), "directions": ["minimize"]}),
            ]
            for refused in attempts:
                assert_error(refused, 403, "forbidden")
            # The schema migration and the SQL profiler are never forwarded, not even to admins.
            assert_error(client.post("/incompatible-rdb-schema"), 404, "not_found")
    with browser(api_server, ADMIN_TOKEN) as client:
        assert_error(client.post("/incompatible-rdb-schema"), 404, "not_found")
        assert_error(client.get("/sql-profiler"), 404, "not_found")
        detail = client.get(f"/api/studies/{study_id}").json()
        # A project-less admin sees every project, so the name Optuna knows (it keeps names unique).
        assert detail["name"] == f"{project}/{name}" and detail["note"] == {"version": 0, "body": ""}
        assert [t["state"] for t in detail["trials"]] == ["Running"]
    with api_server.client() as admin:
        study = admin.get(f"/v1/studies/{study_id}").json()
        assert study["name"] == name and study["progress"]["running"] == 1


def test_a_project_less_admin_may_write_a_note_from_the_dashboards_own_pages(
    api_server: RunningServer,
) -> None:
    study_id, _ = project_study(api_server, unique("team"))
    note = f"/api/studies/{study_id}/note"
    with browser(api_server, ADMIN_TOKEN) as client:
        # Another site's page in the admin's browser: the browser would add the credentials itself.
        forged = client.put(
            note, json={"version": 1, "body": "forged"}, headers={"Origin": "http://evil.test"}
        )
        assert_error(forged, 403, "forbidden")
        own = {"Origin": api_server.base_url}
        saved = client.put(note, json={"version": 1, "body": "looks good"}, headers=own)
        assert saved.status_code == 204, saved.text
        assert client.get(f"/api/studies/{study_id}").json()["note"] == {"version": 1, "body": "looks good"}
        again = client.put(note, json={"version": 2, "body": "from a script"})  # no Origin: not a browser
        assert again.status_code == 204, again.text


def test_hps_routes_keep_their_own_errors(api_server: RunningServer) -> None:
    with api_server.client() as client:
        body = assert_error(client.get("/v1/nope"), 404, "not_found")
        assert body["detail"] == "no route GET /v1/nope"
        assert_error(client.get("/nope"), 404, "not_found")
        # The dashboard answers only what no hps route matched: 405s and slash redirects stay.
        assert_error(client.delete("/v1/studies"), 405, "method_not_allowed")
        redirect = client.get("/v1/studies/", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"].endswith("/v1/studies")
    assert_error(httpx.get(api_server.base_url + "/v1/studies", timeout=30.0), 401, "unauthenticated")


def _trial_id(server: RunningServer, study_id: int, number: int) -> int:
    """Optuna's trial id of a trial, as the dashboard knows it."""
    with browser(server, ADMIN_TOKEN) as client:
        trials = client.get(f"/api/studies/{study_id}").json()["trials"]
    return int(next(t["trial_id"] for t in trials if t["number"] == number))


def test_the_project_storage_hides_other_projects_and_writes_nothing(api_server: RunningServer) -> None:
    ours, theirs = unique("team"), unique("team")
    our_id, our_name = project_study(api_server, ours)
    their_id, their_name = project_study(api_server, theirs)
    with api_server.client() as admin:
        number = admin.post(f"/v1/studies/{their_id}/trials").json()["number"]
    their_trial = _trial_id(api_server, their_id, number)
    db = Database(api_server.database_url)
    backend = RDBStorage(api_server.database_url, skip_table_creation=True)
    try:
        storage = ProjectStorage(backend, ProjectStudies(db, ours))
        assert [s.study_name for s in storage.get_all_studies()] == [our_name]
        assert storage.get_study_id_from_name(our_name) == our_id
        assert storage.get_all_trials(our_id) == []
        hidden = [
            lambda: storage.get_study_id_from_name(their_name),
            lambda: storage.get_study_name_from_id(their_id),
            lambda: storage.get_study_directions(their_id),
            lambda: storage.get_study_system_attrs(their_id),
            lambda: storage.get_all_trials(their_id),
            lambda: storage.get_n_trials(their_id),
            lambda: storage.get_trial(their_trial),
            lambda: storage.get_trial_params(their_trial),
            lambda: optuna.load_study(study_name=their_name, storage=storage),
        ]
        for read in hidden:
            with pytest.raises(KeyError):
                read()
        with pytest.raises(Forbidden):
            storage.set_study_system_attr(our_id, "note", "x")
        with pytest.raises(Forbidden):
            storage.delete_study(our_id)
        with pytest.raises(Forbidden):
            storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], unique())
    finally:
        backend.engine.dispose()
        db.dispose()


def test_admin_changes_that_would_bypass_hps_are_refused_and_deleting_goes_through_hps(
    api_server: RunningServer,
) -> None:
    study_id, name = project_study(api_server, unique("team"))
    with browser(api_server, ADMIN_TOKEN) as client:
        for response in (
            client.post(f"/api/studies/{study_id}/rename", json={"study_name": unique()}),
            client.post("/api/studies", json={"study_name": unique(), "directions": ["minimize"]}),
            client.post("/api/trials/1/tell", json={"state": "complete", "values": [1.0]}),
        ):
            assert_error(response, 403, "forbidden")
        assert client.delete(f"/api/studies/{study_id}").status_code == 204
    with api_server.client() as hps:
        assert_error(hps.get(f"/v1/studies/{study_id}"), 404, "study_not_found")
    assert name not in optuna.get_all_study_names(storage=api_server.database_url)
