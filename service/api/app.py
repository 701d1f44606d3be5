"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import optuna
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from optuna.storages import RDBStorage

from hps.catalog.registry import load_registry
from hps.server.api.context import Hub
from hps.server.api.dashboard import install_dashboard
from hps.server.api.docs import install_docs
from hps.server.api.errors import install_error_handlers
from hps.server.api.limits import BodyLimit, RateLimits
from hps.server.api.openapi import install_openapi
from hps.server.api.routes import (
    catalog,
    health,
    metrics,
    optuna_storage,
    range_tests,
    schedules,
    studies,
    tokens,
    trials,
    workers,
)
from hps.server.clock import utcnow
from hps.server.config import Settings
from hps.server.metrics import Metrics
from hps.server.optuna_storage import OptunaStorageService
from hps.server.reaper import run_reaper
from hps.server.sampling import Sampling
from hps.server.schedules.scheduler import run_scheduler
from hps.server.store.database import Database
from hps.server.store.schema import prepare

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """An app serving API.md over the database in ``settings``. The database is prepared (SQLite
    migrated, PostgreSQL checked) when the app starts, not when it is built."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        prepare(url)
        db = Database(
            url,
            busy_timeout_s=settings.sqlite_busy_timeout_seconds,
            pool_size=settings.db_pool_size,
        )
        sampling = Sampling(url, engine_kwargs=_optuna_engine_kwargs(settings, url))
        optuna_backend = RDBStorage(
            url, engine_kwargs=_optuna_engine_kwargs(settings, url), skip_table_creation=True
        )
        app.state.optuna_storage = OptunaStorageService(db, optuna_backend)
        registry = load_registry(settings.registry)
        recorder = Metrics(db)  # per app: several apps in one process never share a registry
        limits = RateLimits(
            settings.rate_limit_per_second,
            settings.rate_limit_burst,
            settings.auth_failure_rate_per_second,
            settings.auth_failure_burst,
        )
        app.state.hub = Hub(
            settings=settings, db=db, sampling=sampling, registry=registry, metrics=recorder, limits=limits
        )
        stop_reaper = asyncio.Event()
        reaper = asyncio.create_task(
            run_reaper(db, sampling, settings.reaper_interval_seconds, stop_reaper, recorder.count_reaped),
            name="hps-reaper",
        )
        stop_scheduler = asyncio.Event()
        scheduler = asyncio.create_task(
            run_scheduler(
                db,
                registry,
                settings.scheduler_interval_seconds,
                settings.scheduler_misfire_grace_seconds,
                stop_scheduler,
                clock=_scheduler_clock(settings),
            ),
            name="hps-scheduler",
        )
        try:
            yield
        finally:
            stop_reaper.set()
            stop_scheduler.set()
            await reaper
            await scheduler
            sampling.close()
            optuna_backend.engine.dispose()
            db.dispose()

    # hps writes Optuna's rows itself; Optuna's own INFO lines would come only from the in-memory
    # rehearsal of each new study (hps.server.strategies.rehearse) and say nothing about real trials.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    app = FastAPI(
        title="hps",
        version="1",
        summary="Hyperparameter search for the optimizer of a fine-tuning run.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    for router in (
        studies.router,
        schedules.router,
        trials.router,
        range_tests.router,
        workers.router,
        catalog.router,
        tokens.router,
        health.router,
        metrics.router,
        optuna_storage.router,
    ):
        app.include_router(router)
    install_openapi(app)
    install_docs(app)
    install_dashboard(app, _optuna_engine_kwargs)  # last: it answers only what no route above matched
    return app


def _scheduler_clock(settings: Settings) -> Callable[[], datetime]:
    fixed = settings.scheduler_fixed_now
    if fixed is None:
        return utcnow
    return lambda: fixed  # HPS_SCHEDULER_FIXED_NOW: tests put the server at a chosen moment


def _optuna_engine_kwargs(settings: Settings, url: str) -> dict[str, object]:
    # Parameters stay out of error messages and logs: they can hold a token's hash or a user's data.
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": settings.sqlite_busy_timeout_seconds}, "hide_parameters": True}
    return {
        "pool_pre_ping": True,
        "pool_size": settings.db_pool_size,
        "connect_args": {"connect_timeout": 5},
        "hide_parameters": True,
    }
