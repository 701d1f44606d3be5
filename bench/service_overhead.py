"""What does the REST path cost against plain Optuna on the same storage?

For SQLite and PostgreSQL, 1 and 4 concurrent clients, random and TPE samplers: run N trials of a
trivial objective (a) with plain in-process Optuna (`study.ask` / `study.tell`, one process per client)
and (b) through a real `hps serve` process (ask → complete over HTTP, one process per client), on the
same database, in the same run. Prints trials/s and p50/p99 latency of one trial, and hps/Optuna ratios.

    python bench/service_overhead.py [--trials 300] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import psycopg

# The test harness (server processes) is reused from tests/, which is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.processes import ServerProcess
from hps.client.http import HpsClient
from hps.search_spaces import compile_space, load_preset
from hps.server.store.schema import upgrade

TOKEN = "bench-token"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SPACE = compile_space(load_preset("adam"))


def objective(params: dict[str, Any]) -> float:
    """Trivial: the distance of lr from 1e-3 on a log scale, plus a little of beta1."""
    import math

    return abs(math.log10(float(params["lr"])) + 3.0) + 0.1 * float(params["beta1"])


@dataclass
class Result:
    trials: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.trials / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def optuna_client(url: str, study_name: str, sampler: str, n: int, queue: Any) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = optuna.samplers.RandomSampler() if sampler == "random" else optuna.samplers.TPESampler()
    study = optuna.load_study(study_name=study_name, storage=url, sampler=made)
    latencies, start = [], time.perf_counter()
    for _ in range(n):
        began = time.perf_counter()
        trial = study.ask()
        params = SPACE.suggest(trial)
        study.tell(trial, objective(params))
        latencies.append(time.perf_counter() - began)
    queue.put((start, time.perf_counter(), latencies))


def hps_client(base_url: str, study_id: int, n: int, queue: Any) -> None:
    latencies = []
    with HpsClient(base_url, TOKEN) as client:
        start = time.perf_counter()
        for _ in range(n):
            began = time.perf_counter()
            trial = client.ask(study_id)
            client.complete(study_id, trial.number, objective(trial.params))
            latencies.append(time.perf_counter() - began)
    queue.put((start, time.perf_counter(), latencies))


def run_clients(target: Any, args: tuple[Any, ...], clients: int, n: int) -> Result:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    per_client = n // clients
    processes = [context.Process(target=target, args=(*args, per_client, queue)) for _ in range(clients)]
    for process in processes:
        process.start()
    outcomes = [queue.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join()
    # Each client times its own loop (after its imports and connection setup).
    start = min(o[0] for o in outcomes)
    end = max(o[1] for o in outcomes)
    latencies = [lat for o in outcomes for lat in o[2]]
    return Result(per_client * clients, end - start, latencies)


def bench_optuna(url: str, sampler: str, clients: int, n: int) -> Result:
    name = f"optuna-{sampler}-{clients}-{uuid.uuid4().hex[:6]}"
    optuna.create_study(study_name=name, storage=url)
    return run_clients(optuna_client, (url, name, sampler), clients, n)


def bench_hps(base_url: str, sampler: str, clients: int, n: int) -> Result:
    spec = {
        "name": f"hps-{sampler}-{clients}-{uuid.uuid4().hex[:6]}",
        "search_space": {"preset": "adam"},
        "sampler": {"name": sampler},
        "pruner": {"name": "none"},
        "budget": {"n_trials": n},
    }
    with HpsClient(base_url, TOKEN) as client:
        study_id = client.create_study(spec).id
    return run_clients(hps_client, (base_url, study_id), clients, n)


@contextmanager
def database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'bench.db'}"
        return
    name = f"hps_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--samplers", nargs="+", default=["random", "tpe"])
    args = parser.parse_args()
    rows = []
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
            upgrade(url)
            env = {"HPS_DATABASE_URL": url, "HPS_ADMIN_TOKEN": TOKEN, "HPS_DATA_DIR": tmp}
            server = ServerProcess(env, Path(tmp) / "server.log")
            try:
                base_url = server.wait_ready()
                for clients in args.clients:
                    for sampler in args.samplers:
                        plain = bench_optuna(url, sampler, clients, args.trials)
                        ours = bench_hps(base_url, sampler, clients, args.trials)
                        rows.append((backend, clients, sampler, plain, ours))
                        report_row(*rows[-1])
            finally:
                server.stop()
    print("\nSummary (ratio = hps / plain Optuna; throughput > 1 and latency < 1 favour hps)")
    for row in rows:
        report_row(*row)


def report_row(backend: str, clients: int, sampler: str, plain: Result, ours: Result) -> None:
    def describe(result: Result) -> str:
        p50, p99 = result.percentile(0.5), result.percentile(0.99)
        return f"{result.rate:6.1f} trials/s p50 {p50:6.1f} ms p99 {p99:6.1f} ms"

    throughput = ours.rate / plain.rate
    latency = ours.percentile(0.5) / plain.percentile(0.5)
    print(
        f"{backend:10} clients={clients} {sampler:6} optuna {describe(plain)} | hps {describe(ours)} | "
        f"throughput x{throughput:4.2f}  p50 x{latency:4.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
