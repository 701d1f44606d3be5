"""Prometheus metrics of one API process, served at ``GET /metrics`` in the text format.

Two kinds of figures:

- **Measured in this process**: claim and ask latency (histograms) and leases the reaper failed (a counter).
  Each API replica has its own; Prometheus sums them across replicas (``sum(rate(...))``).
- **Read from the database at scrape time**: trials by study and state, live leases, active workers
  (plus the idle workers that asked this process: an idle claim writes nothing), schedule runs by
  outcome. Every replica answers the same, because the database is the one truth; aggregate them with
  ``max``, not ``sum`` (idle workers are each replica's own: ``max`` undercounts them a little).
  When the database is away those gauges are left out and ``hps_database_up`` says 0, so the process's own
  figures can still be scraped.

Each :class:`Metrics` has its own ``CollectorRegistry`` (never the global one), so several apps in one
process — the tests — never clash over metric names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.orm import Session

from hps.server.clock import utcnow
from hps.server.errors import DomainError, ServiceUnavailable
from hps.server.store.database import Database
from hps.server.store.schedules import count_runs_by_outcome
from hps.server.store.trials import CostSums, Progress, StudyTrialCounts, TrialRepository
from hps.server.store.workers import WorkerRepository

# A worker counts as active when it asked for work this recently (or holds a live lease).
ACTIVE_WORKER_WINDOW = timedelta(minutes=1)
# The trial states of ``hps_trials``: Progress's buckets, so that all but ``retried`` sum to what the
# budget counts.
TRIAL_STATES = tuple(field.name for field in fields(Progress))


@dataclass
class Timing:
    """The outcome of one timed call, set by the caller before the ``with`` block ends."""

    outcome: str


@dataclass(frozen=True, slots=True)
class DatabaseFigures:
    """What the database says at one scrape."""

    trials: list[StudyTrialCounts]
    costs: dict[int, CostSums]
    live_leases: int
    active_workers: set[str]
    schedule_runs: dict[str, int]


def read_figures(db: Database) -> DatabaseFigures:
    """One read-only unit of work with every database gauge."""

    def work(session: Session) -> DatabaseFigures:
        now = utcnow()
        trials = TrialRepository(session)
        counts = trials.counts_by_study()
        return DatabaseFigures(
            trials=counts,
            costs=trials.cost_sums([study.study_id for study in counts]),
            live_leases=trials.count_live_leases(now),
            active_workers=WorkerRepository(session).active(now - ACTIVE_WORKER_WINDOW, now),
            schedule_runs=count_runs_by_outcome(session),
        )

    return db.run(work, write=False)


class DatabaseCollector:
    """Gauges computed from the database when Prometheus scrapes (``collect`` runs per scrape)."""

    def __init__(self, read: Callable[[], DatabaseFigures], idle: Callable[[], set[str]]) -> None:
        self._read = read
        self._idle = idle

    def describe(self) -> Iterable[Metric]:
        """The metric names, without touching the database (the registry asks at registration)."""
        return [
            GaugeMetricFamily("hps_database_up", ""),
            GaugeMetricFamily("hps_trials", ""),
            GaugeMetricFamily("hps_active_leases", ""),
            GaugeMetricFamily("hps_active_workers", ""),
            GaugeMetricFamily("hps_schedule_runs", ""),
            *(GaugeMetricFamily(name, "") for name, _, _ in _COSTS),
        ]

    def collect(self) -> Iterable[Metric]:
        """The gauges as the database has them now; only ``hps_database_up 0`` when it is away."""
        up = GaugeMetricFamily("hps_database_up", "1 when this scrape could read the database, else 0.")
        try:
            figures = self._read()
        except ServiceUnavailable:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        trials = GaugeMetricFamily(
            "hps_trials",
            "Trials of each study by state (retried: failed attempts whose params got another attempt).",
            labels=["study_id", "study", "project", "state"],
        )
        for study in figures.trials:
            for state in TRIAL_STATES:
                labels = [str(study.study_id), study.name, study.project, state]
                trials.add_metric(labels, getattr(study.progress, state))
        leases = GaugeMetricFamily("hps_active_leases", "Running trials whose lease has not expired.")
        leases.add_metric([], figures.live_leases)
        workers = GaugeMetricFamily(
            "hps_active_workers",
            "Workers that asked for work in the last minute or hold a live lease.",
        )
        workers.add_metric([], len(figures.active_workers | self._idle()))
        # A gauge read from the run history rather than a per-process counter: exactly one replica
        # claims each due run, so only the database knows how many ran in all.
        runs = GaugeMetricFamily(
            "hps_schedule_runs",
            "Schedule runs recorded, by outcome (started, skipped, failed).",
            labels=["outcome"],
        )
        for outcome, count in sorted(figures.schedule_runs.items()):
            runs.add_metric([outcome], count)
        return [up, trials, leases, workers, runs, *_cost_gauges(figures)]


# What each study's finished trials cost together (hps.wire.costs), as gauges: name, help, CostSums field.
_COSTS = (
    (
        "hps_study_device_seconds",
        "Wall seconds the study's finished trials held their devices.",
        "device_seconds",
    ),
    (
        "hps_study_gpu_seconds",
        "GPU-seconds (wall x GPUs held) of the study's finished trials.",
        "gpu_seconds",
    ),
    ("hps_study_samples", "Training samples the study's finished trials stepped on.", "samples"),
    (
        "hps_study_money",
        "Money the study's finished trials cost at the price set when each finished.",
        "money",
    ),
)


def _cost_gauges(figures: DatabaseFigures) -> list[Metric]:
    """One gauge per cost, one series per study that has a cost (money: per study with a priced trial)."""
    gauges: list[Metric] = []
    for name, text, field in _COSTS:
        gauge = GaugeMetricFamily(name, text, labels=["study_id", "study", "project"])
        for study in figures.trials:
            sums = figures.costs.get(study.study_id)
            if sums is None or sums.trials == 0 or (field == "money" and sums.priced == 0):
                continue
            gauge.add_metric([str(study.study_id), study.name, study.project], float(getattr(sums, field)))
        gauges.append(gauge)
    return gauges


class Metrics:
    """The metrics of one app: its own registry, the in-process figures, and the database gauges."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.claim_seconds = Histogram(
            "hps_claim_duration_seconds",
            "Time to answer POST /v1/workers/claim, by outcome (trial, none, refused, error).",
            labelnames=["outcome"],
            registry=self.registry,
        )
        self.ask_seconds = Histogram(
            "hps_ask_duration_seconds",
            "Time to answer POST /v1/studies/{id}/trials, by outcome (trial, refused, error).",
            labelnames=["outcome"],
            registry=self.registry,
        )
        self.reaped = Counter(
            "hps_reaped_leases",
            "Trials whose lease expired and that this process's reaper failed.",
            registry=self.registry,
        )
        # Workers that asked and were told there is nothing to do: an idle claim writes nothing to the
        # database, so this process remembers them (each replica the workers that asked it).
        self._idle_workers: dict[str, float] = {}
        self._idle_lock = threading.Lock()
        self.registry.register(DatabaseCollector(lambda: read_figures(db), self.idle_workers))

    def saw_idle_worker(self, worker_id: str) -> None:
        """A worker asked for work and there was none."""
        with self._idle_lock:
            if len(self._idle_workers) > 10_000:
                self._idle_workers.clear()  # bounded under a flood of worker ids
            self._idle_workers[worker_id] = time.monotonic()

    def idle_workers(self) -> set[str]:
        """The workers this process told "nothing to do" within the active-worker window."""
        horizon = time.monotonic() - ACTIVE_WORKER_WINDOW.total_seconds()
        with self._idle_lock:
            return {worker for worker, seen in self._idle_workers.items() if seen >= horizon}

    def count_reaped(self, reaped: int) -> None:
        """Called by the reaper after each round with how many trials it reaped."""
        self.reaped.inc(reaped)

    @contextmanager
    def time_claim(self) -> Iterator[Timing]:
        """Time a claim; the caller sets ``outcome`` to ``trial`` or ``none``."""
        with _timed(self.claim_seconds) as timing:
            yield timing

    @contextmanager
    def time_ask(self) -> Iterator[Timing]:
        """Time an ask (outcome ``trial`` unless it raises)."""
        with _timed(self.ask_seconds) as timing:
            yield timing

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (0.0.4)."""
        return generate_latest(self.registry)


@contextmanager
def _timed(histogram: Histogram) -> Iterator[Timing]:
    """Observe the block's duration under its outcome: what the caller set, ``refused`` for a domain
    error a client caused (4xx: budget spent, study not running), ``error`` for anything else."""
    timing = Timing(outcome="trial")
    started = time.perf_counter()
    try:
        yield timing
    except DomainError as error:
        timing.outcome = "refused" if error.status < 500 else "error"
        raise
    except Exception:
        timing.outcome = "error"
        raise
    finally:
        histogram.labels(outcome=timing.outcome).observe(time.perf_counter() - started)
