"""Real `hps worker` processes against a test server."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.processes import ManagedProcess
from harness.servers import ADMIN_TOKEN, RunningServer


def start_worker(
    server: RunningServer,
    name: str,
    *extra: str,
    once: bool = True,
    env: dict[str, str] | None = None,
    base_url: str | None = None,
) -> ManagedProcess:
    """One worker process (its own process group), logging to the server's data dir."""
    args = [sys.executable, "-m", "hps.cli", "worker", "--api", base_url or server.base_url]
    args += ["--threads", "1", "--data-dir", str(server.data_dir), "--worker-id", name, *extra]
    if once:
        args.append("--once")
    log = server.data_dir / f"worker-{name}-{time.monotonic_ns()}.log"
    return ManagedProcess(args, {"HPS_TOKEN": ADMIN_TOKEN, **(env or {})}, log)


def resident_memory_mb(pid: int) -> float:
    """The process's resident set size now, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
