"""``hps demo``: the whole product on one machine in about a minute.

Starts the service on SQLite and worker processes, submits a study that tunes the `optimizers` preset
(SGD, Adam, AdamW, RMSprop, Adagrad, L-BFGS and their own hyperparameters) on the `digits` transfer task
with TPE and Hyperband, shows live progress, and prints the best params and a per-optimizer table.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from hps.catalog.trial_params import DEFAULT_OPTIMIZER
from hps.cli.watch import WatchFormat, watch
from hps.client.http import HpsClient
from hps.report.summary import summarize_by_optimizer
from hps.wire.studies import StudyOut
from hps.wire.trials import TrialOut

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def demo_spec(n_trials: int, n_workers: int) -> dict[str, Any]:
    """The demo study: metric and direction come from the task (val_accuracy, maximize)."""
    return {
        "name": f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}",
        "task": {"name": "digits"},
        "search_space": {"preset": "optimizers"},
        "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 8},
        "pruner": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
        "budget": {"n_trials": n_trials, "max_parallel": n_workers, "max_failed": 5},
    }


def run_demo(*, data_dir: Path, n_trials: int, n_workers: int) -> int:
    """Run the demo; returns the process exit code. SIGTERM stops it the way Ctrl-C does: the server
    and the workers are stopped before it exits."""
    signal.signal(signal.SIGTERM, _interrupt)
    # Wide enough for the per-optimizer table even when the output is not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 120)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "HPS_DATA_DIR": str(data_dir), "HPS_ADMIN_TOKEN": token, "HPS_TOKEN": token}
    env.pop("HPS_DATABASE_URL", None)  # the demo always runs on the embedded SQLite default
    with ExitStack() as processes:
        console.print(f"[bold]hps demo[/]: service on SQLite in {data_dir}, {n_workers} CPU worker(s)")
        url = _start_server(processes, env, data_dir)
        for index in range(n_workers):
            _start_worker(processes, env, data_dir, url, index)
        with HpsClient(url, token) as hps:
            study = hps.create_study(demo_spec(n_trials, n_workers))
            console.print(
                f"study {study.id} [cyan]{study.name}[/]: {study.spec['search_space'].get('description', '')}"
            )
            # The live view on a terminal; one line per change in a log.
            show = WatchFormat.live if console.is_terminal else WatchFormat.lines
            study = watch(hps, study.id, console, show=show, interval=0.5)
            trials = list(hps.trials(study.id))
        _print_results(console, study, trials)
    _print_next_steps(console, study, data_dir, token)
    return 0 if study.state == "completed" else 1


def _print_next_steps(console: Console, study: StudyOut, data_dir: Path, token: str) -> None:
    """Where the study is kept, and the commands that open it again: the dashboard, the report, Optuna."""
    hps = _command_path()
    database = data_dir / "hps.db"
    url = "http://127.0.0.1:8000"
    console.print()
    console.print("[bold]What next[/]")
    console.print(f"  The study is kept in the SQLite file {database}.")
    console.print("  Open it again with the dashboard (any user name; the token as the password):")
    console.print(
        f"    HPS_DATA_DIR={shlex.quote(str(data_dir))} HPS_ADMIN_TOKEN={token} {hps} serve", soft_wrap=True
    )
    console.print(f"    then {url}/dashboard/studies/{study.id}")
    console.print("  With that server running, the optimizer report as one HTML file:")
    console.print(f"    {hps} report {study.name} -o report.html --api {url} --token {token}", soft_wrap=True)
    console.print("  In Python, with Optuna alone:")
    storage = f"sqlite:///{database}"
    console.print(
        f'    optuna.load_study(study_name="{study.optuna_name}", storage="{storage}")', soft_wrap=True
    )


def _command_path() -> str:
    """How to call ``hps`` from here: the virtualenv's script, relative to the current directory if inside."""
    script = Path(sys.executable).with_name("hps")
    try:
        return f"./{script.relative_to(Path.cwd())}" if script.exists() else "hps"
    except ValueError:
        return str(script)


def _launch(processes: ExitStack, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    child = subprocess.Popen(
        args,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    processes.callback(_stop, child, handle)
    return child


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the demo dies, however the demo dies
    (even SIGKILL), so a killed demo never leaves a server or workers behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(child: subprocess.Popen[bytes], handle: Any) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    handle.close()


def _start_server(processes: ExitStack, env: dict[str, str], data_dir: Path) -> str:
    address = data_dir / "server.address"
    address.unlink(missing_ok=True)
    args = [sys.executable, "-m", "hps.cli", "serve", "--port", "0", "--address-file", str(address)]
    server = _launch(processes, [*args, "--log-level", "warning"], env, data_dir / "server.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited; see {data_dir / 'server.log'}")
        if address.exists() and _ready(address.read_text()):
            return address.read_text()
        time.sleep(0.2)
    raise SystemExit(f"the server did not become ready; see {data_dir / 'server.log'}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _start_worker(processes: ExitStack, env: dict[str, str], data_dir: Path, url: str, index: int) -> None:
    args = [sys.executable, "-m", "hps.cli", "worker", "--api", url, "--device", "cpu"]
    args += [
        "--threads",
        "1",
        "--tasks",
        "digits",
        "--data-dir",
        str(data_dir),
        "--worker-id",
        f"demo-{index}",
    ]
    _launch(processes, args, env, data_dir / f"worker-{index}.log")


def _print_results(console: Console, study: StudyOut, trials: list[TrialOut]) -> None:
    console.print(f"study {study.id} {study.state}: {study.state_reason or ''}")
    if study.best is not None:
        console.print(f"[bold]best {study.metric}[/] {study.best.value:.4f} (trial {study.best.number})")
        for name, value in study.best.params.items():
            console.print(f"  {name} = {value}")
    table = Table(title=f"per optimizer ({study.metric}, {study.direction})")
    for column in (
        "optimizer",
        "trials",
        "best",
        "median",
        "median epochs to converge",
        "median gap",
        "pruned",
        "diverged",
        "failed",
    ):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for row in summarize_by_optimizer(trials, study.direction, DEFAULT_OPTIMIZER):
        table.add_row(
            row.optimizer,
            str(row.trials),
            _fmt(row.best_value),
            _fmt(row.median_value),
            _fmt(row.median_convergence_epochs),
            _fmt(row.median_generalization_gap),
            str(row.pruned),
            str(row.diverged),
            str(row.failed),
        )
    console.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
