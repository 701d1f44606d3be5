"""Alembic migrations for the ``hps_*`` tables only (Optuna migrates its own tables itself). The version
table's name lives with the code that runs them (``hps.server.store.schema.VERSION_TABLE``)."""
