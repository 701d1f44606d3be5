"""``/docs`` and ``/redoc`` in headless Chromium: every request the pages make goes to the hps server itself
(none to a CDN), and each viewer renders the API's operations.

Needs Debian's ``chromium`` (``make browser``). ``HPS_KEEP_SCREENSHOT=1`` keeps the screenshots in ``var/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Route, expect

from harness.browser import chromium, keep_screenshot, png_size
from harness.databases import sqlite_url
from harness.servers import RunningServer, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("docs-browser")
    with serving(sqlite_url(directory), directory) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize(
    ("path", "rendered"), [("/docs", ".opblock-summary"), ("/redoc", "[data-section-id]")]
)
def test_the_api_docs_load_nothing_from_elsewhere(
    server: RunningServer, browser: Browser, tmp_path: Path, path: str, rendered: str
) -> None:
    served = urlsplit(server.base_url).netloc
    elsewhere: list[str] = []

    def only_hps(route: Route) -> None:
        if urlsplit(route.request.url).netloc == served:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.route("**/*", only_hps)
    page = context.new_page()
    try:
        page.goto(f"{server.base_url}{path}")
        expect(page.locator(rendered).first).to_be_visible(timeout=30_000)
        assert page.get_by_text("/v1/studies").first.is_visible()
        screenshot = tmp_path / "docs.png"
        page.screenshot(path=str(screenshot))
        assert png_size(screenshot)[0] >= 1000
        keep_screenshot(screenshot, f"docs{path.replace('/', '-')}.png")
    finally:
        context.close()
    assert elsewhere == []
