"""Fresh databases for tests: a SQLite file, or a PostgreSQL database of its own per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

# The local server CI runs against; a missing server fails the tests that need it, never skips them.
PG_ADMIN_DSN = os.environ.get("HPS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _dsn_with_db(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"hps_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _dsn_with_db(PG_ADMIN_DSN, name).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(directory: Path) -> str:
    """A SQLite file URL inside ``directory``."""
    return f"sqlite:///{directory / 'hps.db'}"


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A fresh database of ``kind`` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield sqlite_url(directory)
    else:
        with postgres_database() as url:
            yield url
