"""Real server and worker processes for tests.

Each process runs in its own process group (session) and is stopped by its PID, whatever the test's
outcome: a test never kills anything it did not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


class ManagedProcess:
    """A child process with its output in a log file, stopped by PID."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The child's PID."""
        return self.popen.pid

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to this process only."""
        if self.popen.poll() is None:
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit and return its code."""
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it lingers. Returns the exit code."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        self._log.close()
        return self.popen.returncode


class ServerProcess(ManagedProcess):
    """``hps serve`` on a free port (the server binds port 0 and writes its URL to a file)."""

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int = 0) -> None:
        self.address_file = log_path.with_suffix(".address")
        self.address_file.unlink(missing_ok=True)
        args = [sys.executable, "-m", "hps.cli", "serve", "--port", str(port)]
        env = {"HPS_LOG_LEVEL": "info", **env}
        super().__init__([*args, "--address-file", str(self.address_file)], env, log_path)
        self.base_url = ""

    def wait_ready(self, timeout: float = 60.0) -> str:
        """Block until ``/readyz`` answers 200; return the base URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"server exited with {self.popen.returncode}:\n{self.output()}")
            if not self.base_url and self.address_file.exists():
                self.base_url = self.address_file.read_text().strip()
            if self.base_url and _ready(self.base_url):
                return self.base_url
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.output()}")


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
