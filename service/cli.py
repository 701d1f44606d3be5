"""The ``hps`` command line."""

from __future__ import annotations

import logging
import secrets

import typer
import uvicorn
from pydantic import SecretStr
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from service.config import ConfigError, Settings, load_settings
from service.store import schema

app = typer.Typer(help="hps: hyperparameter search for fine-tuning optimizers.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


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
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the REST API. Migrates a SQLite database; refuses a PostgreSQL schema that is behind."""
    settings = _settings()
    url = settings.resolved_database_url
    try:
        schema.prepare(url)
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
    from service.api.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade Optuna's tables and the hps tables in HPS_DATABASE_URL."""
    settings = _settings()
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
    typer.echo(f"at {found or 'nothing'}; head is {schema.head_revision()}")
    if not current:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="hps")


if __name__ == "__main__":
    main()
