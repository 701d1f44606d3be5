"""``hps schedule …``: create, list, show, pause, resume, run and delete cron schedules over HTTP.

SCHEDULE is a schedule's id or its name. Every command takes ``--api``, ``--token`` and ``--output
table|json`` and exits with the codes documented in :mod:`hps.cli.common` (docs/schedules.md).
"""

from __future__ import annotations

import json
import sys
from itertools import islice
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hps.cli.common import (
    ApiOption,
    Output,
    OutputOption,
    TokenOption,
    connect,
    print_json,
    read_spec_file,
)
from hps.wire.schedules import ScheduleOut, ScheduleRunOut

schedule_app = typer.Typer(
    rich_markup_mode=None,
    help="Schedules: re-tune on a cron, warm-started from the last run; fetch the incumbent.",
    no_args_is_help=True,
)

ScheduleArgument = typer.Argument(..., help="The schedule's id or name.")
RECENT_RUNS = 10


def _console() -> Console:
    # Off a terminal, keep table lines whole (easier to read in logs and to grep).
    return Console(width=None if sys.stdout.isatty() else 160)


def _when(moment: object) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}Z"


def _schedules_table(schedules: list[ScheduleOut]) -> Table:
    table = Table("id", "name", "state", "cron", "timezone", "next run (UTC)", "incumbent")
    for s in schedules:
        best = f"{s.incumbent.metric}={s.incumbent.value:.6g}" if s.incumbent else "-"
        table.add_row(str(s.id), s.name, s.state, s.cron, s.timezone, _when(s.next_run_at), best)
    return table


def _runs_table(runs: list[ScheduleRunOut]) -> Table:
    table = Table("run", "slot (UTC)", "trigger", "outcome", "study", "seeded", "promotion", "detail")
    for r in runs:
        promotion = r.promotion.decision if r.promotion else "-"
        study = r.study_name or "-"
        table.add_row(
            str(r.id),
            _when(r.scheduled_for),
            r.trigger,
            r.outcome,
            study,
            str(r.seeded),
            promotion,
            r.detail or "",
        )
    return table


def _show(console: Console, schedule: ScheduleOut, runs: list[ScheduleRunOut]) -> None:
    console.print(f"schedule {schedule.id} {schedule.name} ({schedule.state})")
    console.print(f"  cron {schedule.cron!r} in {schedule.timezone}; next run {_when(schedule.next_run_at)}")
    console.print(f"  misfire {schedule.misfire}, concurrency {schedule.concurrency}")
    if schedule.warm_start:
        console.print(f"  warm start: best {schedule.warm_start.top_k} of {schedule.warm_start.source}")
    rule = "relative" if schedule.promotion.relative else "absolute"
    console.print(f"  promotion margin {schedule.promotion.margin:g} ({rule})")
    incumbent = schedule.incumbent
    if incumbent is None:
        console.print("  incumbent: none yet")
    else:
        console.print(
            f"  incumbent: {incumbent.metric}={incumbent.value:.6g} ({incumbent.direction}) from study "
            f"{incumbent.study_name} trial {incumbent.trial_number}"
        )
        console.print(f"  params: {json.dumps(incumbent.params)}")
    if runs:
        console.print(_runs_table(runs))


@schedule_app.command("create")
def create(
    file: Path = typer.Option(
        ..., "--file", "-f", help="The schedule: the POST /v1/schedules body as YAML or JSON ('-': stdin)."
    ),
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Create a schedule from a YAML or JSON file (examples/schedule.yaml)."""
    spec = read_spec_file(file)
    with connect(api, token) as hps:
        schedule = hps.create_schedule(spec)
    if output is Output.json:
        print_json(schedule)
    else:
        _show(_console(), schedule, [])


@schedule_app.command("list")
def list_(api: str = ApiOption, token: str = TokenOption, output: Output = OutputOption) -> None:
    """Every schedule this token's project has, newest first."""
    with connect(api, token) as hps:
        schedules = list(hps.schedules())
    if output is Output.json:
        print_json(schedules)
    else:
        _console().print(_schedules_table(schedules))


@schedule_app.command("show")
def show(
    schedule: str = ScheduleArgument,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """One schedule with its incumbent (table: and its latest runs)."""
    with connect(api, token) as hps:
        found = hps.find_schedule(schedule)
        runs = list(islice(hps.schedule_runs(found.id, page_size=RECENT_RUNS), RECENT_RUNS))
    if output is Output.json:
        print_json(found)
    else:
        _show(_console(), found, runs)


@schedule_app.command("pause")
def pause(
    schedule: str = ScheduleArgument,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Stop firing slots until resumed."""
    with connect(api, token) as hps:
        changed = hps.pause_schedule(hps.find_schedule(schedule).id)
    _print_state(changed, output)


@schedule_app.command("resume")
def resume(
    schedule: str = ScheduleArgument,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Fire again from the next slot (slots that passed while paused are not run)."""
    with connect(api, token) as hps:
        changed = hps.resume_schedule(hps.find_schedule(schedule).id)
    _print_state(changed, output)


@schedule_app.command("run")
def run(
    schedule: str = ScheduleArgument,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Start a run now, outside the cron; prints the run and its study."""
    with connect(api, token) as hps:
        started = hps.run_schedule(hps.find_schedule(schedule).id)
    if output is Output.json:
        print_json(started)
        return
    run = started.run
    where = f"study {run.study_id} {run.study_name}" if run.study_id else "no study"
    typer.echo(f"run {run.id} {run.outcome}: {where}; seeded {run.seeded} configurations")
    if run.detail:
        typer.echo(f"  {run.detail}")


@schedule_app.command("delete")
def delete(schedule: str = ScheduleArgument, api: str = ApiOption, token: str = TokenOption) -> None:
    """Delete the schedule and its run history; the studies its runs created stay."""
    with connect(api, token) as hps:
        found = hps.find_schedule(schedule)
        hps.delete_schedule(found.id)
    typer.echo(f"schedule {found.id} {found.name} deleted")


def _print_state(schedule: ScheduleOut, output: Output) -> None:
    if output is Output.json:
        print_json(schedule)
    else:
        if schedule.state == "paused":
            typer.echo(f"schedule {schedule.id} {schedule.name} is paused: no run until it is resumed")
        else:
            next_run = _when(schedule.next_run_at)
            typer.echo(f"schedule {schedule.id} {schedule.name} is {schedule.state}; next run {next_run}")
