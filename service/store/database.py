"""The engine and the unit of work.

Every use case runs its database work through :meth:`Database.run`: one session, one transaction, committed
at the end or rolled back on error. Transient failures (deadlocks, serialization failures, SQLite's
"database is locked") are retried a bounded number of times; a database that stays unreachable becomes
:class:`~hps.server.errors.ServiceUnavailable` (HTTP 503), never a 500.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from optuna.exceptions import StorageInternalError
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from hps.server.errors import Conflict, InvalidInput, ServiceUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

# PostgreSQL SQLSTATEs worth a retry: serialization_failure, deadlock_detected.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
_MAX_ATTEMPTS = 5


class Database:
    """One SQL database (SQLite or PostgreSQL) holding Optuna's tables and the ``hps_*`` tables.

    Thread safe: sessions are created per call. On SQLite, write units of work start with
    ``BEGIN IMMEDIATE`` so that two writers never both read and then fail to upgrade their lock.
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0, pool_size: int = 10) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.engine = _create_engine(url, busy_timeout_s=busy_timeout_s, pool_size=pool_size)
        write_engine = self.engine.execution_options(hps_write=True)
        self._read_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(bind=write_engine, expire_on_commit=False)
        # SQLite admits one writer at a time; queueing writers of this process on a lock avoids
        # SQLite's busy-wait backoff, which sleeps up to 100 ms between tries.
        self._write_gate: AbstractContextManager[object] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )

    def run(self, work: Callable[[Session], T], *, write: bool) -> T:
        """Run ``work`` in one transaction and return its result.

        Domain errors raised by ``work`` roll back and propagate unchanged. Transient database
        errors are retried with jittered backoff; persistent ones become ``ServiceUnavailable``.
        """
        factory = self._write_sessions if write else self._read_sessions
        gate = self._write_gate if write else nullcontext()
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                with gate, factory() as session, session.begin():
                    return work(session)
            except IntegrityError as exc:
                log.info("integrity error on constraint %s", _constraint(exc))
                raise Conflict("the write conflicts with data written concurrently; retry") from None
            except (DataError, OverflowError, UnicodeEncodeError) as exc:
                # The request layer refuses values the database cannot hold (hps.wire.rules); this
                # is the last line, so that a value that slipped through is a 422, never a 500.
                log.warning("a value could not be stored: %s", type(exc).__name__)
                raise InvalidInput("a value in the request cannot be stored in the database") from None
            except StorageInternalError as exc:
                # Optuna's own storage (read by samplers and pruners) failed to reach the database.
                log.warning("optuna storage unavailable: %s", exc)
                raise ServiceUnavailable("the database is unreachable or busy; retry shortly") from None
            except PoolTimeout:
                raise ServiceUnavailable("every database connection is busy; retry shortly") from None
            except DBAPIError as exc:
                if _is_transient(exc) and attempt < _MAX_ATTEMPTS:
                    time.sleep(min(0.05 * 2**attempt, 1.0) * random.random())
                    continue
                if isinstance(exc, (OperationalError, InterfaceError)) or _is_transient(exc):
                    raise _unavailable(exc) from None
                raise
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def describe_database(url: str) -> str:
    """Which database a URL names, for a person: the SQLite file's path, or the server and database (the
    password never shown)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database}"
    host = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    user = f" as {parsed.username}" if parsed.username else ""
    return f"PostgreSQL database {parsed.database} on {host}{user}"


def _create_engine(url: str, *, busy_timeout_s: float, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            hide_parameters=True,
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
            # A pooled SQLite connection buys little and keeps file handles across forks.
            poolclass=NullPool,
        )
        _configure_sqlite(engine, busy_timeout_s)
        return engine
    return create_engine(
        url,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("hps_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _constraint(exc: IntegrityError) -> str:
    """The constraint an integrity error broke, never the values (PostgreSQL's detail quotes the key)."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return str(name) if name else str(exc.orig).split("\n")[0]


def _is_transient(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and (
        "database is locked" in message or "database is busy" in message
    )


def _unavailable(exc: DBAPIError) -> ServiceUnavailable:
    # The message names the failure class only: driver messages can carry the URL or SQL.
    log.warning("database unavailable: %s", exc.orig)
    return ServiceUnavailable("the database is unreachable or busy; retry shortly")
