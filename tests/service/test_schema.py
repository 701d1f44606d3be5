"""Migrations: from empty to head, idempotent, `alembic check` clean, Optuna's tables left to Optuna."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import optuna
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from hps.server.store.schema import (
    SchemaBehind,
    alembic_config,
    current_revision,
    head_revision,
    is_current,
    require_current,
    upgrade,
)


def test_upgrade_from_empty_creates_both_schemas(database_url: str) -> None:
    engine = create_engine(database_url)
    assert current_revision(engine) is None
    assert not is_current(engine)
    assert upgrade(database_url) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"hps_studies", "hps_trials", "hps_alembic_version"} <= tables
    assert {"studies", "trials", "trial_params", "alembic_version"} <= tables
    assert is_current(engine)
    with engine.connect() as conn:
        optuna_revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert optuna_revision == optuna.storages.RDBStorage(database_url).get_head_version()
    engine.dispose()


def test_upgrade_is_idempotent_and_alembic_check_is_clean(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    # `alembic check` raises if the models and the migrated schema differ (Optuna's tables excluded).
    command.check(alembic_config(database_url))


def test_require_current_names_the_command(database_url: str) -> None:
    engine = create_engine(database_url)
    with pytest.raises(SchemaBehind, match="hps db upgrade"):
        require_current(engine)
    upgrade(database_url)
    require_current(engine)
    engine.dispose()


def _upgrade_in_child(url: str) -> str:
    return upgrade(url)


def test_racing_upgrades_create_the_schema_once(database_url: str) -> None:
    with ProcessPoolExecutor(max_workers=6) as pool:
        revisions = list(pool.map(_upgrade_in_child, [database_url] * 6))
    assert revisions == [head_revision()] * 6
    engine = create_engine(database_url)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT count(*) FROM hps_alembic_version")).scalar_one()
    assert versions == 1
    engine.dispose()


def test_hps_db_upgrade_command(database_url: str, tmp_path: object) -> None:
    env = {"HPS_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "hps.cli", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert head_revision() in done.stdout
    current = subprocess.run(
        [sys.executable, "-m", "hps.cli", "db", "current"], env=env, capture_output=True, text=True
    )
    assert current.returncode == 0 and f"at {head_revision()}" in current.stdout
