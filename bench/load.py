"""Do API replicas hold load together? Several `hps serve` processes on one PostgreSQL database (a
database of its own), external clients spread over them running ask -> report -> complete, and real
`hps worker` processes claiming `quadratic` trials, for a fixed time. Bounded and loopback only.

Prints trials/s, p50/p99 latency per route, errors by route and status, then checks what must hold
whatever the speed: no 5xx, no transport error, exact budgets (studies whose budget ran out hold exactly
n_trials trials, none holds more), and no lost report (every report and completion a client got a 200 for
is in the database). With several --replicas values, also the throughput ratio against the first.

    python bench/load.py        # 1 then 3 replicas, 50 clients, 8 workers, 120 s each
    python bench/load.py --replicas 3 --duration 20 --clients 10 --workers 2

tests/load/test_replicas_under_load.py runs a short version as a test of correctness (not of speed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# The test harness (databases, servers, workers, stopped by PID) is reused from tests/, not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.databases import postgres_database
from harness.processes import ManagedProcess
from harness.servers import ADMIN_TOKEN, RunningServer, start_server
from harness.workers import resident_memory_mb, start_worker
from hps.server.store.schema import upgrade

REPORTS_PER_TRIAL = 3
EXTERNAL_BUDGET = 100  # trials per external study (default): 50 clients use one up in seconds
TASK_BUDGET = 40  # trials per quadratic study the workers claim from
OPEN_STUDIES = 4  # external studies open at once: clients contend for the same budget row
# The servers' per-token rate limit is off: every client here shares the admin token, and the limiter
# has tests of its own (tests/api/test_rate_limits.py); this measures the replicas, not the limiter.
MAX_OVERTIME_S = 120.0
SERVER_ENV = {"HPS_RATE_LIMIT_PER_SECOND": "0", "HPS_LOG_LEVEL": "warning"}
ROUTES = ("ask", "report", "complete")


@dataclass
class Load:
    """What one run does."""

    replicas: int
    clients: int
    workers: int
    duration_s: float
    external_budget: int = EXTERNAL_BUDGET
    # A test's run goes on past ``duration_s`` (up to ``MAX_OVERTIME_S``) until this many external budgets
    # are spent, so that it checks budgets under contention however slow the machine is that day.
    min_exhausted: int = 0


@dataclass
class Outcome:
    """What one run measured and what the database holds afterwards."""

    load: Load
    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    transport_errors: Counter[str] = field(default_factory=Counter)
    # What the clients were told was stored: (study, trial) -> reported steps and values, completed value.
    reported: dict[tuple[int, int], dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    completed: dict[tuple[int, int], float] = field(default_factory=dict)
    exhausted: set[int] = field(default_factory=set)
    trials_by_replica: Counter[str] = field(default_factory=Counter)
    external_studies: list[int] = field(default_factory=list)
    task_studies: list[int] = field(default_factory=list)
    worker_trials: int = 0
    server_rss_mb: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0  # CPU time the replicas used in the window, all of them together
    client_cpu_s: float = 0.0  # ... and this load generator (the 50 clients share one process)
    problems: list[str] = field(default_factory=list)

    @property
    def external_trials(self) -> int:
        return len(self.completed)

    def percentile_ms(self, route: str, q: float) -> float:
        ordered = sorted(self.latencies[route])
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    def errors(self) -> dict[str, int]:
        """Answers that are not success (2xx) and not the expected 409 of a spent budget, by route:status."""
        found = {f"{route}:{code}": n for route, codes in self.statuses.items() for code, n in codes.items()}
        return {
            key: n for key, n in found.items() if not key.endswith((":200", ":201")) and key != "ask:409"
        } | {f"transport:{kind}": n for kind, n in self.transport_errors.items()}

    def server_errors(self) -> int:
        return sum(n for codes in self.statuses.values() for code, n in codes.items() if code >= 500)


def external_spec(seed: int, n_trials: int) -> dict[str, Any]:
    """An external (task-less) study: random sampling, so that what is measured is the service."""
    return {
        "name": f"load-ext-{uuid.uuid4().hex[:10]}",
        "direction": "maximize",
        "metric": "accuracy",
        "search_space": {"params": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "scale": "log"}}},
        "sampler": {"name": "random", "seed": seed},
        "pruner": {"name": "none"},
        "budget": {"n_trials": n_trials},
    }


def task_spec(seed: int) -> dict[str, Any]:
    """A `quadratic` study for the workers: trials of 3 epochs x 10 steps, milliseconds of training."""
    return {
        "name": f"load-task-{uuid.uuid4().hex[:10]}",
        "task": {"name": "quadratic", "epochs": 3, "max_steps_per_epoch": 10},
        "search_space": {"preset": "adam"},
        "sampler": {"name": "random", "seed": seed},
        "pruner": {"name": "none"},
        "budget": {"n_trials": TASK_BUDGET},
    }


class StudyPool:
    """The external studies open for asking. A client that is told a budget is spent retires that study,
    and a fresh one is made so that OPEN_STUDIES stay open."""

    def __init__(self, admin: httpx.AsyncClient, outcome: Outcome) -> None:
        self.admin = admin
        self.outcome = outcome
        self.open: list[int] = []
        self.lock = asyncio.Lock()

    async def fill(self) -> None:
        async with self.lock:
            while len(self.open) < OPEN_STUDIES:
                made = await self.admin.post(
                    "/v1/studies",
                    json=external_spec(len(self.outcome.external_studies), self.outcome.load.external_budget),
                )
                made.raise_for_status()
                self.open.append(int(made.json()["id"]))
                self.outcome.external_studies.append(self.open[-1])

    async def retire(self, study_id: int) -> None:
        self.outcome.exhausted.add(study_id)
        if study_id in self.open:
            self.open.remove(study_id)
        await self.fill()


async def timed(outcome: Outcome, route: str, call: Any) -> httpx.Response | None:
    """Send one request; record its latency and status, or the transport error."""
    began = time.perf_counter()
    try:
        answer: httpx.Response = await call
    except httpx.HTTPError as exc:
        outcome.transport_errors[type(exc).__name__] += 1
        return None
    outcome.latencies[route].append(time.perf_counter() - began)
    outcome.statuses[route][answer.status_code] += 1
    return answer


def window_open(outcome: Outcome, until: float) -> bool:
    """Whether clients go on: until the run's duration, then while too few budgets are spent."""
    now = time.monotonic()
    if now < until:
        return True
    return len(outcome.exhausted) < outcome.load.min_exhausted and now < until + MAX_OVERTIME_S


async def external_client(base_url: str, pool: StudyPool, outcome: Outcome, until: float, seed: int) -> None:
    """Ask, report REPORTS_PER_TRIAL values, complete; again until the time is up (a trial started is
    always finished, so no trial is left running)."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60.0) as http:
        while window_open(outcome, until):
            if not pool.open:
                await pool.fill()
            study_id = rng.choice(pool.open)
            asked = await timed(outcome, "ask", http.post(f"/v1/studies/{study_id}/trials"))
            if asked is None or asked.status_code != 201:
                if asked is not None and asked.status_code == 409:
                    await pool.retire(study_id)
                continue
            number = int(asked.json()["number"])
            for step in range(1, REPORTS_PER_TRIAL + 1):
                value = rng.random()
                path = f"/v1/studies/{study_id}/trials/{number}/reports"
                reported = await timed(
                    outcome, "report", http.post(path, json={"step": step, "value": value})
                )
                if reported is not None and reported.status_code == 200:
                    outcome.reported[(study_id, number)][step] = value
            value = rng.random()
            path = f"/v1/studies/{study_id}/trials/{number}/complete"
            done = await timed(
                outcome, "complete", http.post(path, json={"state": "complete", "value": value})
            )
            if done is not None and done.status_code == 200:
                outcome.completed[(study_id, number)] = value
                outcome.trials_by_replica[base_url] += 1


async def keep_task_studies_open(admin: httpx.AsyncClient, outcome: Outcome, until: float) -> None:
    """Keep two quadratic studies with budget left, so the workers always find work."""
    while time.monotonic() < until:
        left = 0
        for study_id in outcome.task_studies:
            shown = (await admin.get(f"/v1/studies/{study_id}")).json()
            left += shown["progress"]["remaining"] > 0
        for _ in range(max(0, 2 - left)):
            made = await admin.post("/v1/studies", json=task_spec(len(outcome.task_studies)))
            made.raise_for_status()
            outcome.task_studies.append(int(made.json()["id"]))
        await asyncio.sleep(0.5)


async def finished_worker_trials(admin: httpx.AsyncClient, outcome: Outcome) -> int:
    total = 0
    for study_id in outcome.task_studies:
        progress = (await admin.get(f"/v1/studies/{study_id}")).json()["progress"]
        total += progress["complete"] + progress["pruned"] + progress["diverged"]
    return total


async def drive(servers: list[RunningServer], outcome: Outcome, workers: list[ManagedProcess]) -> None:
    """The measured window: clients and workers together for the run's duration."""
    load = outcome.load
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=servers[0].base_url, headers=headers, timeout=60.0) as admin:
        pool = StudyPool(admin, outcome)
        await pool.fill()
        # Workers start (and import torch) before the window opens: wait until they all run trials.
        warm_until = time.monotonic() + 120
        feeder = asyncio.create_task(
            keep_task_studies_open(admin, outcome, warm_until + load.duration_s + MAX_OVERTIME_S + 5)
        )
        while load.workers and await finished_worker_trials(admin, outcome) < load.workers:
            assert time.monotonic() < warm_until, "the workers did not start running trials"
            for worker in workers:
                assert worker.popen.poll() is None, worker.output()
            await asyncio.sleep(0.5)
        before = await finished_worker_trials(admin, outcome)
        cpu_before, own_before = sum(cpu_seconds(s.process.pid) for s in servers), time.process_time()
        began = time.monotonic()
        until = began + load.duration_s
        clients = [
            external_client(servers[i % len(servers)].base_url, pool, outcome, until, seed=i)
            for i in range(load.clients)
        ]
        await asyncio.gather(*clients)
        outcome.seconds = time.monotonic() - began
        outcome.server_cpu_s = sum(cpu_seconds(s.process.pid) for s in servers) - cpu_before
        outcome.client_cpu_s = time.process_time() - own_before
        outcome.worker_trials = await finished_worker_trials(admin, outcome) - before
        feeder.cancel()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def verify(server: RunningServer, outcome: Outcome) -> None:
    """After the run: exact budgets and no lost report, read back from the database through the API."""
    with server.client() as client:
        for study_id in outcome.external_studies + outcome.task_studies:
            shown = client.get(f"/v1/studies/{study_id}").json()
            progress, budget = shown["progress"], shown["spec"]["budget"]["n_trials"]
            held = sum(progress[k] for k in ("complete", "pruned", "diverged", "failed", "running", "queued"))
            if held > budget:
                outcome.problems.append(f"study {study_id} holds {held} trials, over its budget {budget}")
            if progress["remaining"] == 0 and held != budget:
                outcome.problems.append(f"study {study_id} is spent with {held} trials, not {budget}")
            if study_id in outcome.exhausted and progress["remaining"] != 0:
                outcome.problems.append(f"study {study_id} said 409 with {progress['remaining']} left")
        for study_id in outcome.external_studies:
            stored = {t["number"]: t for t in trials(client, study_id)}
            ours = {number: value for (sid, number), value in outcome.completed.items() if sid == study_id}
            for number, value in ours.items():
                trial = stored.get(number)
                if trial is None or trial["state"] != "complete" or trial["value"] != value:
                    outcome.problems.append(f"study {study_id} trial {number}: completion lost ({trial})")
                    continue
                curve = {point["step"]: point["value"] for point in trial["intermediate_values"]}
                if curve != outcome.reported[(study_id, number)]:
                    outcome.problems.append(f"study {study_id} trial {number}: reports lost ({curve})")
            running = [n for n, t in stored.items() if t["state"] == "running"]
            if running:
                outcome.problems.append(f"study {study_id}: trials {running} left running")


def trials(client: httpx.Client, study_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/studies/{study_id}/trials", params=params).json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def run(load: Load, work_dir: Path) -> Outcome:
    """One run on a fresh PostgreSQL database; every process it starts is stopped by PID."""
    outcome = Outcome(load)
    with postgres_database() as url, ExitStack() as stack:
        upgrade(url)  # once, before the replicas start together (each would otherwise wait on the lock)
        with ThreadPoolExecutor(load.replicas) as pool:
            starting = [
                pool.submit(start_server, url, work_dir / f"replica{i}", **SERVER_ENV)
                for i in range(load.replicas)
            ]
        for started in starting:  # every server that started is stopped, even if another one failed
            if started.exception() is None:
                stack.callback(started.result().process.stop)
        servers = [started.result() for started in starting]
        workers = [
            start_worker(
                servers[i % len(servers)],
                f"load-w{i}",
                "--tasks",
                "quadratic",
                once=False,
                env={"OMP_NUM_THREADS": "1"},
            )
            for i in range(load.workers)
        ]
        for worker in workers:
            stack.callback(worker.stop, 30.0)
        asyncio.run(drive(servers, outcome, workers))
        outcome.server_rss_mb = [resident_memory_mb(server.process.pid) for server in servers]
        # SIGTERM to all at once: each hands its trial back (re-queued); the budgets must still add up.
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            if (code := worker.wait(60.0)) != 0:
                outcome.problems.append(f"worker exited with {code} on SIGTERM:\n{worker.output()[-2000:]}")
            worker.stop()
        verify(servers[0], outcome)
        if outcome.server_errors() or outcome.transport_errors:
            for server in servers:
                outcome.problems.append(f"server log tail:\n{server.process.output()[-3000:]}")
    return outcome


def print_outcome(outcome: Outcome) -> None:
    load = outcome.load
    rate = outcome.external_trials / outcome.seconds
    worker_rate = outcome.worker_trials / outcome.seconds
    print(
        f"\n{load.replicas} replica(s), {load.clients} clients, {load.workers} workers, "
        f"{outcome.seconds:.0f} s: "
        f"{rate:.1f} external trials/s ({outcome.external_trials}), {worker_rate:.1f} worker trials/s "
        f"({outcome.worker_trials}), {len(outcome.exhausted)} budgets spent"
    )
    for route in ROUTES:
        count = len(outcome.latencies[route])
        p50, p99 = outcome.percentile_ms(route, 0.5), outcome.percentile_ms(route, 0.99)
        print(f"  {route:<9} {count:>7} requests  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    rss = ", ".join(f"{mb:.0f}" for mb in outcome.server_rss_mb)
    print(f"  errors: {outcome.errors() or 'none'}; 5xx: {outcome.server_errors()}; replica RSS MB: {rss}")
    trials = outcome.external_trials + outcome.worker_trials
    cores = outcome.server_cpu_s / outcome.seconds
    per_trial_ms = 1000 * outcome.server_cpu_s / max(1, trials)
    print(
        f"  CPU in the window: replicas {outcome.server_cpu_s:.0f} s ({cores:.2f} cores, {per_trial_ms:.0f} "
        f"ms per trial), load generator {outcome.client_cpu_s:.0f} s; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  checks: {'exact budgets, no lost report' if not outcome.problems else outcome.problems}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--duration", type=float, default=120.0, help="Seconds of load per run.")
    parser.add_argument("--budget", type=int, default=EXTERNAL_BUDGET, help="Trials per external study.")
    parser.add_argument("--work-dir", type=Path, default=Path("var/bench-load"))
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}")
    outcomes = []
    for replicas in args.replicas:
        load = Load(replicas, args.clients, args.workers, args.duration, args.budget)
        outcomes.append(run(load, args.work_dir / f"r{replicas}-{uuid.uuid4().hex[:6]}"))
        print_outcome(outcomes[-1])
    base = outcomes[0]
    for outcome in outcomes[1:]:
        ratio = (outcome.external_trials / outcome.seconds) / (base.external_trials / base.seconds)
        print(f"throughput {outcome.load.replicas} vs {base.load.replicas} replica(s): x{ratio:.2f}")
    return 1 if any(o.problems or o.server_errors() for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
