"""Real Optuna programs, unchanged but for ``storage=HpsStorage(...)``, against a real hps server: a pruned
define-by-run study with ``n_jobs``, a multi-objective NSGA-II study, and the studies as hps shows them."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.trial import TrialState

from harness.servers import RunningServer
from hps.optuna import HpsStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)
NewToken = Callable[..., tuple[str, str]]


def pruned_objective(trial: optuna.Trial) -> float:
    """Define-by-run with a report per step; "bad" trials are ten times worse at every step."""
    kind = trial.suggest_categorical("kind", ["good", "bad"]) if trial.number % 2 == 0 else "bad"
    if trial.number % 2:
        trial.set_user_attr("forced", True)
    x = trial.suggest_float("x", 0.0, 1.0)
    scale = 1.0 if kind == "good" else 10.0
    value = 0.0
    for step in range(4):
        value = scale * (10.0 + x - step)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def two_objectives(trial: optuna.Trial) -> tuple[float, float]:
    """Two competing objectives of two params."""
    x = trial.suggest_float("x", 0.0, 5.0)
    y = trial.suggest_int("y", 0, 3)
    return x**2 + y, (5.0 - x) ** 2 - y


def test_a_pruned_define_by_run_study_with_n_jobs(
    optuna_server: RunningServer, project_storage: tuple[str, str, HpsStorage]
) -> None:
    _, token, storage = project_storage
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    study = optuna.create_study(study_name="pruned", storage=storage, pruner=pruner)
    study.optimize(pruned_objective, n_trials=12, n_jobs=2)

    states = [t.state for t in study.trials]
    assert len(states) == 12
    assert states.count(TrialState.PRUNED) >= 2  # the odd trials are ten times worse at every step
    # Define-by-run: only the even trials have "kind".
    assert all(("kind" in t.params) == (t.number % 2 == 0) for t in study.trials)
    assert study.best_value < 20

    # Another process (here: another storage object) reads the same study from hps.
    again = optuna.load_study(study_name="pruned", storage=HpsStorage(optuna_server.base_url, token=token))
    assert [t.state for t in again.trials] == states
    assert again.trials[0].intermediate_values == study.trials[0].intermediate_values
    with optuna_server.client(token) as client:
        listed = client.get("/v1/studies", params={"name": "pruned"}).json()["items"]
        assert len(listed) == 1
        progress = listed[0]["progress"]
        assert progress["pruned"] == states.count(TrialState.PRUNED)
        assert progress["complete"] == states.count(TrialState.COMPLETE)
        assert listed[0]["spec"]["kind"] == "optuna"
        study_id = listed[0]["id"]
        refused = client.post(f"/v1/studies/{study_id}/trials")
        assert refused.status_code == 409
        assert refused.json()["error"] == "study_sampled_by_client"
        report = client.get(f"/v1/studies/{study_id}/report")
        assert report.status_code == 200
        # hps report reads the study's trials from Optuna's rows: one history point per complete trial.
        assert len(report.json()["history"]) == states.count(TrialState.COMPLETE)


def test_a_multi_objective_nsga2_study(
    optuna_server: RunningServer, project_storage: tuple[str, str, HpsStorage]
) -> None:
    _, token, storage = project_storage
    sampler = optuna.samplers.NSGAIISampler(population_size=4, seed=3)
    study = optuna.create_study(directions=["minimize", "maximize"], storage=storage, sampler=sampler)
    study.optimize(two_objectives, n_trials=10)

    assert study.directions == [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MAXIMIZE]
    assert len(study.trials) == 10
    assert all(len(t.values) == 2 for t in study.trials)
    front = study.best_trials
    assert front
    # Pareto: no front trial is dominated by any trial.
    for best in front:
        assert not any(
            t.values[0] <= best.values[0] and t.values[1] >= best.values[1] and t.values != best.values
            for t in study.trials
        )
    # hps's report of a multi-objective study: its trials, no importances (they rank one objective).
    with optuna_server.client(token) as client:
        listed = client.get("/v1/studies", params={"name": study.study_name}).json()["items"]
        report = client.get(f"/v1/studies/{listed[0]['id']}/report")
        assert report.status_code == 200, report.text
    # NSGA-II keeps its generations in system attrs, through the storage.
    assert any(key.startswith("nsga") or "generation" in key for key in study.trials[-1].system_attrs)


def test_enqueued_trials_and_attrs_round_trip(project_storage: tuple[str, str, HpsStorage]) -> None:
    _, _, storage = project_storage
    study = optuna.create_study(storage=storage, study_name="queued")
    study.set_user_attr("owner", "team-a")
    study.enqueue_trial({"kind": "good", "x": 0.25})
    study.optimize(pruned_objective, n_trials=2)
    first = study.trials[0]
    assert first.params == {"kind": "good", "x": 0.25}
    assert study.user_attrs == {"owner": "team-a"}
    assert optuna.load_study(study_name="queued", storage=storage).best_trial.number in (0, 1)


def test_other_projects_and_scopes(optuna_server: RunningServer, new_token: NewToken) -> None:
    _, writer = new_token()
    _, other = new_token()
    _, reader = new_token(scopes=("read",))
    mine = HpsStorage(optuna_server.base_url, token=writer)
    study_id = mine.create_new_study([optuna.study.StudyDirection.MINIMIZE], "private")
    theirs = HpsStorage(optuna_server.base_url, token=other)
    with pytest.raises(KeyError):
        theirs.get_study_name_from_id(study_id)
    with pytest.raises(KeyError):
        theirs.get_study_id_from_name("private")
    with pytest.raises(PermissionError, match="scope"):
        HpsStorage(optuna_server.base_url, token=reader).create_new_study(
            [optuna.study.StudyDirection.MINIMIZE]
        )


def test_a_study_hps_samples_is_read_only_to_optuna_clients(
    optuna_server: RunningServer, new_token: NewToken
) -> None:
    _, token = new_token()
    body = {"name": "hps-own", "search_space": {"preset": "adam"}, "budget": {"n_trials": 2}}
    with optuna_server.client(token) as client:
        study_id = client.post("/v1/studies", json=body).json()["id"]
        number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
        client.post(
            f"/v1/studies/{study_id}/trials/{number}/complete", json={"state": "complete", "value": 1.0}
        )
    study = optuna.load_study(study_name="hps-own", storage=HpsStorage(optuna_server.base_url, token=token))
    assert [t.value for t in study.trials] == [1.0]
    with pytest.raises(RuntimeError, match="sampled by hps"):
        study.ask()


def test_bad_input_is_a_4xx_naming_the_field(optuna_server: RunningServer, new_token: NewToken) -> None:
    _, token = new_token()
    with optuna_server.client(token) as client:
        bad = client.post("/v1/optuna/studies", json={"study_name": "x", "directions": ["SIDEWAYS"]})
        assert bad.status_code == 422 and bad.json()["field"].startswith("directions")
        made = client.post("/v1/optuna/studies", json={"study_name": "x", "directions": ["MINIMIZE"]})
        study_id = made.json()["study_id"]
        trial = client.post(f"/v1/optuna/studies/{study_id}/trials", json={}).json()
        param = {"name": "p", "value": 0.5, "distribution_json": "not json"}
        bad = client.post(f"/v1/optuna/trials/{trial['trial_id']}/params", json=param)
        assert bad.status_code == 422 and bad.json()["field"] == "distribution_json"
        bad = client.post(f"/v1/optuna/studies/{study_id}/user-attrs", json={"key": "k", "value_json": "{"})
        assert bad.status_code == 422 and "value_json" in bad.json()["field"]
