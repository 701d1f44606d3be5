"""A real browser on the HTML report: ``hps report`` writes the file for a study driven over HTTP, and
headless Chromium opens it with every network request blocked (and recorded), checks what it shows, and
takes a screenshot. The study's metric and one optimizer's name carry markup, which must show as text.

Needs Debian's ``chromium`` at /usr/bin/chromium (``make browser``). Set ``HPS_KEEP_SCREENSHOT=1`` to keep
a copy of the screenshot at ``var/report-screenshot.png``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Route, expect

from harness.api import unique
from harness.browser import chromium, keep_screenshot, png_size
from harness.databases import sqlite_url
from harness.servers import ADMIN_TOKEN, RunningServer, serving
from harness.synthetic import ClientDriver, run_trials
from hps.client.http import HpsClient

METRIC = "<script>window.hpsPwned = 1</script>val_accuracy"
ODD_OPTIMIZER = "<img src=x onerror=window.hpsPwned=2>"
N_TRIALS = 24


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("report-browser")
    with serving(sqlite_url(directory), directory) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def driven_study(server: RunningServer) -> tuple[int, str]:
    """Three optimizers, one with a name full of markup (tried first), 24 trials over HTTP."""
    space = {
        "params": {
            "optimizer": {"type": "categorical", "choices": ["adamw", "sgd", ODD_OPTIMIZER]},
            "lr": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
        },
        "starts": [{"optimizer": ODD_OPTIMIZER, "lr": 1e-3}],
    }
    body = {
        "name": unique("browser-report"),
        "direction": "maximize",
        "metric": METRIC,
        "search_space": space,
        "sampler": {"name": "tpe", "seed": 3},
        "pruner": {"name": "none"},
        "budget": {"n_trials": N_TRIALS},
    }
    with HpsClient(server.base_url, ADMIN_TOKEN) as hps:
        study = hps.create_study(body)
        run_trials(ClientDriver(hps, study.id), N_TRIALS)
    return study.id, study.name


def test_chromium_shows_the_offline_report_and_runs_nothing_from_it(
    server: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    study_id, name = driven_study(server)
    page_file = tmp_path / "report.html"
    command = [sys.executable, "-m", "hps.cli", "report", name, "-o", str(page_file)]
    command += ["--api", server.base_url, "--token", ADMIN_TOKEN]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with HpsClient(server.base_url, ADMIN_TOKEN) as hps:
        expected = hps.study_report(study_id)

    context = browser.new_context(viewport={"width": 1100, "height": 900}, offline=True)
    blocked: list[str] = []

    def only_the_report(route: Route) -> None:
        # The report file itself is the one thing the page may load; anything else is recorded and refused.
        if route.request.url == page_file.as_uri():
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_report)
    page = context.new_page()
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(page_file.as_uri())

    expect(page.locator("h1")).to_have_text(f"Optimizer report: {name}")
    expect(page.locator(".meta b")).to_have_text(METRIC)  # the markup shows as text
    rows = page.locator("table.optimizers tr")
    expect(rows).to_have_count(1 + len(expected.optimizers))
    expect(page.locator("table.optimizers")).to_contain_text(ODD_OPTIMIZER)
    for section in ("history", "curves", "lr"):
        expect(page.locator(f"#{section} svg.chart")).to_have_count(1)
    expect(page.locator("#importances svg.bars")).to_have_count(1 + len(expected.importances.by_optimizer))
    best = expected.recommendation
    expect(page.locator("#recommendation .summary")).to_have_text(best.summary)
    expect(page.locator(".confidence")).to_have_text(best.confidence)
    history_dots = page.locator("#history svg circle")
    expect(history_dots).to_have_count(len(expected.history))

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    pwned = page.evaluate("() => window.hpsPwned === undefined ? null : window.hpsPwned")
    text = page.inner_text("body")
    context.close()

    assert best.summary.startswith("Use ") and best.best_trial is not None
    assert f"Use {best.best_optimizer}" in text and "Per optimizer" in text
    assert pwned is None and dialogs == []
    assert blocked == [] and requests == [page_file.as_uri()], (blocked, requests)
    width, height = png_size(screenshot)
    assert width == 1100 and height > 1500, (width, height)  # the whole report, well past one screen
    assert screenshot.stat().st_size > 50_000
    keep_screenshot(screenshot, "report-screenshot.png")
