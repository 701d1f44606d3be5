"""The ``hps`` command line."""

from __future__ import annotations

import logging
import secrets
import socket
from pathlib import Path

import typer
import uvicorn
from pydantic import SecretStr
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from hps.catalog.registry import RegistryError, load_registry
from hps.cli.report import report
from hps.cli.schedules import schedule_app
from hps.cli.studies import study_app
from hps.cli.tokens import token_app
from hps.server.config import ConfigError, Settings, load_settings
from hps.server.store import schema
from hps.server.store.database import describe_database

app = typer.Typer(
    rich_markup_mode=None, help="hps: hyperparameter search for fine-tuning optimizers.", no_args_is_help=True
)
db_app = typer.Typer(rich_markup_mode=None, help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(study_app, name="study")
app.add_typer(schedule_app, name="schedule")
app.command("report")(report)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"hps: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0: any free port)."),
    address_file: Path | None = typer.Option(
        None, help="Write the URL the server listens on to this file (useful with --port 0)."
    ),
    log_level: str = typer.Option(
        "info", envvar="HPS_LOG_LEVEL", help="Log level: debug, info, warning or error."
    ),
) -> None:
    """Run the REST API. Migrates a SQLite database; refuses a PostgreSQL schema that is behind."""
    settings = _settings()
    try:
        load_registry(settings.registry)
    except RegistryError as exc:
        typer.echo(f"hps: {exc}", err=True)
        raise typer.Exit(2) from None
    database = settings.resolved_database_url
    try:
        schema.prepare(database)
    except schema.SchemaBehind as exc:
        typer.echo(f"hps: {exc}", err=True)
        raise typer.Exit(3) from None
    except Exception as exc:  # the database is down or the URL is wrong: say so, briefly
        typer.echo(f"hps: cannot open the database: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(3) from None
    if settings.admin_token is None:
        token = secrets.token_urlsafe(32)
        settings = settings.model_copy(update={"admin_token": SecretStr(token)})
        typer.echo(f"HPS_ADMIN_TOKEN was unset; this server accepts the admin token:\n{token}")
    from hps.server.api.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Bind first, so that the URL (with the port the OS picked for --port 0) is known before serving.
    listener = listen(host, port)
    bound_host, bound_port = listener.getsockname()[:2]
    url = f"http://{bound_host}:{bound_port}"
    if address_file is not None:
        address_file.write_text(url)
    typer.echo(f"hps serving on {url}, on the {describe_database(settings.resolved_database_url)}")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level=log_level))
    server.run(sockets=[listener])


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Made with the protocol named (``IPPROTO_TCP``), not 0 as
    ``socket.create_server`` makes it: asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on
    sockets that say they are TCP, and with it on, every response on a kept-alive connection waited
    about 40 ms for the client's delayed acknowledgement."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(2048)
    return listener


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade Optuna's tables and the hps tables in HPS_DATABASE_URL."""
    settings = _settings()
    typer.echo(f"upgrading the {describe_database(settings.resolved_database_url)}")
    revision = schema.upgrade(settings.resolved_database_url)
    typer.echo(f"database schema at {revision}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's hps schema revision and whether it is current; exit 1 if behind."""
    settings = _settings()
    engine = create_engine(settings.resolved_database_url, poolclass=NullPool)
    try:
        found = schema.current_revision(engine)
        current = schema.is_current(engine)
    finally:
        engine.dispose()
    where = describe_database(settings.resolved_database_url)
    typer.echo(f"{where}: at {found or 'nothing'}; head is {schema.head_revision()}")
    if not current:
        raise typer.Exit(1)


@app.command()
def worker(
    api: str = typer.Option("http://127.0.0.1:8000", envvar="HPS_API", help="The hps service URL."),
    token: str = typer.Option(..., envvar="HPS_TOKEN", help="A bearer token with the worker right."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, or all (one process per visible GPU)."),
    max_trials: int | None = typer.Option(None, min=1, help="Exit after this many trials."),
    once: bool = typer.Option(False, "--once", help="Exit as soon as there is nothing to do."),
    tasks: str | None = typer.Option(None, help="Comma-separated tasks to run (default: all registered)."),
    registry: Path | None = typer.Option(None, envvar="HPS_REGISTRY", help="Models/datasets registry file."),
    data_dir: Path = typer.Option(Path("var"), envvar="HPS_DATA_DIR", help="Caches (pretrained weights)."),
    worker_id: str | None = typer.Option(None, help="Default: <host>-<pid>-<device>."),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads (default: torch's choice)."),
    log_format: str = typer.Option("text", help="text, or json: one JSON object per line."),
    trials_per_device: int = typer.Option(
        1, min=1, max=64, help="Trial processes per device, if they fit in its memory (docs/workers.md)."
    ),
    device_share: float = typer.Option(1.0, min=0.0, max=1.0, hidden=True),
) -> None:
    """Claim trials over HTTP and fine-tune with each sampled optimizer. Needs a URL and a token only."""
    from hps.workers.main import WorkerCommand, run_worker_command

    command = WorkerCommand(
        api=api,
        token=token,
        device=device,
        max_trials=max_trials,
        once=once,
        tasks=tuple(t.strip() for t in tasks.split(",")) if tasks else (),
        registry=registry,
        data_dir=data_dir,
        worker_id=worker_id,
        threads=threads,
        log_json=log_format == "json",
        trials_per_device=trials_per_device,
        device_share=device_share,
    )
    raise typer.Exit(run_worker_command(command))


@app.command()
def demo(
    trials: int = typer.Option(40, min=1, max=500, help="The study's trial budget."),
    workers: int = typer.Option(2, min=1, max=16, help="Worker processes (one CPU thread each)."),
    data_dir: Path = typer.Option(Path("var/demo"), help="Where the demo's database and caches live."),
) -> None:
    """Start the service on SQLite and workers, tune the `optimizers` preset on `digits` with TPE and
    Hyperband, show live progress, then the best params and a per-optimizer table."""
    from hps.cli.demo import run_demo

    raise typer.Exit(run_demo(data_dir=data_dir, n_trials=trials, n_workers=workers))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="hps")


if __name__ == "__main__":
    main()
