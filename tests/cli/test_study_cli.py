"""``hps study …`` against a real server over real HTTP: JSON output parsed and checked, tables read,
exit codes as documented in hps.cli.common."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.api import unique
from harness.cli import Hps
from harness.external import external_spec
from harness.ports import free_port
from harness.servers import ADMIN_TOKEN, RunningServer
from hps.cli.common import (
    EXIT_API_ERROR,
    EXIT_CONFLICT,
    EXIT_NOT_ALLOWED,
    EXIT_NOT_FOUND,
    EXIT_STUDY_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from hps.client.http import HpsClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_create_reads_the_yaml_and_json_examples_and_stdin(hps: Hps, tmp_path: Path) -> None:
    made = hps("study", "create", "-f", str(EXAMPLES / "study.yaml"), "--name", unique("yaml"), "-o", "json")
    assert made.exit_code == 0, made.stderr
    study = json.loads(made.stdout)
    assert study["state"] == "running" and study["metric"] == "val_accuracy"
    assert study["spec"]["task"]["name"] == "digits"
    assert {"optimizer", "lr", "beta2"} <= set(study["spec"]["search_space"]["params"])

    made = hps("study", "create", "-f", str(EXAMPLES / "study.json"), "--name", unique("json"), "-o", "json")
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["direction"] == "minimize"

    name = unique("stdin")
    made = hps("study", "create", "-f", "-", input=yaml.safe_dump(external_spec(name)))
    assert made.exit_code == 0, made.stderr
    assert name in made.stdout and "external" in made.stdout  # the table names a study without a task


def test_list_show_trials_and_best_of_a_driven_study(hps: Hps, server: RunningServer, tmp_path: Path) -> None:
    name = unique("driven")
    with HpsClient(server.base_url, ADMIN_TOKEN) as client:
        study = client.create_study(external_spec(name, n_trials=3))
        for value, ending in ((0.7, "complete"), (0.9, "complete"), (None, "pruned")):
            with client.run_trial(name) as trial:
                trial.report(0, 0.5)
                if ending == "pruned":
                    trial.prune("test prune")
                assert value is not None
                trial.complete(value)

    listed = json.loads(hps("study", "list", "-o", "json").stdout)
    mine = next(s for s in listed if s["name"] == name)
    assert mine["id"] == study.id and mine["state"] == "completed"
    assert name in hps("study", "list", "--state", "completed").stdout
    assert name not in hps("study", "list", "--state", "running").stdout

    shown = json.loads(hps("study", "show", name, "-o", "json").stdout)
    assert shown["id"] == study.id and shown["progress"]["complete"] == 2 and shown["progress"]["pruned"] == 1
    table = hps("study", "show", str(study.id)).stdout
    assert name in table and "completed" in table and "best trial" in table

    trials = json.loads(hps("study", "trials", name, "-o", "json").stdout)
    assert [t["state"] for t in trials] == ["complete", "complete", "pruned"]
    assert trials[2]["reason"] == "test prune" and trials[0]["intermediate_values"] == [
        {"step": 0, "value": 0.5}
    ]
    pruned = json.loads(hps("study", "trials", name, "--state", "pruned", "-o", "json").stdout)
    assert [t["number"] for t in pruned] == [2]
    assert "test prune" in hps("study", "trials", name).stdout

    best = json.loads(hps("study", "best", name, "-o", "json").stdout)
    assert best["number"] == 1 and best["value"] == pytest.approx(0.9)
    assert "0.9" in hps("study", "best", name).stdout


def test_exit_codes_a_script_can_rely_on(hps: Hps, server: RunningServer, tmp_path: Path) -> None:
    missing = hps("study", "show", unique("missing"))
    assert missing.exit_code == EXIT_NOT_FOUND and "no study named" in missing.stderr
    assert hps("study", "show", "999999").exit_code == EXIT_NOT_FOUND

    name = unique("fresh")
    assert hps("study", "create", "-f", "-", input=json.dumps(external_spec(name))).exit_code == 0
    no_best = hps("study", "best", name)
    assert no_best.exit_code == EXIT_NOT_FOUND and "no complete trial" in no_best.stderr
    taken = hps("study", "create", "-f", "-", input=json.dumps(external_spec(name)))
    assert taken.exit_code == EXIT_CONFLICT and "name_taken" in taken.stderr

    invalid = external_spec(unique("bad"))
    invalid["budget"] = {"n_trials": -1}
    refused = hps("study", "create", "-f", "-", input=json.dumps(invalid))
    assert refused.exit_code == EXIT_API_ERROR and "budget.n_trials" in refused.stderr, refused.stderr

    unreadable = hps("study", "create", "-f", str(tmp_path / "nowhere.yaml"))
    assert unreadable.exit_code == EXIT_USAGE and "cannot read" in unreadable.stderr
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    assert hps("study", "create", "-f", str(tmp_path / "broken.yaml")).exit_code == EXIT_USAGE
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert hps("study", "create", "-f", str(tmp_path / "list.yaml")).exit_code == EXIT_USAGE

    assert hps("study", "list", token="not-a-token").exit_code == EXIT_NOT_ALLOWED
    nobody = free_port()
    for command in (["list"], ["show", name], ["watch", name, "--once"]):
        gone = hps("study", *command, "--api", f"http://127.0.0.1:{nobody}")
        assert gone.exit_code == EXIT_UNAVAILABLE and "unreachable" in gone.stderr
        assert f"no answer from http://127.0.0.1:{nobody}" in gone.stderr  # the URL it tried


def test_the_console_script_reads_stdin_and_exits_with_the_codes(hps: Hps) -> None:
    name = unique("process")
    made = hps.subprocess(
        "study", "create", "-f", "-", "-o", "json", input=yaml.safe_dump(external_spec(name))
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["name"] == name
    missing = hps.subprocess("study", "show", unique("missing"), "-o", "json")
    assert missing.returncode == EXIT_NOT_FOUND and missing.stdout == ""
    assert "404 study_not_found" in missing.stderr


def test_cancel_then_delete_only_when_confirmed(hps: Hps) -> None:
    name = unique("doomed")
    assert hps("study", "create", "-f", "-", input=json.dumps(external_spec(name))).exit_code == 0
    cancelled = hps("study", "cancel", name, "-o", "json")
    assert cancelled.exit_code == 0 and json.loads(cancelled.stdout)["state"] == "cancelled"

    unanswered = hps("study", "delete", name)  # no input: nobody said yes
    assert unanswered.exit_code == EXIT_USAGE and "not deleted" in unanswered.stderr
    declined = hps("study", "delete", name, input="n\n")
    assert declined.exit_code == EXIT_USAGE
    assert hps("study", "show", name).exit_code == 0

    confirmed = hps("study", "delete", name, input="y\n")
    assert confirmed.exit_code == 0 and f"({name}) deleted" in confirmed.stdout
    assert hps("study", "show", name).exit_code == EXIT_NOT_FOUND
    assert hps("study", "delete", name, "--yes").exit_code == EXIT_NOT_FOUND

    other = unique("doomed")
    assert hps("study", "create", "-f", "-", input=json.dumps(external_spec(other))).exit_code == 0
    deleted = hps("study", "delete", other, "--yes", "-o", "json")
    assert deleted.exit_code == 0 and json.loads(deleted.stdout) == {
        "id": json.loads(deleted.stdout)["id"],
        "name": other,
        "deleted": True,
    }


def test_watch_once_and_on_an_ended_study(hps: Hps, server: RunningServer) -> None:
    name = unique("glance")
    with HpsClient(server.base_url, ADMIN_TOKEN) as client:
        client.create_study(external_spec(name, n_trials=2))
        with client.run_trial(name) as trial:
            trial.report(3, 0.25)
            once = hps("study", "watch", name, "--once", "-o", "json")
            assert once.exit_code == 0
            snapshot = json.loads(once.stdout)
            assert snapshot["state"] == "running" and (snapshot["done"], snapshot["total"]) == (0, 2)
            assert snapshot["running"] == [
                {"number": trial.number, "step": 3, "value": 0.25, "params": trial.params}
            ]
            view = hps("study", "watch", name, "--once")
            assert view.exit_code == 0 and "0/2 trials" in view.stdout and "running trials (1)" in view.stdout
            trial.complete(0.5)
        client.cancel_study(client.find_study(name).id)
    ended = hps("study", "watch", name)
    assert ended.exit_code == EXIT_STUDY_FAILED and "cancelled" in ended.stdout
    ended_json = hps("study", "watch", name, "-o", "json")
    assert ended_json.exit_code == EXIT_STUDY_FAILED
    assert json.loads(ended_json.stdout)["state"] == "cancelled"


def test_an_admin_creates_a_study_in_another_project(hps: Hps, server: RunningServer) -> None:
    project, name = unique("team"), unique("elsewhere")
    made = hps(
        "study",
        "create",
        "-f",
        "-",
        "--project",
        project,
        "-o",
        "json",
        input=json.dumps(external_spec(name)),
    )
    assert made.exit_code == 0, made.stderr
    with server.client() as admin:
        tokens = {
            home: admin.post(
                "/v1/tokens", json={"name": unique("tok"), "scopes": ["read"], "project": home}
            ).json()["token"]
            for home in (project, "default")
        }
    seen = hps("study", "show", name, "-o", "json", token=tokens[project])
    assert seen.exit_code == 0, seen.stderr
    assert json.loads(seen.stdout)["id"] == json.loads(made.stdout)["id"]
    hidden = hps("study", "show", name, token=tokens["default"])
    assert hidden.exit_code == EXIT_NOT_FOUND, hidden.stdout
    bad = hps(
        "study", "create", "-f", "-", "--project", "no spaces", input=json.dumps(external_spec(unique("x")))
    )
    assert bad.exit_code == EXIT_API_ERROR and "project" in bad.stderr


def test_help_is_plain_text_a_person_can_read() -> None:
    for command in (
        ["--help"],
        ["study", "create", "--help"],
        ["schedule", "pause", "--help"],
        ["worker", "--help"],
    ):
        argv = [sys.executable, "-m", "hps.cli", *command]
        shown = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert shown.returncode == 0, shown.stderr
        assert "<bool>" not in shown.stdout and "│" not in shown.stdout  # no type tags on flags, no boxes
        assert all("          " * 4 not in line for line in shown.stdout.splitlines()), shown.stdout
