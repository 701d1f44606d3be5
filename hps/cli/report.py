"""``hps report STUDY``: fetch a study's optimizer report over HTTP and write it as one self-contained
HTML file (or as the JSON the API answers)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer

from hps.cli.common import ApiOption, TokenOption, connect, usage_error
from hps.report.html import render_report


class ReportFormat(StrEnum):
    """What ``hps report`` writes."""

    html = "html"
    json = "json"


def report(
    study: str = typer.Argument(..., help="The study's id or name."),
    output: Path = typer.Option(Path("-"), "--output", "-o", help="The file to write ('-': stdout)."),
    fmt: ReportFormat = typer.Option(ReportFormat.html, "--format", help="html (one file) or json."),
    top: int = typer.Option(5, min=1, max=20, help="How many best trials' learning curves to show."),
    api: str = ApiOption,
    token: str = TokenOption,
) -> None:
    """Which optimizer, which learning rate, and how sure we are: the study's report as one HTML file
    that opens offline (inline CSS and SVG charts), or as JSON."""
    with connect(api, token) as hps:
        found = hps.find_study(study)
        built = hps.study_report(found.id, top=top)
    if fmt is ReportFormat.json:
        text = json.dumps(built.model_dump(mode="json"), indent=2) + "\n"
    else:
        text = render_report(built)
    if str(output) == "-":
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        usage_error(f"cannot write {output}: {exc.strerror or exc}")
    typer.echo(f"report of study {built.study_id} ({built.study_name}) written to {output}", err=True)
