"""Learning-rate range tests before a study samples, and confirmation runs after it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

- ``hps_lr_range_tests``: one row per optimizer of a study with ``lr_range_test``: leased work like a
  trial (state, attempt, worker, lease), its loss curve and the range read off it.
- ``hps_studies.lr_ranges``: optimizer → [low, high] of lr once the tests have ended; what the sampler
  searches.
- ``hps_trials.confirms``: a confirmation run (``budget.confirm``) names the search trial it re-runs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hps.server.store.models import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(sa.Column("lr_ranges", sa.JSON(), nullable=True))
    with op.batch_alter_table("hps_trials") as batch:
        batch.add_column(sa.Column("confirms", sa.Integer(), nullable=True))
    op.create_table(
        "hps_lr_range_tests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("optimizer", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("stopped_early", sa.String(length=500), nullable=True),
        sa.Column("chosen", sa.JSON(), nullable=True),
        sa.Column("epochs", sa.Float(), nullable=True),
        sa.Column("wall_time_s", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["hps_studies.id"],
            name=op.f("fk_hps_lr_range_tests_study_id_hps_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hps_lr_range_tests")),
        sa.UniqueConstraint("study_id", "optimizer", name="uq_hps_lr_range_tests_study_id_optimizer"),
    )
    op.create_index(
        "ix_hps_lr_range_tests_state_lease_expires_at",
        "hps_lr_range_tests",
        ["state", "lease_expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_hps_lr_range_tests_state_lease_expires_at", table_name="hps_lr_range_tests")
    op.drop_table("hps_lr_range_tests")
    with op.batch_alter_table("hps_trials") as batch:
        batch.drop_column("confirms")
    with op.batch_alter_table("hps_studies") as batch:
        batch.drop_column("lr_ranges")
