"""The web page in a real browser: Debian's Chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from server_util import running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"
DATA = Path(__file__).parent / "data"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def base_url():
    with running_server("--corpus", str(DATA / "small_corpus.txt")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def test_search_as_you_type_filter_copy_and_surprise(browser, base_url):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(base_url + "/")
    page.wait_for_selector("#genre option[value='Romance']", state="attached")
    assert page.locator("#empty").is_visible()  # empty state before any search
    page.fill("#q", "ghost in a lighthouse")
    page.wait_for_selector("#results .card")
    titles = page.locator("#results .card .title").all_inner_texts()
    assert titles[0] == "The Keeper's Last Log"
    page.select_option("#genre", "Romance")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results .card .genre')].every(e => e.textContent === 'Romance')"
        " && document.querySelectorAll('#results .card').length > 0"
    )
    assert set(page.locator("#results .card .genre").all_text_contents()) == {"Romance"}
    page.screenshot(path=str(ARTIFACTS / "search.png"), full_page=True)
    page.select_option("#genre", "")
    page.click("#surprise")
    page.wait_for_function("() => document.getElementById('status').textContent === 'A random prompt'")
    assert page.locator("#results .card").count() == 1
    # keyboard: "/" focuses the search box, Escape clears it
    page.locator("body").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.close()


def test_error_state_and_phone_width(browser, base_url):
    page = browser.new_page(viewport={"width": 375, "height": 800})
    page.goto(base_url + "/")
    page.wait_for_selector("#genre option[value='Horror']", state="attached")
    page.route(
        "**/api/search*",
        lambda route: route.fulfill(status=500, body='{"error": "index unavailable"}', content_type="application/json"),
    )
    page.fill("#q", "robots")
    page.wait_for_selector("#error:not([hidden])")
    assert "index unavailable" in page.inner_text("#error")
    assert not page.locator("#empty").is_visible()  # the error state replaces the empty state
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375  # no horizontal scrolling on a phone
    page.screenshot(path=str(ARTIFACTS / "phone-error.png"), full_page=True)
    page.close()
