"""``hps study …``: create, list, show, follow, cancel and delete studies over HTTP.

STUDY is a study's id or its name. Every command takes ``--api``, ``--token`` and ``--output table|json``
and exits with the codes documented in :mod:`hps.cli.common` (and docs/cli.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from hps.cli.common import (
    EXIT_STUDY_FAILED,
    EXIT_USAGE,
    ApiOption,
    Output,
    OutputOption,
    TokenOption,
    connect,
    print_json,
    read_spec_file,
)
from hps.cli.view import range_tests_table, studies_table, study_details, trial_details, trials_table
from hps.cli.watch import WatchFormat, wait_until_ended, watch
from hps.wire.studies import StudyOut

study_app = typer.Typer(
    rich_markup_mode=None,
    help="Studies: create from a YAML/JSON spec, inspect, follow, cancel, delete.",
    no_args_is_help=True,
)

StudyArgument = typer.Argument(..., help="The study's id or name.")
IntervalOption = typer.Option(1.0, "--interval", min=0.1, max=3600, help="Seconds between looks.")
StateOption = typer.Option(None, "--state", help="Only this state.")


def _console() -> Console:
    # Off a terminal (pipes, CI, tests) rich would wrap tables at 80 columns; lines that stay whole
    # are easier to read in a log and to grep.
    return Console(width=None if sys.stdout.isatty() else 160)


def _ended_code(study: StudyOut) -> int:
    """0 unless the study ended failed or cancelled (a study still running is not a failure)."""
    return EXIT_STUDY_FAILED if study.state in ("failed", "cancelled") else 0


@study_app.command("create")
def create(
    file: Path = typer.Option(
        ..., "--file", "-f", help="The spec: the POST /v1/studies body as YAML or JSON ('-': stdin)."
    ),
    name: str | None = typer.Option(None, "--name", help="Use this name instead of the spec's."),
    project: str | None = typer.Option(
        None, "--project", help="Admins without a project: create it in this project (default: default)."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Follow the study until it ends: exit 0 if completed, 7 if failed or cancelled."
    ),
    interval: float = IntervalOption,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Create a study from a spec file. With --wait, follow it to the end (json: print it once ended)."""
    spec = read_spec_file(file)
    if name is not None:
        spec["name"] = name
    console = _console()
    with connect(api, token) as hps:
        study = hps.create_study(spec, project=project)
        if wait and output is Output.json:
            study = wait_until_ended(hps, study.id, interval)
        elif wait:
            console.print(f"study {study.id} {study.name} created; following it until it ends")
            study = watch(hps, study.id, console, show=_live_or_lines(console), interval=interval)
    _show_study(study, output, console)
    if wait:
        raise typer.Exit(_ended_code(study))


@study_app.command("list")
def list_studies(
    state: str | None = StateOption,
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """List studies, newest first."""
    with connect(api, token) as hps:
        found: list[StudyOut] = []
        for study in hps.studies(state=state):
            found.append(study)
            if len(found) == limit:
                break
    if output is Output.json:
        print_json(found)
    else:
        _console().print(studies_table(found))


@study_app.command("show")
def show(
    study: str = StudyArgument,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """One study: state, spec, progress, lr range tests and best trial."""
    with connect(api, token) as hps:
        found = hps.find_study(study)
        tests = hps.range_tests(found.id) if found.spec.get("lr_range_test") else None
    if output is Output.json:
        print_json(found)
    else:
        _console().print(study_details(found, tests))


@study_app.command("range-tests")
def range_tests(
    study: str = StudyArgument,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """The study's lr range tests: each optimizer's curve summary and the lr range it is searched over."""
    with connect(api, token) as hps:
        found = hps.range_tests(hps.find_study(study).id)
    if output is Output.json:
        print_json(found)
    else:
        _console().print(range_tests_table(found))


@study_app.command("trials")
def trials(
    study: str = StudyArgument,
    state: str | None = StateOption,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """A study's trials in number order: state, value, last reported step, params, reason."""
    with connect(api, token) as hps:
        found = hps.find_study(study)
        listed = list(hps.trials(found.id, state=state))
    if output is Output.json:
        print_json(listed)
    else:
        _console().print(trials_table(listed, title=f"trials of study {found.id} {found.name}"))


@study_app.command("best")
def best(
    study: str = StudyArgument,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """The best complete trial (exit 4 until one completes)."""
    with connect(api, token) as hps:
        found = hps.find_study(study)
        trial = hps.best(found.id)
    if output is Output.json:
        print_json(trial)
    else:
        _console().print(trial_details(trial, title=f"best trial of {found.name} ({found.metric})"))


@study_app.command("cancel")
def cancel(
    study: str = StudyArgument,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Stop handing out trials; running ones are told to stop at their next report."""
    with connect(api, token) as hps:
        cancelled = hps.cancel_study(hps.find_study(study).id)
    _show_study(cancelled, output, _console())


@study_app.command("delete")
def delete(
    study: str = StudyArgument,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Delete a study, its trials and its Optuna study. Asks first unless --yes; a refusal (or no
    answer, as in a script without --yes) deletes nothing and exits 2."""
    with connect(api, token) as hps:
        found = hps.find_study(study)
        if not yes and not _confirmed(f"Delete study {found.id} ({found.name}) and all its trials?"):
            typer.echo("hps: not deleted", err=True)
            raise typer.Exit(EXIT_USAGE)
        hps.delete_study(found.id)
    if output is Output.json:
        print_json({"id": found.id, "name": found.name, "deleted": True})
    else:
        typer.echo(f"study {found.id} ({found.name}) deleted")


@study_app.command("watch")
def watch_study(
    study: str = StudyArgument,
    once: bool = typer.Option(False, "--once", help="Show the study once and exit."),
    interval: float = IntervalOption,
    api: str = ApiOption,
    token: str = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Follow a study until it ends: progress bar with ETA, best value, running trials and their epoch.
    A live view on a terminal; one line per change otherwise; one JSON object per line with --output json.
    Exits 0 when it completed (or with --once while it runs), 7 when it failed or was cancelled."""
    console = _console()
    show = WatchFormat.json if output is Output.json else _live_or_lines(console)
    with connect(api, token) as hps:
        found = hps.find_study(study)
        last = watch(hps, found.id, console, show=show, interval=interval, once=once)
    if output is Output.table and last.state_reason:
        console.print(f"study {last.id} {last.state}: {last.state_reason}")
    raise typer.Exit(_ended_code(last))


def _live_or_lines(console: Console) -> WatchFormat:
    return WatchFormat.live if console.is_terminal else WatchFormat.lines


def _confirmed(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:  # end of input: nobody is there to say yes
        return False


def _show_study(study: StudyOut, output: Output, console: Console) -> None:
    if output is Output.json:
        print_json(study)
    else:
        console.print(study_details(study))
