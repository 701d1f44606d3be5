"""``hps schedule …`` against real servers (SQLite and PostgreSQL), from the shipped example file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.api import unique
from harness.cli import Hps
from harness.servers import RunningServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "schedule.yaml"


def example_file(tmp_path: Path, **changes: object) -> tuple[str, Path]:
    document = yaml.safe_load(EXAMPLE.read_text())
    document.update(name=unique("nightly"), **changes)
    path = tmp_path / "schedule.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(document["name"]), path


def test_create_list_show_pause_resume_run_delete(api_server: RunningServer, tmp_path: Path) -> None:
    hps = Hps(api_server.base_url)
    name, path = example_file(tmp_path)
    created = hps("schedule", "create", "-f", str(path), "-o", "json")
    assert created.exit_code == 0, created.stderr
    schedule = json.loads(created.stdout)
    assert schedule["name"] == name and schedule["timezone"] == "Europe/Berlin"
    assert (
        schedule["template"]["task"]["name"] == "digits" and schedule["template"]["metric"] == "val_accuracy"
    )
    listed = hps("schedule", "list")
    assert listed.exit_code == 0 and name in listed.stdout and "30 2 * * *" in listed.stdout
    shown = hps("schedule", "show", name, "-o", "json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["incumbent"] is None
    table = hps("schedule", "show", str(schedule["id"]))
    assert table.exit_code == 0 and "incumbent: none yet" in table.stdout
    paused = hps("schedule", "pause", name).stdout
    assert "is paused: no run until it is resumed" in paused and "next run" not in paused
    assert "active" in hps("schedule", "resume", name).stdout
    ran = hps("schedule", "run", name, "-o", "json")
    assert ran.exit_code == 0, ran.stderr
    started = json.loads(ran.stdout)
    assert started["run"]["outcome"] == "started" and started["study"]["name"].startswith(name + "-")
    # concurrency: skip in the example, and the study just started still runs: a conflict, exit 5.
    busy = hps("schedule", "run", name)
    assert busy.exit_code == 5 and "schedule_busy" in busy.stderr
    runs_table = hps("schedule", "show", name)
    assert "manual" in runs_table.stdout and "started" in runs_table.stdout
    deleted = hps("schedule", "delete", name)
    assert deleted.exit_code == 0 and "deleted" in deleted.stdout
    assert hps("schedule", "show", name).exit_code == 4


def test_errors_exit_with_the_documented_codes(api_server: RunningServer, tmp_path: Path) -> None:
    hps = Hps(api_server.base_url)
    _, bad_cron = example_file(tmp_path, cron="30 2 * *")
    refused = hps("schedule", "create", "-f", str(bad_cron))
    assert refused.exit_code == 1 and "(field cron)" in refused.stderr and "5 fields" in refused.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed")
    assert hps("schedule", "create", "-f", str(broken)).exit_code == 2
    assert hps("schedule", "pause", "no-such-schedule").exit_code == 4
    assert hps("schedule", "list", token="wrong-token").exit_code == 6
