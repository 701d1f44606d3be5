"""Alembic environment: migrates the ``hps_*`` tables and never touches Optuna's.

Optuna keeps its own Alembic history in ``alembic_version``; ours lives in ``hps_alembic_version``, and
``include_object`` hides every table without the ``hps_`` prefix from autogenerate and ``alembic check``.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from hps.server.config import load_settings
from hps.server.store.models import Base
from hps.server.store.schema import VERSION_TABLE


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Only hps tables (and what belongs to them) are ours to compare or change."""
    if type_ == "table":
        return name is not None and name.startswith("hps_")
    table = getattr(obj, "table", None)
    return table is None or str(table.name).startswith("hps_")


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_online() -> None:
    """Use the caller's connection when given one (hps passes it), else connect to the URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.config.get_main_option("sqlalchemy.url") or load_settings().resolved_database_url
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
