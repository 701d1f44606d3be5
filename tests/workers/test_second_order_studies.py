"""L-BFGS and Newton studies through real `hps serve` + `hps worker` processes (SQLite and PostgreSQL):
trials complete on `quadratic` and on `digits` (its linear-probe model), cost in function evaluations reaches
the trial and the report, `newton` on a model too large for its Hessian is a 422 naming the limit and the
size, and the `second-order` preset fits every task by dropping newton where it cannot run."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml

from harness.api import assert_error, unique
from harness.processes import ManagedProcess
from harness.servers import ADMIN_TOKEN, RunningServer
from hps.report.html import render_report
from hps.wire.reports import StudyReport

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SECOND_ORDER = {
    "params": {
        "optimizer": {"type": "categorical", "choices": ["lbfgs", "newton"]},
        "line_search_fn": {
            "type": "categorical",
            "choices": ["strong_wolfe"],
            "when": {"optimizer": ["lbfgs"]},
        },
    },
    "starts": [{"optimizer": "newton"}, {"optimizer": "lbfgs", "line_search_fn": "strong_wolfe"}],
}


def _run(server: RunningServer, task: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """A 2-trial study (Newton first, then L-BFGS) run to its end by one worker; the study, its trials and
    its report."""
    body = {
        "name": unique(),
        "task": task,
        "search_space": SECOND_ORDER,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "budget": {"n_trials": 2},
    }
    with server.client() as client:
        created = client.post("/v1/studies", json=body)
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]
    args = [sys.executable, "-m", "hps.cli", "worker", "--api", server.base_url, "--once", "--threads", "1"]
    args += ["--data-dir", str(server.data_dir), "--worker-id", f"second-order-{time.monotonic_ns()}"]
    worker = ManagedProcess(
        args, {"HPS_TOKEN": ADMIN_TOKEN}, server.data_dir / f"w-{time.monotonic_ns()}.log"
    )
    try:
        assert worker.wait(timeout=timeout) == 0, worker.output()
    finally:
        worker.stop()
    with server.client() as client:
        study = client.get(f"/v1/studies/{study_id}").json()
        study["trials"] = client.get(f"/v1/studies/{study_id}/trials").json()["items"]
        study["report"] = client.get(f"/v1/studies/{study_id}/report").json()
    return dict(study)


def test_lbfgs_and_newton_trials_complete_on_quadratic(api_server: RunningServer) -> None:
    study = _run(api_server, {"name": "quadratic", "epochs": 2})
    assert study["state"] == "completed", study
    newton, lbfgs = sorted(study["trials"], key=lambda t: t["number"])
    assert (newton["params"]["optimizer"], lbfgs["params"]["optimizer"]) == ("newton", "lbfgs")
    assert newton["state"] == lbfgs["state"] == "complete"
    # Undamped Newton: the minimum after its first step, f(3) = 0.
    assert newton["value"] == 0.0 and newton["attrs"]["learning_curve"][1]["val_loss"] == 0.0
    assert lbfgs["value"] < 1e-9
    for trial in (newton, lbfgs):
        attrs = trial["attrs"]
        assert attrs["function_evals"] >= attrs["steps"] == 2 * 20  # quadratic: 20 steps an epoch
        assert attrs["batch_size"] == "full" and attrs["convergence_wall_time_s"] > 0
    rows = {row["optimizer"]: row for row in study["report"]["optimizers"]}
    assert rows["newton"]["median_function_evals"] == newton["attrs"]["function_evals"] == 2 * 40
    assert rows["lbfgs"]["median_steps"] == 40 and rows["lbfgs"]["median_function_evals"] > 40
    html = render_report(StudyReport.model_validate(study["report"]))
    assert "<th>function evals (median)</th>" in html and "<th>time to converge, s (median)</th>" in html
    assert "newton</td><td>1</td><td>1</td><td>0</td>" in html and "<td>80</td>" in html


def test_the_optimizer_classes_examples_are_studies_the_service_takes(api_server: RunningServer) -> None:
    with api_server.client() as client:
        for name in ("optimizer_classes.yaml", "optimizer_classes_quadratic.yaml"):
            body = yaml.safe_load((EXAMPLES / name).read_text())
            created = client.post("/v1/studies", json={**body, "name": unique()})
            assert created.status_code == 201, created.text
            space = created.json()["spec"]["search_space"]
            assert [s["optimizer"] for s in space["starts"]] == ["gd", "sgd", "adam", "lbfgs", "newton"]


def test_lbfgs_and_newton_trials_complete_on_digits(api_server: RunningServer) -> None:
    study = _run(api_server, {"name": "digits", "model": "digits-cnn-probe", "epochs": 1}, timeout=600)
    assert study["state"] == "completed", study
    by_optimizer = {t["params"]["optimizer"]: t for t in study["trials"]}
    for name in ("newton", "lbfgs"):
        trial = by_optimizer[name]
        assert trial["state"] == "complete", trial
        assert trial["value"] > 0.9, trial  # the frozen features separate digits 5-9 well
        assert trial["attrs"]["steps"] == 1  # one full-batch step an epoch
        assert isinstance(trial["attrs"]["generalization_gap"], float)
    # A Newton step costs a gradient and one Hessian column per trainable param of the head.
    assert by_optimizer["newton"]["attrs"]["function_evals"] == 1 + 1285


def test_newton_on_a_model_too_large_for_its_hessian_is_422(api_server: RunningServer) -> None:
    newton = {"params": {"optimizer": {"type": "categorical", "choices": ["adamw", "newton"]}}}
    with api_server.client() as client:
        for task, size in (({"name": "text-classification"}, "22,713,986"), ({"name": "digits"}, "20,101")):
            body = {"name": unique(), "task": task, "search_space": newton}
            error = assert_error(
                client.post("/v1/studies", json=body), 422, "invalid", "search_space.params.optimizer"
            )
            assert (
                size in error["detail"]
                and "5,000" in error["detail"]
                and "max_newton_params" in error["detail"]
            )
        fits = {
            "name": unique(),
            "task": {"name": "digits", "model": "digits-cnn-probe"},
            "search_space": newton,
        }
        assert client.post("/v1/studies", json=fits).status_code == 201


def test_the_second_order_preset_keeps_newton_where_the_model_fits(api_server: RunningServer) -> None:
    with api_server.client() as client:
        spaces = {}
        for name, task in (
            ("text", {"name": "text-classification"}),
            ("probe", {"name": "digits", "model": "digits-cnn-probe"}),
            ("quadratic", {"name": "quadratic"}),
        ):
            body = {"name": unique(), "task": task, "search_space": {"preset": "second-order"}}
            created = client.post("/v1/studies", json=body)
            assert created.status_code == 201, created.text
            spaces[name] = created.json()["spec"]["search_space"]
        tasks = {t["name"]: t for t in client.get("/v1/tasks").json()["items"]}
        models = {m["name"]: m for m in client.get("/v1/models").json()["items"]}
    text = spaces["text"]
    assert text["params"]["optimizer"]["choices"] == ["lbfgs"] and "damping" not in text["params"]
    # Not fitted to the transformer family's first-order rates: lr scales a second-order step.
    assert (text["params"]["lr"]["low"], text["params"]["lr"]["high"]) == (0.01, 1.0)
    assert [start["optimizer"] for start in text["starts"]] == ["lbfgs"]
    for name in ("probe", "quadratic"):
        assert spaces[name]["params"]["optimizer"]["choices"] == ["lbfgs", "newton"]
        assert "damping" in spaces[name]["params"]
    assert {"gd", "lbfgs", "newton"} <= set(tasks["digits"]["optimizers"])
    assert tasks["digits"]["max_newton_params"] == 5000
    assert (models["digits-cnn"]["trainable_params"], models["digits-cnn-probe"]["trainable_params"]) == (
        20101,
        1285,
    )


def test_an_lr_range_test_leaves_second_order_optimizers_their_range(api_server: RunningServer) -> None:
    space = {
        "params": {
            "optimizer": {"type": "categorical", "choices": ["adamw", "lbfgs", "newton"]},
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
        }
    }
    body = {
        "name": unique(),
        "task": {"name": "quadratic"},
        "search_space": space,
        "lr_range_test": {"steps": 20},
    }
    with api_server.client() as client:
        created = client.post("/v1/studies", json=body)
        assert created.status_code == 201, created.text
        tests = client.get(f"/v1/studies/{created.json()['id']}/lr-range-tests").json()
    # Only adamw is tested: lbfgs and newton scale a step they compute themselves.
    assert [test["optimizer"] for test in tests["items"]] == ["adamw"]
