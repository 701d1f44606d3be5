"""A real browser on the dashboard: headless Chromium signs in with a token as the basic-auth password,
finds a study made through hps, opens it, sees its trials, and takes a screenshot.

Needs Debian's ``chromium`` at /usr/bin/chromium (Playwright drives it; no Playwright browser download).
Set ``HPS_KEEP_SCREENSHOT=1`` to keep a copy of the screenshot at ``var/dashboard-screenshot.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from playwright.sync_api import Error as PlaywrightError

from harness.api import new_study, study_body, unique
from harness.browser import chromium, keep_screenshot, png_size
from harness.databases import sqlite_url
from harness.servers import ADMIN_TOKEN, RunningServer, serving

VALUES = (0.5, 0.7, 0.6)  # trial 1 is the best of a maximized study


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("browser-server")
    with serving(sqlite_url(directory), directory) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def run_trials(server: RunningServer) -> tuple[int, str]:
    """A maximized study with one complete trial per value in ``VALUES``, driven over HTTP."""
    with server.client() as client:
        study_id = new_study(client, budget={"n_trials": len(VALUES)})
        for value in VALUES:
            number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
            base = f"/v1/studies/{study_id}/trials/{number}"
            assert client.post(f"{base}/reports", json={"step": 0, "value": value / 2}).status_code == 200
            done = client.post(f"{base}/complete", json={"state": "complete", "value": value})
            assert done.status_code == 200, done.text
        study = client.get(f"/v1/studies/{study_id}").json()
    assert study["progress"]["complete"] == len(VALUES)
    return study_id, str(study["name"])


def project_token(server: RunningServer, project: str) -> str:
    with server.client() as admin:
        body = {"name": unique("viewer"), "scopes": ["read"], "project": project}
        made = admin.post("/v1/tokens", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def test_chromium_sees_a_studys_trials_and_takes_a_screenshot(
    server: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    study_id, name = run_trials(server)
    context = browser.new_context(
        http_credentials={"username": "hps", "password": ADMIN_TOKEN}, viewport={"width": 1400, "height": 900}
    )
    page = context.new_page()
    opened = page.goto(f"{server.base_url}/dashboard")
    assert opened is not None and opened.status == 200

    page.get_by_text(name).first.click()  # the study list, then the study's page
    expect(page).to_have_url(f"{server.base_url}/dashboard/studies/{study_id}")
    expect(page.get_by_text(f"{name} (id={study_id})")).to_be_visible()
    expect(page.get_by_text("Best Trial (number=1)")).to_be_visible()
    expect(page.get_by_text(f"trial #{len(VALUES) - 1}", exact=True)).to_be_visible()

    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    text = page.inner_text("body")
    context.close()
    for expected in (name, "History", "Best Trial (number=1)", "0.7", "Params = [optimizer:"):
        assert expected in text, f"{expected!r} not on the page:\n{text}"
    assert all(f"trial #{number}" in text for number in range(len(VALUES)))
    width, height = png_size(screenshot)
    assert width == 1400 and height > 900, (width, height)  # a full page, taller than the viewport
    assert screenshot.stat().st_size > 20_000
    keep_screenshot(screenshot, "dashboard-screenshot.png")


def test_chromium_without_a_token_gets_401_and_a_project_token_sees_its_project_only(
    server: RunningServer, browser: Browser
) -> None:
    _, ours = run_trials(server)  # the admin's studies land in the project "default"
    with server.client() as admin:
        created = admin.post("/v1/studies", params={"project": unique("other")}, json=study_body(unique()))
        assert created.status_code == 201, created.text
    theirs = created.json()["name"]

    anonymous = browser.new_context()
    page = anonymous.new_page()
    # Headless, nobody can type into the login prompt: the navigation fails on the challenge.
    with (
        page.expect_response(f"{server.base_url}/dashboard") as answer,
        pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"),
    ):
        page.goto(f"{server.base_url}/dashboard")
    assert answer.value.status == 401
    assert answer.value.headers["www-authenticate"] == 'Basic realm="hps dashboard"'
    anonymous.close()

    viewer = browser.new_context(
        http_credentials={"username": "hps", "password": project_token(server, "default")}
    )
    page = viewer.new_page()
    page.goto(f"{server.base_url}/dashboard")
    expect(page.get_by_text(ours).first).to_be_visible()
    text = page.inner_text("body")
    viewer.close()
    assert theirs not in text


def curve_study(server: RunningServer) -> tuple[int, str]:
    """Trials as workers complete them: a 20-epoch learning curve in attrs; the last one diverged."""
    curve = [{"epoch": e, "train_loss": 1 / (e + 1), "val_accuracy": 0.5 + e / 50} for e in range(20)]
    with server.client() as client:
        study_id = new_study(client, metric="val_accuracy", budget={"n_trials": 3})
        for state in ("complete", "complete", "diverged"):
            number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
            base = f"/v1/studies/{study_id}/trials/{number}"
            for epoch in (1, 2):
                client.post(f"{base}/reports", json={"step": epoch, "value": 0.5 + epoch / 10})
            body: dict[str, object] = {"state": state, "attrs": {"learning_curve": curve, "best_epoch": 2}}
            body.update({"value": 0.7} if state == "complete" else {"reason": "diverged: loss was nan"})
            assert client.post(f"{base}/complete", json=body).status_code == 200
        name = client.get(f"/v1/studies/{study_id}").json()["name"]
    return study_id, str(name)


def test_what_a_person_sees_on_the_dashboard_pages(
    server: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    study_id, name = curve_study(server)
    reader = project_token(server, "default")
    for token, may_change in ((ADMIN_TOKEN, True), (reader, False)):
        context = browser.new_context(
            http_credentials={"username": "hps", "password": token}, viewport={"width": 1400, "height": 900}
        )
        page = context.new_page()
        page.goto(f"{server.base_url}/dashboard")
        expect(page.get_by_text(name).first).to_be_visible()
        # Nobody may create or rename a study here; only a project-less admin may delete one.
        assert page.locator('button:visible:has(svg[data-testid="AddBoxIcon"])').count() == 0
        assert page.locator('button:visible:has(svg[data-testid="DriveFileRenameOutlineIcon"])').count() == 0
        deletes = page.locator('button:visible:has(svg[data-testid="DeleteIcon"])').count()
        assert (deletes > 0) == may_change

        page.goto(f"{server.base_url}/dashboard/studies/{study_id}")
        # The metric's name, where Optuna would say "Objective 0".
        expect(page.get_by_text("val_accuracy").first).to_be_visible()
        assert "Objective 0" not in page.inner_text("body")

        page.goto(f"{server.base_url}/dashboard/studies/{study_id}/trials?numbers=2")
        expect(page.get_by_text("hps_state diverged")).to_be_visible()  # a diverged trial is findable
        expect(page.get_by_text("hps_reason diverged: loss was nan")).to_be_visible()
        # The page fits its window: a learning curve in the attrs no longer makes it thousands of pixels wide.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        screenshot = tmp_path / "trial.png"
        page.screenshot(path=str(screenshot))
        context.close()
        assert png_size(screenshot) == (1400, 900)
        keep_screenshot(screenshot, f"dashboard-trial-{'admin' if may_change else 'reader'}.png")
