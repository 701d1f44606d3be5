"""hps_workers, and when each study last handed a trial to a worker (for fair claims)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hps.server.store.models import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(sa.Column("last_claimed_at", UtcDateTime(), nullable=True))
    op.create_table(
        "hps_workers",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("trials_claimed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hps_workers")),
    )
    op.create_index(op.f("ix_hps_workers_last_seen_at"), "hps_workers", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_hps_workers_last_seen_at"), table_name="hps_workers")
    op.drop_table("hps_workers")
    with op.batch_alter_table("hps_studies") as batch:
        batch.drop_column("last_claimed_at")
