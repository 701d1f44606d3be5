"""Schema lifecycle: create Optuna's tables, apply hps migrations, tell whether a database is current.

Both steps run under one cross-process lock (a PostgreSQL advisory lock, or a file lock beside a SQLite
file), so that twenty processes starting on an empty database create the schema exactly once.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import optuna
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

# Ours beside Optuna's own ``alembic_version``: the two histories never mix.
VERSION_TABLE = "hps_alembic_version"
# Any fixed 64-bit key works; derive it from a name so it documents itself in pg_locks.
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"hps-migrate").digest()[:8], "big", signed=True)


class SchemaBehind(Exception):
    """The database's hps schema is older than this code; run ``hps db upgrade``."""


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged ``migrations`` directory and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("hps.migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found in the migrations package")
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for a database hps never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def is_current(engine: Engine) -> bool:
    """True when Optuna's tables exist and the hps schema is at head."""
    return current_revision(engine) == head_revision() and _optuna_tables_exist(engine)


def upgrade(url: str) -> str:
    """Create or upgrade Optuna's tables and the hps tables; idempotent and safe to race. Returns
    the hps revision the database is at afterwards."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with _migration_lock(engine, url):
            _upgrade_optuna(url)
            with engine.begin() as conn:
                config = alembic_config(url)
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        return head_revision()
    finally:
        engine.dispose()


def require_current(engine: Engine) -> None:
    """Raise :class:`SchemaBehind`, naming the command to run, unless the schema is current."""
    found = current_revision(engine)
    if found != head_revision() or not _optuna_tables_exist(engine):
        raise SchemaBehind(
            f"the database schema is at {found or 'nothing'}, this hps needs {head_revision()}: "
            "run `hps db upgrade` (with the same HPS_DATABASE_URL) first"
        )


def _upgrade_optuna(url: str) -> None:
    # RDBStorage creates Optuna's tables on first use and stamps its own alembic_version.
    storage = optuna.storages.RDBStorage(url, skip_compatibility_check=True)
    try:
        if storage.get_current_version() != storage.get_head_version():
            storage.upgrade()
    finally:
        storage.engine.dispose()


def _optuna_tables_exist(engine: Engine) -> bool:
    with engine.connect() as conn:
        try:
            conn.execute(text("SELECT 1 FROM studies WHERE 1 = 0"))
        except Exception:
            return False
    return True


@contextmanager
def _migration_lock(engine: Engine, url: str) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_KEY})
                conn.commit()
        return
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_suffix(".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(url: str) -> None:
    """Make the database ready for a server: SQLite is migrated in place (it is the embedded,
    one-machine default); PostgreSQL must already be current, because migrating a shared database
    is the operator's decision (``hps db upgrade``)."""
    if url.startswith("sqlite"):
        upgrade(url)
        return
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        require_current(engine)
    finally:
        engine.dispose()
