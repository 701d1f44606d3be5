"""What every client-side ``hps`` command shares: where the server is, the token, the output format,
spec files, and exit codes a script can rely on.

Exit codes (also in docs/cli.md):

    0  success
    1  the server refused the request (a 4xx not listed below, e.g. 422 invalid spec)
    2  usage error: bad options, unreadable or malformed spec file
    3  the server is unreachable or failed (no answer, 5xx)
    4  not found (404: no such study, trial or schedule)
    5  conflict (409: name taken, wrong state)
    6  not allowed (401 or 403: missing, wrong or under-scoped token)
    7  the study ended failed or cancelled (``hps study create --wait``, ``hps study watch``)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml
from pydantic import BaseModel

from hps.client.http import HpsClient, HpsError

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_NOT_ALLOWED = 6
EXIT_STUDY_FAILED = 7

ApiOption = typer.Option("http://127.0.0.1:8000", "--api", envvar="HPS_API", help="The hps service URL.")
TokenOption = typer.Option(..., "--token", envvar="HPS_TOKEN", help="A bearer token.")


class Output(StrEnum):
    """How a command prints its answer."""

    table = "table"
    json = "json"


OutputOption = typer.Option(Output.table, "--output", "-o", help="table (for people) or json (for scripts).")


def exit_code_of(error: HpsError) -> int:
    """The documented exit code for an API error."""
    if error.status == 0 or error.status >= 500:
        return EXIT_UNAVAILABLE
    if error.status == 404:
        return EXIT_NOT_FOUND
    if error.status == 409:
        return EXIT_CONFLICT
    if error.status in (401, 403):
        return EXIT_NOT_ALLOWED
    return EXIT_API_ERROR


def fail(error: HpsError) -> NoReturn:
    """Print an API error on stderr, naming the field when the server did, and exit with its code."""
    where = f" (field {error.field})" if error.field else ""
    typer.echo(f"hps: {error.status} {error.code}: {error.detail}{where}", err=True)
    raise typer.Exit(exit_code_of(error))


def usage_error(message: str) -> NoReturn:
    """Print a usage error on stderr and exit 2."""
    typer.echo(f"hps: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def read_spec_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON document (JSON is YAML) holding a request body, as a dict."""
    try:
        text = path.read_text() if str(path) != "-" else sys.stdin.read()
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc.strerror or exc}")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        usage_error(f"{path} is not valid YAML or JSON: {exc}")
    if not isinstance(document, dict):
        usage_error(f"{path} must hold one mapping (the request body), not {type(document).__name__}")
    return document


def print_json(value: BaseModel | Sequence[BaseModel | dict[str, Any]] | dict[str, Any]) -> None:
    """Print models or plain data as indented JSON on stdout."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    typer.echo(json.dumps(data, indent=2))


@contextmanager
def connect(api: str, token: str) -> Iterator[HpsClient]:
    """A client for the command's server; an API error inside the block ends the command with the error
    on stderr and its exit code (``fail``), so commands only say what they ask."""
    try:
        with HpsClient(api, token) as hps:
            yield hps
    except HpsError as error:
        fail(error)
