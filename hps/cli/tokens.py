"""``hps token create|list|revoke``: through the running service by default, straight into a database only
when asked (``--database``).

Going through the service means the token lands in the database the service actually uses: a token
written into whatever ``./var/hps.db`` the current directory happens to hold would be one the server
never sees. ``--database`` writes into the database of this machine's settings (``HPS_DATABASE_URL`` or
``HPS_DATA_DIR``) and says which one — for bootstrapping before any server runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from hps.cli.common import ApiOption, connect
from hps.server import tokens
from hps.server.config import ConfigError, load_settings
from hps.server.errors import DomainError
from hps.server.store import schema
from hps.server.store.database import Database, describe_database
from hps.server.store.tokens import TokenRecord

token_app = typer.Typer(
    rich_markup_mode=None,
    help="API tokens (stored hashed; a secret is shown once). Through the running service (--api, --token) "
    "unless --database.",
    no_args_is_help=True,
)

AdminTokenOption = typer.Option(
    None,
    "--token",
    envvar=["HPS_TOKEN", "HPS_ADMIN_TOKEN"],
    help="An admin token of the service (default: $HPS_TOKEN, then $HPS_ADMIN_TOKEN).",
)
DatabaseOption = typer.Option(
    False,
    "--database",
    help="Write straight into the database of this machine's settings (HPS_DATABASE_URL or HPS_DATA_DIR) "
    "instead of asking the service; it says which database.",
)


@token_app.command("create")
def create(
    name: str = typer.Option(..., help="What the token is for, e.g. 'gpu-box-3'."),
    scope: list[str] = typer.Option(..., help="admin, write, read, worker or metrics; repeat for several."),
    project: str | None = typer.Option(
        None, help="The project it sees (required unless admin; none for metrics)."
    ),
    api: str = ApiOption,
    token: str | None = AdminTokenOption,
    database: bool = DatabaseOption,
) -> None:
    """Create a token and print its secret (the only time it is shown)."""
    if database:
        db = _open_database()
        try:
            made = tokens.create_token(db, name=name, scopes=scope, project=project)
        except DomainError as exc:
            typer.echo(f"hps: {exc.detail}", err=True)
            raise typer.Exit(2) from None
        finally:
            db.dispose()
        record = made.record
        _print_made(record.id, record.scopes, record.project, made.secret)
        return
    with connect(api, _required(token)) as hps:
        typer.echo(f"hps: creating the token through the service at {api}", err=True)
        created = hps.create_token(name, scope, project)
    _print_made(created.id, created.scopes, created.project, created.token)


@token_app.command("list")
def list_tokens(
    project: str | None = typer.Option(None, help="Only this project's tokens."),
    api: str = ApiOption,
    token: str | None = AdminTokenOption,
    database: bool = DatabaseOption,
) -> None:
    """List tokens (never their secrets)."""
    if database:
        db = _open_database()
        try:
            found: Sequence[TokenRecord] = tokens.list_tokens(db, project)
        finally:
            db.dispose()
        for record in found:
            _print_row(record.id, record.name, record.scopes, record.project, record.revoked_at is not None)
        return
    with connect(api, _required(token)) as hps:
        listed = hps.tokens()
    for item in listed:
        if project is None or item.project == project:
            _print_row(item.id, item.name, item.scopes, item.project, item.revoked_at is not None)


@token_app.command("revoke")
def revoke(
    token_id: str,
    api: str = ApiOption,
    token: str | None = AdminTokenOption,
    database: bool = DatabaseOption,
) -> None:
    """Revoke a token; it stops working within seconds on every server."""
    if database:
        db = _open_database()
        try:
            tokens.revoke_token(db, token_id, None)
        except DomainError as exc:
            typer.echo(f"hps: {exc.detail}", err=True)
            raise typer.Exit(1) from None
        finally:
            db.dispose()
    else:
        with connect(api, _required(token)) as hps:
            hps.revoke_token(token_id)
    typer.echo(f"token {token_id} revoked")


def _required(token: str | None) -> str:
    if not token:
        typer.echo(
            "hps: an admin token is needed to manage tokens through the service (--token, $HPS_TOKEN or "
            "$HPS_ADMIN_TOKEN); or write into the database directly with --database",
            err=True,
        )
        raise typer.Exit(2)
    return token


def _open_database() -> Database:
    """This machine's database, migrated, after saying which one it is."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.echo(f"hps: {exc}", err=True)
        raise typer.Exit(2) from None
    url = settings.resolved_database_url
    typer.echo(f"hps: using the {describe_database(url)}", err=True)
    try:
        schema.prepare(url)
    except schema.SchemaBehind as exc:
        typer.echo(f"hps: {exc}", err=True)
        raise typer.Exit(3) from None
    return Database(url, busy_timeout_s=settings.sqlite_busy_timeout_seconds)


def _print_made(token_id: str, scopes: Sequence[str], project: str | None, secret: str) -> None:
    typer.echo(f"token {token_id} ({', '.join(scopes)}; project {project or 'all'}):")
    typer.echo(secret)


def _print_row(token_id: str, name: str, scopes: Sequence[str], project: str | None, revoked: bool) -> None:
    state = "revoked" if revoked else "active"
    typer.echo(f"{token_id}  {name:24} {','.join(scopes):22} {project or '*':16} {state}")
