"""What `pip install .` installs: one top-level package, hps, with the server, the workers, the search
spaces and the migrations inside it (hps/server and the others are links to the repository's folders), its
package data, and the `hps` console script; users import hps only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_one_top_level_package_hps(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("hps-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"hps", next(t for t in tops if t.endswith(".dist-info"))}, sorted(tops)
    for inside in (
        "hps/__init__.py",
        "hps/server/api/app.py",
        "hps/workers/loop.py",
        "hps/search_spaces/presets/adamw.yaml",
        "hps/migrations/versions/0001_initial.py",
        "hps/migrations/script.py.mako",
        "hps/catalog/data/reviews-sample.csv",
        "hps/catalog/data/python-docstrings.txt",
        "hps/catalog/data/debian-descriptions.jsonl",
        "hps/workers/tasks/causal_lm.py",
        "hps/workers/tasks/vgg.py",
        "hps/wire/studies.py",
        "hps/client/http.py",
    ):
        assert inside in names, inside
    metadata = next(name for name in names if name.endswith("entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "hps = hps.cli.main:main" in entry_points
    assert "quadratic = hps.catalog.builtins:QUADRATIC" in entry_points
    assert "causal-lm = hps.catalog.builtins:CAUSAL_LM" in entry_points


def test_users_import_hps_only() -> None:
    import hps

    assert {"HpsClient", "HpsError", "TrialRun", "TrialPruned"} <= set(hps.__all__)
    assert hps.HpsClient.__module__ == "hps.client.http"
