"""``hps worker``: one worker process from its command line, or one child per GPU (``--device all``)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hps.catalog.registry import RegistryError, load_registry
from hps.client.http import HpsClient
from hps.workers.devices import (
    PeakMemoryBook,
    device_kind,
    memory_capacity_mb,
    parse_device,
    trials_that_fit,
    visible_cuda_devices,
)
from hps.workers.faults import fault_from_environment
from hps.workers.logs import configure_logging
from hps.workers.loop import Worker, WorkerOptions

log = logging.getLogger("hps.worker")
# How often a supervisor looks for a first trial's measurement and for children that ended.
_TICK_SECONDS = 1.0


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
    trials_per_device: int = 1
    # The share of its device this process holds (set by a supervisor for its children: 1/N).
    device_share: float = 1.0


def run_worker_command(command: WorkerCommand) -> int:
    """Run one worker, or supervise several: one per visible GPU (``--device all``), times
    ``--trials-per-device``; returns the exit code."""
    configure_logging(json_lines=command.log_json)
    if command.device == "all":
        gpus = visible_cuda_devices()
        if not gpus:
            log.info("--device all: no GPU is visible; running on the CPU")
        devices = gpus or ["cpu"]
        if gpus or command.trials_per_device > 1:
            return _supervise(command, devices)
        return _run_one(command, "cpu")
    if command.trials_per_device > 1:
        return _supervise(command, [command.device])
    return _run_one(command, command.device)


def peak_book_path(data_dir: Path) -> Path:
    """Where workers keep measured peak memory per task (see ``PeakMemoryBook``)."""
    return data_dir / "peak-memory.json"


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
        device_share=command.device_share,
        peak_book=peak_book_path(command.data_dir),
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


def _supervise(command: WorkerCommand, devices: list[str]) -> int:
    """``--trials-per-device`` worker processes on each device; signals are passed on, and the worst exit
    code is returned. What fits is judged from the peak memory earlier trials of these tasks measured on
    this kind of device: N that cannot fit is refused at start. Where nothing was measured yet, one
    process per device starts alone; once its first trial has recorded a peak, the others that fit join
    it (fewer than N, with a warning, when N do not fit)."""
    wanted = command.trials_per_device
    book = PeakMemoryBook(peak_book_path(command.data_dir))
    pending: list[str] = []
    for device in devices:
        try:
            fit = _trials_that_fit(device, book, command.tasks)
        except ValueError as exc:  # a device that does not exist
            log.error("%s", exc)
            return 2
        if fit is not None and fit < wanted:
            log.error(
                "--trials-per-device %d cannot fit on %s: %s; at most %d fit",
                wanted,
                device,
                _measured(device, book, command.tasks),
                fit,
            )
            return 2
        if fit is None and wanted > 1:
            pending.append(device)
    group = _Children(command)
    for device in devices:
        for _ in range(1 if device in pending else wanted):
            group.start(device, 1.0 / wanted)
    log.info(
        "started %d worker(s) on %s, %d trial(s) per device%s",
        len(group.children),
        ", ".join(devices),
        wanted,
        f"; measuring peak memory on {', '.join(pending)} first" if pending else "",
    )
    return group.supervise(lambda: _join_measured(group, pending, book))


def _join_measured(group: _Children, pending: list[str], book: PeakMemoryBook) -> None:
    """Start the rest of a device's processes once its first trial has measured what one needs."""
    command = group.command
    for device in list(pending):
        fit = _trials_that_fit(device, book, command.tasks)
        if fit is None:
            continue
        pending.remove(device)
        count = min(command.trials_per_device, fit)
        if count < command.trials_per_device:
            log.warning(
                "--trials-per-device %d does not fit on %s (%s): running %d",
                command.trials_per_device,
                device,
                _measured(device, book, command.tasks),
                count,
            )
        for _ in range(count - 1):
            group.start(device, 1.0 / count)


def _trials_that_fit(device: str, book: PeakMemoryBook, tasks: tuple[str, ...]) -> int | None:
    """How many trials fit side by side on ``device``, from the book; None when nothing was measured."""
    parsed = parse_device(device)
    peak = book.peak(device_kind(parsed), tasks)
    capacity = memory_capacity_mb(parsed)
    if peak is None or capacity is None:
        return None
    return trials_that_fit(capacity, peak)


def _measured(device: str, book: PeakMemoryBook, tasks: tuple[str, ...]) -> str:
    parsed = parse_device(device)
    peak = book.peak(device_kind(parsed), tasks) or 0.0
    capacity = memory_capacity_mb(parsed) or 0.0
    return f"one trial peaked at {peak:,.0f} MiB of its {capacity:,.0f} MiB (recorded in {book.path})"


class _Children:
    """The worker processes one supervisor started, stopped by their PIDs."""

    def __init__(self, command: WorkerCommand) -> None:
        self.command = command
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, device: str, share: float) -> None:
        """Start one worker process on ``device`` holding ``share`` of it."""
        command = self.command
        args = [sys.executable, "-m", "hps.cli", "worker", "--device", device, "--api", command.api]
        args += ["--data-dir", str(command.data_dir), "--log-format", "json" if command.log_json else "text"]
        args += ["--device-share", repr(share)]
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
        if command.worker_id is not None:
            args += ["--worker-id", f"{command.worker_id}-{len(self.children)}"]
        self.children.append(subprocess.Popen(args, env={**os.environ, "HPS_TOKEN": command.token}))

    def supervise(self, tick: Callable[[], None]) -> int:
        """Pass SIGTERM/SIGINT on to every child, call ``tick`` every second while any runs, and return
        the worst exit code once all have ended."""

        def forward(signum: int, frame: FrameType | None) -> None:
            stopping.set()
            for child in self.children:
                if child.poll() is None:
                    child.send_signal(signum)

        stopping = threading.Event()
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        while any(child.poll() is None for child in self.children):
            if not stopping.is_set():
                tick()
            stopping.wait(_TICK_SECONDS)
        return max(child.wait() for child in self.children)
