"""The ``hps_*`` tables. Optuna's own tables (``studies``, ``trials``, …) are Optuna's; these sit beside
them in the same database and are created and changed only by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always read back timezone-aware, on SQLite too (which has no
    time zones and would otherwise hand back naive values that cannot be compared)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for hps tables, with named constraints so migrations can refer to them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class StudyRow(Base):
    """One study. ``id`` equals Optuna's ``studies.study_id`` of the study named ``optuna_name``."""

    __tablename__ = "hps_studies"
    __table_args__ = (
        UniqueConstraint("project", "name", name="uq_hps_studies_project_name"),
        UniqueConstraint("optuna_name", name="uq_hps_studies_optuna_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(128))
    optuna_name: Mapped[str] = mapped_column(String(512))
    project: Mapped[str] = mapped_column(String(64), index=True, default="default")
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str | None] = mapped_column(String(500))
    direction: Mapped[str] = mapped_column(String(8))
    metric: Mapped[str] = mapped_column(String(128))
    task_name: Mapped[str | None] = mapped_column(String(64), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    deadline_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    warm_start: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Optimizer → [low, high] of lr, once the study's lr range tests have all ended (null before, and
    # in a study without them): what its sampler searches.
    lr_ranges: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RangeTestRow(Base):
    """One optimizer's learning-rate range test of a study: leased work like a trial, run before the
    study samples anything (service/range_tests.py)."""

    __tablename__ = "hps_lr_range_tests"
    __table_args__ = (
        UniqueConstraint("study_id", "optimizer", name="uq_hps_lr_range_tests_study_id_optimizer"),
        Index("ix_hps_lr_range_tests_state_lease_expires_at", "state", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("hps_studies.id", ondelete="CASCADE"))
    optimizer: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    low: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    steps: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    points: Mapped[list[Any]] = mapped_column(JSON, default=list)
    stopped_early: Mapped[str | None] = mapped_column(String(500))
    chosen: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    epochs: Mapped[float | None] = mapped_column(Float)
    wall_time_s: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(500))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class WorkerRow(Base):
    """A worker process as last seen by the service (it claims trials under ``id``)."""

    __tablename__ = "hps_workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    device: Mapped[str] = mapped_column(String(64))
    tasks: Mapped[list[str]] = mapped_column(JSON)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    trials_claimed: Mapped[int] = mapped_column(Integer, default=0)


class TokenRow(Base):
    """An API token. Only a hash of the secret is stored; the secret is shown once, at creation."""

    __tablename__ = "hps_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    project: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TrialRow(Base):
    """One attempt at a configuration: an Optuna trial plus what Optuna has no place for (the hps
    state with ``diverged``, the reason, the lease, the retry chain and the completion as sent)."""

    __tablename__ = "hps_trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_hps_trials_study_id_number"),
        Index("ix_hps_trials_study_id_state", "study_id", "state"),
        Index("ix_hps_trials_state_lease_expires_at", "state", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("hps_studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    optuna_trial_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    value: Mapped[float | None] = mapped_column(Float)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of: Mapped[int | None] = mapped_column(Integer)
    retried_by: Mapped[int | None] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    completion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A confirmation run (budget.confirm): the search trial whose configuration it re-runs.
    confirms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # What the attempt cost (hps.wire.costs), as its completion sent it; null when it sent none. Columns,
    # not attrs, so that totals are one SUM and money is fixed at the price of the day it finished.
    device_seconds: Mapped[float | None] = mapped_column(Float)
    gpus: Mapped[float | None] = mapped_column(Float)
    gpu_seconds: Mapped[float | None] = mapped_column(Float)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float)
    samples: Mapped[int | None] = mapped_column(BigInteger)
    money: Mapped[float | None] = mapped_column(Float)


class ScheduleRow(Base):
    """A cron schedule that creates a study from its template at each slot (service/scheduler.py)."""

    __tablename__ = "hps_schedules"
    __table_args__ = (
        Index("ix_hps_schedules_state_next_run_at", "state", "next_run_at"),
        UniqueConstraint("project", "name", name="uq_hps_schedules_project_name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    project: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    cron: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64))
    template: Mapped[dict[str, Any]] = mapped_column(JSON)
    misfire: Mapped[str] = mapped_column(String(16))
    concurrency: Mapped[str] = mapped_column(String(16))
    warm_start: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    promotion: Mapped[dict[str, Any]] = mapped_column(JSON)
    incumbent: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ScheduleRunRow(Base):
    """One slot of a schedule: the study it started, or why it was skipped, and the promotion decision."""

    __tablename__ = "hps_schedule_runs"
    __table_args__ = (
        UniqueConstraint(
            "schedule_id", "scheduled_for", name="uq_hps_schedule_runs_schedule_id_scheduled_for"
        ),
        Index("ix_hps_schedule_runs_outcome_evaluated_at", "outcome", "evaluated_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("hps_schedules.id", ondelete="CASCADE"))
    scheduled_for: Mapped[datetime] = mapped_column(UtcDateTime())
    trigger: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(500))
    study_id: Mapped[int | None] = mapped_column(Integer)
    study_name: Mapped[str | None] = mapped_column(String(128))
    seeded_from: Mapped[int | None] = mapped_column(Integer)
    seeded: Mapped[int] = mapped_column(Integer, default=0)
    promotion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IdWatermarkRow(Base):
    """The highest id of a kind (``study``, ``trial``) SQLite ever handed out in Optuna's tables, raised
    when a study is deleted: new ids start above it, so a deleted study's ids never come back."""

    __tablename__ = "hps_id_watermarks"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
