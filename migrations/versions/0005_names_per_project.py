"""Names unique within a project, the Optuna name of each study, and ids never handed out twice

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

- ``hps_studies.optuna_name``: the name Optuna knows the study by (``optuna.load_study`` takes it). Names
  are unique within a project now; Optuna's must stay unique across the database, so a study outside the
  ``default`` project is ``<project>/<name>`` in Optuna. Existing studies keep the Optuna name they have.
- ``hps_schedules``: names unique within a project.
- ``hps_id_watermarks``: the highest study and trial ids SQLite ever handed out, so that a deleted
  study's ids are never given to a new one (SQLite reuses the highest rowid once it is deleted).
  ``hps_schedules`` and ``hps_schedule_runs`` are rebuilt with SQLite's AUTOINCREMENT for the same reason.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(sa.Column("optuna_name", sa.String(length=512), nullable=True))
    op.execute("UPDATE hps_studies SET optuna_name = name")
    with op.batch_alter_table("hps_studies") as batch:
        batch.alter_column("optuna_name", existing_type=sa.String(length=512), nullable=False)
        batch.drop_constraint("uq_hps_studies_name", type_="unique")
        batch.create_unique_constraint("uq_hps_studies_project_name", ["project", "name"])
        batch.create_unique_constraint("uq_hps_studies_optuna_name", ["optuna_name"])
    with op.batch_alter_table(
        "hps_schedules", recreate="auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.drop_constraint("uq_hps_schedules_name", type_="unique")
        batch.create_unique_constraint("uq_hps_schedules_project_name", ["project", "name"])
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "hps_schedule_runs", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    op.create_table(
        "hps_id_watermarks",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_hps_id_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("hps_id_watermarks")
    with op.batch_alter_table("hps_schedules") as batch:
        batch.drop_constraint("uq_hps_schedules_project_name", type_="unique")
        batch.create_unique_constraint("uq_hps_schedules_name", ["name"])
    with op.batch_alter_table("hps_studies") as batch:
        batch.drop_constraint("uq_hps_studies_optuna_name", type_="unique")
        batch.drop_constraint("uq_hps_studies_project_name", type_="unique")
        batch.create_unique_constraint("uq_hps_studies_name", ["name"])
        batch.drop_column("optuna_name")
