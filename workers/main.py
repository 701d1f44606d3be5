"""``hps worker``: one worker process from its command line, or one child per GPU (``--device all``)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hps.catalog.registry import RegistryError, load_registry
from hps.client.http import HpsClient
from hps.workers.devices import visible_cuda_devices
from hps.workers.faults import fault_from_environment
from hps.workers.logs import configure_logging
from hps.workers.loop import Worker, WorkerOptions

log = logging.getLogger("hps.worker")


@dataclass(frozen=True)
class WorkerCommand:
    """The options of ``hps worker``."""

    api: str
    token: str
    device: str
    max_trials: int | None
    once: bool
    tasks: tuple[str, ...]
    registry: Path | None
    data_dir: Path
    worker_id: str | None
    threads: int | None
    log_json: bool


def run_worker_command(command: WorkerCommand) -> int:
    """Run one worker, or supervise one per visible GPU; returns the exit code."""
    configure_logging(json_lines=command.log_json)
    if command.device == "all":
        gpus = visible_cuda_devices()
        if not gpus:
            log.info("--device all: no GPU is visible; running one worker on the CPU")
            return _run_one(command, "cpu")
        return _supervise(command, gpus)
    return _run_one(command, command.device)


def _run_one(command: WorkerCommand, device: str) -> int:
    import torch

    if command.threads is not None:
        torch.set_num_threads(command.threads)
    try:
        registry = load_registry(command.registry)
    except RegistryError as exc:
        log.error("%s", exc)
        return 2
    try:
        fault_from_environment()
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    tasks = command.tasks or tuple(sorted(registry.tasks))
    unknown = [t for t in tasks if t not in registry.tasks]
    if unknown:
        log.error("unknown task(s) %s; registered: %s", ", ".join(unknown), ", ".join(sorted(registry.tasks)))
        return 2
    options = WorkerOptions(
        worker_id=command.worker_id or f"{socket.gethostname()}-{os.getpid()}-{device}",
        device=device,
        cache_dir=command.data_dir / "cache",
        tasks=tasks,
        max_trials=command.max_trials,
        once=command.once,
    )
    try:
        with HpsClient(command.api, command.token) as client:
            worker = Worker(client, registry, options)
            worker.install_signal_handlers()
            log.info(
                "worker %s on %s for tasks %s at %s", options.worker_id, device, ", ".join(tasks), command.api
            )
            return worker.run()
    except ValueError as exc:  # a device that does not exist, for instance
        log.error("%s", exc)
        return 2


def _supervise(command: WorkerCommand, gpus: list[str]) -> int:
    """One child process per GPU; signals are passed on, and the worst exit code is returned."""
    children = []
    for gpu in gpus:
        args = [sys.executable, "-m", "hps.cli", "worker", "--device", gpu, "--api", command.api]
        args += ["--data-dir", str(command.data_dir), "--log-format", "json" if command.log_json else "text"]
        if command.max_trials is not None:
            args += ["--max-trials", str(command.max_trials)]
        if command.once:
            args.append("--once")
        if command.tasks:
            args += ["--tasks", ",".join(command.tasks)]
        if command.registry is not None:
            args += ["--registry", str(command.registry)]
        if command.threads is not None:
            args += ["--threads", str(command.threads)]
        children.append(subprocess.Popen(args, env={**os.environ, "HPS_TOKEN": command.token}))

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("started %d workers, one per GPU: %s", len(children), ", ".join(gpus))
    return max(child.wait() for child in children)
