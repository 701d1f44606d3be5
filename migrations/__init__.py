"""Alembic migrations for the ``hps_*`` tables only (Optuna migrates its own tables itself)."""

VERSION_TABLE = "hps_alembic_version"
