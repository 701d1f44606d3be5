"""hps_studies and hps_trials

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hps.server.store.models import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hps_studies",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.String(length=500), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("task_name", sa.String(length=64), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("deadline_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hps_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_hps_studies_name")),
    )
    op.create_index(op.f("ix_hps_studies_project"), "hps_studies", ["project"])
    op.create_index(op.f("ix_hps_studies_state"), "hps_studies", ["state"])
    op.create_index(op.f("ix_hps_studies_task_name"), "hps_studies", ["task_name"])
    op.create_table(
        "hps_trials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("optuna_trial_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("attrs", sa.JSON(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of", sa.Integer(), nullable=True),
        sa.Column("retried_by", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("completion", sa.JSON(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["hps_studies.id"],
            name=op.f("fk_hps_trials_study_id_hps_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hps_trials")),
        sa.UniqueConstraint("study_id", "number", name="uq_hps_trials_study_id_number"),
    )
    op.create_index("ix_hps_trials_study_id_state", "hps_trials", ["study_id", "state"])
    op.create_index("ix_hps_trials_state_lease_expires_at", "hps_trials", ["state", "lease_expires_at"])


def downgrade() -> None:
    op.drop_table("hps_trials")
    op.drop_table("hps_studies")
