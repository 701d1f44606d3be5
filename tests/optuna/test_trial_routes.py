"""hps's own trial routes (``GET /v1/studies/{id}/trials``, ``/trials/{number}``, ``/best``) on a study an
Optuna program made through ``HpsStorage``: its trials live in Optuna's rows only, and these routes serve
them with the same paging, state filter and project scoping as an hps study's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import optuna
import pytest
from optuna.trial import TrialState

from harness.servers import RunningServer
from hps.optuna import HpsStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)
NewToken = Callable[..., tuple[str, str]]


def objective(trial: optuna.Trial) -> float:
    """Trials 1 and 3 are pruned after one report, trial 5 fails, the others complete."""
    x = trial.suggest_float("x", 0.0, 10.0)
    trial.suggest_categorical("kind", ["a", "b"])
    trial.report(x + 1.0, 0)
    if trial.number in (1, 3):
        raise optuna.TrialPruned()
    if trial.number == 5:
        raise ValueError("this trial fails")
    trial.set_user_attr("note", f"trial {trial.number}")
    return x


def make_study(storage: HpsStorage, client: httpx.Client, name: str) -> tuple[optuna.Study, int]:
    sampler = optuna.samplers.RandomSampler(seed=3)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler)
    study.optimize(objective, n_trials=6, catch=(ValueError,))
    listed = client.get("/v1/studies", params={"name": name}).json()["items"]
    return study, int(listed[0]["id"])


def all_pages(client: httpx.Client, study_id: int, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of the listing, following the cursor."""
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = client.get(f"/v1/studies/{study_id}/trials", params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_the_trial_routes_serve_an_optuna_clients_trials(
    optuna_server: RunningServer, project_storage: tuple[str, str, HpsStorage], new_token: NewToken
) -> None:
    _, token, storage = project_storage
    with optuna_server.client(token) as client:
        study, study_id = make_study(storage, client, "routes")
        states = [t.state for t in study.trials]
        assert states == [TrialState.COMPLETE, TrialState.PRUNED] * 2 + [TrialState.COMPLETE, TrialState.FAIL]

        pages = all_pages(client, study_id, limit=2)
        assert [[t["number"] for t in page] for page in pages] == [[0, 1], [2, 3], [4, 5]]
        listed = [t for page in pages for t in page]
        assert [t["state"] for t in listed] == ["complete", "pruned"] * 2 + ["complete", "failed"]
        for shown, trial in zip(listed, study.trials, strict=True):
            assert shown["params"] == trial.params
            assert shown["intermediate_values"] == [{"step": 0, "value": trial.params["x"] + 1.0}]
            assert shown["attempt"] == 1 and shown["started_at"] is not None
        assert listed[0]["value"] == study.trials[0].value
        assert listed[0]["attrs"] == {"note": "trial 0"}
        assert listed[5]["value"] is None and listed[5]["finished_at"] is not None

        pruned = all_pages(client, study_id, state="pruned")
        assert [[t["number"] for t in page] for page in pruned] == [[1, 3]]
        complete = all_pages(client, study_id, state="complete", limit=2)
        assert [[t["number"] for t in page] for page in complete] == [[0, 2], [4]]
        assert all_pages(client, study_id, state="diverged") == [[]]
        assert all_pages(client, study_id, state="running") == [[]]

        one = client.get(f"/v1/studies/{study_id}/trials/2")
        assert one.status_code == 200 and one.json() == listed[2]
        missing = client.get(f"/v1/studies/{study_id}/trials/6")
        assert missing.status_code == 404 and missing.json()["error"] == "trial_not_found"

        best = client.get(f"/v1/studies/{study_id}/best")
        assert best.status_code == 200, best.text
        assert best.json()["number"] == study.best_trial.number
        assert best.json()["value"] == study.best_value

    # Another project's token: the study does not exist for it.
    _, other = new_token()
    with optuna_server.client(other) as client:
        for path in ("/trials", "/trials/0", "/best"):
            answer = client.get(f"/v1/studies/{study_id}{path}")
            assert answer.status_code == 404, path
            assert answer.json()["error"] in ("study_not_found", "not_found"), path


def test_best_waits_for_a_complete_trial_and_follows_the_first_objective(
    optuna_server: RunningServer, project_storage: tuple[str, str, HpsStorage]
) -> None:
    _, token, storage = project_storage
    with optuna_server.client(token) as client:
        waiting = optuna.create_study(study_name="none-complete", storage=storage)
        waiting.ask()  # a running trial, nothing complete
        study_id = client.get("/v1/studies", params={"name": "none-complete"}).json()["items"][0]["id"]
        answer = client.get(f"/v1/studies/{study_id}/best")
        assert answer.status_code == 404
        assert answer.json()["detail"] == f"study {study_id} has no complete trial yet"
        assert [t["state"] for t in all_pages(client, study_id)[0]] == ["running"]

        # Two objectives, the first maximised: best is the largest first value (the lowest number on a tie).
        pair = optuna.create_study(study_name="pair", storage=storage, directions=["maximize", "minimize"])
        for first, second in [(1.0, 5.0), (3.0, 9.0), (3.0, 1.0), (2.0, 0.0)]:
            trial = pair.ask()
            pair.tell(trial, [first, second])
        pair_id = client.get("/v1/studies", params={"name": "pair"}).json()["items"][0]["id"]
        best = client.get(f"/v1/studies/{pair_id}/best").json()
        assert best["number"] == 1 and best["value"] == 3.0


@pytest.mark.parametrize("path", ["/trials?cursor=bad!", "/trials?state=done", "/trials/-1"])
def test_bad_input_is_a_4xx(
    optuna_server: RunningServer, project_storage: tuple[str, str, HpsStorage], path: str
) -> None:
    _, token, storage = project_storage
    optuna.create_study(study_name="bad-input", storage=storage)
    with optuna_server.client(token) as client:
        study_id = client.get("/v1/studies", params={"name": "bad-input"}).json()["items"][0]["id"]
        assert client.get(f"/v1/studies/{study_id}{path}").status_code in (404, 422)


def test_the_storage_protocol_takes_what_its_schema_allows(
    optuna_server: RunningServer, project_storage: tuple[str, str, HpsStorage]
) -> None:
    """Found by the fuzzer: JSON Schema's integer includes 60.0, and a study name's "no /" rule is in the
    schema; a bool or a numeric string is still no integer."""
    _, token, storage = project_storage
    trial = optuna.create_study(study_name="schema", storage=storage).ask()
    with optuna_server.client(token) as client:
        base = f"/v1/optuna/trials/{trial._trial_id}"
        assert client.post(f"{base}/heartbeat", json={"grace_period_s": 60.0}).status_code == 204
        assert client.post(f"{base}/intermediate-values", json={"step": 2.0, "value": 1.5}).status_code == 204
        for bad in (True, "60", 60.5):
            refused = client.post(f"{base}/heartbeat", json={"grace_period_s": bad})
            assert refused.status_code == 422 and refused.json()["field"] == "grace_period_s", bad
            refused = client.post(f"{base}/intermediate-values", json={"step": bad, "value": 1.0})
            assert refused.status_code == 422 and refused.json()["field"] == "step", bad
        slash = client.post("/v1/optuna/studies", json={"study_name": "a/b", "directions": ["MINIMIZE"]})
        assert slash.status_code == 422 and "'/'" in slash.json()["detail"]
        schema = client.get("/openapi.json").json()["components"]["schemas"]["NewStudy"]
        assert schema["properties"]["study_name"]["pattern"] == "^[^/]*$"
    # Another storage object (the program's own holds its running trial's copy) reads what was written.
    fresh = HpsStorage(optuna_server.base_url, token=token)
    assert fresh.get_trial(trial._trial_id).intermediate_values == {2: 1.5}
