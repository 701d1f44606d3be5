"""Settings: read once from the environment (prefix ``HPS_``) and checked at start.

Nonsense values fail here, with a message naming the variable, rather than at 3 a.m. in a request.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SUPPORTED_SCHEMES = ("sqlite", "postgresql")


class ConfigError(Exception):
    """The environment holds a setting hps cannot start with."""


class Settings(BaseSettings):
    """Everything an operator can set. One instance per process, built by :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="HPS_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("./var"), description="Where the SQLite file and caches live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in the data dir."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token with every right; `hps serve` makes one if unset."
    )
    registry: Path | None = Field(
        default=None, description="YAML file registering models and datasets (see workers/registry.py)."
    )
    lease_seconds: float = Field(default=120.0, gt=0, le=86_400)
    reaper_interval_seconds: float = Field(default=10.0, gt=0, le=3_600)
    sqlite_busy_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    rate_limit_per_second: float = Field(
        default=100.0, ge=0, description="Requests per second per token (0 turns the limit off)."
    )
    rate_limit_burst: int = Field(default=200, ge=1)
    auth_failure_rate_per_second: float = Field(
        default=1.0,
        ge=0,
        description="Failed authentications per second per client address (0 turns the limit off).",
    )
    auth_failure_burst: int = Field(default=30, ge=1)
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser; none by default."
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    scheduler_interval_seconds: float = Field(
        default=30.0, gt=0, le=3_600, description="How often each server looks for due schedule slots."
    )
    scheduler_misfire_grace_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="A slot found later than this is missed (the schedule's misfire policy applies).",
    )
    price_per_gpu_hour: float | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="What one GPU-hour costs (any currency): each trial's GPU-seconds become money at this "
        "price when it completes; unset, trials carry no money.",
    )
    scheduler_fixed_now: datetime | None = Field(
        default=None, description="Tests only: schedules and the scheduler read this moment as the time."
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is None or url.strip() == "":
            return None
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in SUPPORTED_SCHEMES or "://" not in url:
            raise ValueError(f"must be a sqlite:/// or postgresql:// URL, got scheme {scheme!r}")
        return url

    @model_validator(mode="after")
    def _grace_covers_interval(self) -> Self:
        if self.scheduler_misfire_grace_seconds < self.scheduler_interval_seconds:
            raise ValueError(
                f"HPS_SCHEDULER_MISFIRE_GRACE_SECONDS ({self.scheduler_misfire_grace_seconds}) must be "
                f"at least HPS_SCHEDULER_INTERVAL_SECONDS ({self.scheduler_interval_seconds}), or slots "
                "a tick finds on time would count as missed"
            )
        if self.scheduler_fixed_now is not None and self.scheduler_fixed_now.tzinfo is None:
            raise ValueError("HPS_SCHEDULER_FIXED_NOW needs a time zone, e.g. 2026-03-29T00:00:00Z")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL with defaults applied and PostgreSQL pinned to psycopg 3."""
        if self.database_url is None:
            return f"sqlite:///{(self.data_dir / 'hps.db').resolve()}"
        if self.database_url.startswith("postgresql://"):
            return "postgresql+psycopg://" + self.database_url.removeprefix("postgresql://")
        return self.database_url


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise :class:`ConfigError` with a readable message if it is wrong."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "HPS_" + "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}: {error['msg']}" if error["loc"] else error["msg"])
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
    if settings.registry is not None and not settings.registry.is_file():
        raise ConfigError(f"HPS_REGISTRY {settings.registry} is not a file")
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"HPS_DATA_DIR {settings.data_dir} cannot be created: {exc}") from None
    return settings
