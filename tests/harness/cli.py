"""Running ``hps`` commands against a test server: in-process through typer's CliRunner (fast, still real
HTTP to the real server) or as a real process of the console entry point."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from typer.testing import CliRunner, Result

from harness.servers import ADMIN_TOKEN


@dataclass
class Hps:
    """Runs ``hps`` commands against one server; ``--api`` and ``--token`` are added to each."""

    base_url: str
    token: str = ADMIN_TOKEN

    def __call__(self, *args: str, input: str | None = None, token: str | None = None) -> Result:
        """``hps ARGS`` (``study create ...``) in this process, stdout and stderr apart. Our ``--api`` and
        ``--token`` go right after the subcommand, so that ARGS may override them: click keeps the last."""
        from hps.cli.main import app

        auth = ["--api", self.base_url, "--token", token or self.token]
        return CliRunner().invoke(app, [*args[:2], *auth, *args[2:]], input=input, catch_exceptions=False)

    def subprocess(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``hps ARGS`` as a real process in its own session (``subprocess.run`` kills it on timeout)."""
        argv = [sys.executable, "-m", "hps.cli", *args, "--api", self.base_url, "--token", self.token]
        return subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, start_new_session=True
        )
