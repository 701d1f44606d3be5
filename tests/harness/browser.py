"""Headless Chromium for browser tests: Debian's ``chromium`` (``make browser``) driven by Playwright, with
no Playwright browser download, and the screenshot checks those tests share."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEPT_SCREENSHOTS = Path(__file__).resolve().parents[2] / "var"


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed on exit; the test fails (not skips) when Chromium is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make browser)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def keep_screenshot(screenshot: Path, name: str) -> None:
    """With ``HPS_KEEP_SCREENSHOT=1``, copy the screenshot to ``var/<name>`` for a person to look at."""
    if os.environ.get("HPS_KEEP_SCREENSHOT"):
        KEPT_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, KEPT_SCREENSHOTS / name)
