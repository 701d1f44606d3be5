"""hps_schedules and hps_schedule_runs: cron schedules that re-tune, and a study's warm start

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hps.server.store.models import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(sa.Column("warm_start", sa.JSON(), nullable=True))
    op.create_table(
        "hps_schedules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("misfire", sa.String(length=16), nullable=False),
        sa.Column("concurrency", sa.String(length=16), nullable=False),
        sa.Column("warm_start", sa.JSON(), nullable=True),
        sa.Column("promotion", sa.JSON(), nullable=False),
        sa.Column("incumbent", sa.JSON(), nullable=True),
        sa.Column("next_run_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hps_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_hps_schedules_name")),
    )
    op.create_index(op.f("ix_hps_schedules_project"), "hps_schedules", ["project"])
    op.create_index("ix_hps_schedules_state_next_run_at", "hps_schedules", ["state", "next_run_at"])
    op.create_table(
        "hps_schedule_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", UtcDateTime(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("study_name", sa.String(length=128), nullable=True),
        sa.Column("seeded_from", sa.Integer(), nullable=True),
        sa.Column("seeded", sa.Integer(), nullable=False),
        sa.Column("promotion", sa.JSON(), nullable=True),
        sa.Column("evaluated_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["hps_schedules.id"],
            name=op.f("fk_hps_schedule_runs_schedule_id_hps_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hps_schedule_runs")),
        # The claim of a slot: two replicas firing the same due moment cannot both insert it.
        sa.UniqueConstraint(
            "schedule_id", "scheduled_for", name="uq_hps_schedule_runs_schedule_id_scheduled_for"
        ),
    )
    op.create_index(
        "ix_hps_schedule_runs_outcome_evaluated_at", "hps_schedule_runs", ["outcome", "evaluated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_hps_schedule_runs_outcome_evaluated_at", table_name="hps_schedule_runs")
    op.drop_table("hps_schedule_runs")
    op.drop_index("ix_hps_schedules_state_next_run_at", table_name="hps_schedules")
    op.drop_index(op.f("ix_hps_schedules_project"), table_name="hps_schedules")
    op.drop_table("hps_schedules")
    with op.batch_alter_table("hps_studies") as batch:
        batch.drop_column("warm_start")
