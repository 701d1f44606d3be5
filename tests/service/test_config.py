"""Settings are read from HPS_* variables and nonsense fails at start with a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from hps.server.config import ConfigError, load_settings


def test_defaults_put_sqlite_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPS_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("HPS_DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'var' / 'hps.db').resolve()}"
    assert (tmp_path / "var").is_dir()


def test_postgresql_urls_use_psycopg3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HPS_DATABASE_URL", "postgresql://u@db/hps")
    assert load_settings().resolved_database_url == "postgresql+psycopg://u@db/hps"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("HPS_LEASE_SECONDS", "-5", "HPS_LEASE_SECONDS"),
        ("HPS_LEASE_SECONDS", "soon", "HPS_LEASE_SECONDS"),
        ("HPS_DATABASE_URL", "mysql://x/y", "HPS_DATABASE_URL"),
        ("HPS_REAPER_INTERVAL_SECONDS", "0", "HPS_REAPER_INTERVAL_SECONDS"),
    ],
)
def test_nonsense_fails_naming_the_variable(
    variable: str, value: str, words: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=words):
        load_settings()


def test_a_data_dir_that_cannot_exist_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("HPS_DATA_DIR", str(blocker / "var"))
    with pytest.raises(ConfigError, match="HPS_DATA_DIR"):
        load_settings()
