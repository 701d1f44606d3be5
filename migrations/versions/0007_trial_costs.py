"""What each trial cost

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

- ``hps_trials``: ``device_seconds``, ``gpus``, ``gpu_seconds``, ``peak_memory_mb``, ``samples`` and
  ``money`` (hps.wire.costs), null for trials that finished before this revision or sent no cost.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FLOATS = ("device_seconds", "gpus", "gpu_seconds", "peak_memory_mb", "money")


def upgrade() -> None:
    with op.batch_alter_table("hps_trials") as batch:
        for name in _FLOATS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch.add_column(sa.Column("samples", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hps_trials") as batch:
        batch.drop_column("samples")
        for name in reversed(_FLOATS):
            batch.drop_column(name)
