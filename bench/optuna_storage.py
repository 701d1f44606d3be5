"""hps as a remote Optuna storage, against Optuna's own storages on the same PostgreSQL.

One unchanged Optuna program (TPE, define-by-run, `study.optimize`, a trivial objective) runs in
`--processes` processes for `--trials` trials in all, three times in one run, each on a fresh study in
the same PostgreSQL database:

- `rdb`:  `storage="postgresql+psycopg://..."` (Optuna's RDBStorage, holding the database's password),
- `hps`:  `storage=HpsStorage(url, token=...)` through a real `hps serve` on that database,
- `grpc`: `storage=GrpcStorageProxy(host, port)` through Optuna's `run_grpc_proxy_server` on that database.

Prints trials/s of each and the ratios hps/rdb (goal ≥ 0.8) and hps/grpc (goal ≥ 5).

    python bench/optuna_storage.py [--trials 300] [--processes 4] [--only rdb hps grpc]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import psycopg

# The test harness (server processes) is reused from tests/, which is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.ports import free_port
from harness.processes import ServerProcess
from hps.server.store.schema import upgrade

TOKEN = "bench-token"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def objective(trial: optuna.Trial) -> float:
    """Define-by-run and conditional, like an optimizer search: the same for every storage."""
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    if optimizer == "sgd":
        extra = trial.suggest_float("momentum", 0.0, 0.99)
    else:
        extra = trial.suggest_float("beta1", 0.8, 0.99)
    return abs(math.log10(lr) + 3.0) + 0.1 * extra


def make_storage(kind: str, where: str) -> Any:
    """The program's one changed line: its ``storage=`` argument."""
    if kind == "rdb":
        return where
    if kind == "hps":
        from hps.optuna import HpsStorage

        return HpsStorage(where, token=TOKEN)
    from optuna.storages import GrpcStorageProxy

    host, port = where.rsplit(":", 1)
    return GrpcStorageProxy(host=host, port=int(port))


def program(kind: str, where: str, study_name: str, n: int, queue: Any) -> None:
    """The Optuna program, as a user writes it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name, storage=make_storage(kind, where), sampler=optuna.samplers.TPESampler()
    )
    start = time.perf_counter()
    study.optimize(objective, n_trials=n)
    queue.put((start, time.perf_counter()))


def run(kind: str, where: str, trials: int, processes: int) -> float:
    """Trials/s of ``processes`` processes sharing one new study, timed from the first start to the last end
    (imports and connecting excluded)."""
    name = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    optuna.create_study(study_name=name, storage=make_storage(kind, where))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    per = trials // processes
    workers = [
        context.Process(target=program, args=(kind, where, name, per, queue)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans = [queue.get(timeout=3600) for _ in workers]
    for worker in workers:
        worker.join()
    return per * processes / (max(s[1] for s in spans) - min(s[0] for s in spans))


@contextmanager
def postgres() -> Iterator[str]:
    name = f"hps_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextmanager
def hps_server(url: str, directory: Path) -> Iterator[str]:
    # An Optuna program makes several storage calls per trial: the per-token rate limit is off here,
    # as an operator sets it for Optuna clients (docs/optuna.md).
    env = {
        "HPS_DATABASE_URL": url,
        "HPS_ADMIN_TOKEN": TOKEN,
        "HPS_DATA_DIR": str(directory),
        "HPS_RATE_LIMIT_PER_SECOND": "0",
    }
    server = ServerProcess(env, directory / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def _serve_grpc(url: str, port: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.storages.run_grpc_proxy_server(optuna.storages.RDBStorage(url), host="127.0.0.1", port=port)


@contextmanager
def grpc_proxy(url: str) -> Iterator[str]:
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve_grpc, args=(url, port), daemon=True)
    process.start()
    try:
        time.sleep(3.0)  # the proxy has no readiness probe; it serves within a second or two
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--only", nargs="+", default=["rdb", "hps", "grpc"], choices=["rdb", "hps", "grpc"])
    args = parser.parse_args()
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, postgres() as url:
        upgrade(url)
        optuna.storages.RDBStorage(url)  # Optuna's own tables exist already; this checks their version
        places: dict[str, Callable[[], Any]] = {
            "rdb": lambda: _fixed(url),
            "hps": lambda: hps_server(url, Path(tmp)),
            "grpc": lambda: grpc_proxy(url),
        }
        for kind in args.only:
            with places[kind]() as where:
                rates[kind] = run(kind, where, args.trials, args.processes)
            print(f"{kind:5} {rates[kind]:7.1f} trials/s", flush=True)
    print(f"\n{args.trials} trials, TPE, {args.processes} processes, PostgreSQL")
    if "hps" in rates and "rdb" in rates:
        print(f"hps / RDBStorage      x{rates['hps'] / rates['rdb']:.2f}  (goal >= 0.8)")
    if "hps" in rates and "grpc" in rates:
        print(f"hps / gRPC proxy      x{rates['hps'] / rates['grpc']:.2f}  (goal >= 5)")


@contextmanager
def _fixed(value: str) -> Iterator[str]:
    yield value


if __name__ == "__main__":
    main()
