"""The web page in a real browser: Debian's Chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import json
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
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


# --- the search in the URL, history, and the "which system answers" line ---


def wait_for_results(page, query: str, first_title: str | None = None) -> None:
    """Wait until the box holds `query` and its results are on the page (optionally: this first title)."""
    page.wait_for_function(
        """([query, title]) => {
            const cards = document.querySelectorAll('#results .card .title');
            return document.getElementById('q').value === query && cards.length > 0
                && document.getElementById('status').textContent !== 'Searching…'
                && (title === null || cards[0].textContent === title);
        }""",
        arg=[query, first_title],
    )


def url_params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_url_state_loads_the_form_and_runs_the_search(browser, base_url):
    page = browser.new_page()
    page.goto(base_url + "/?" + urlencode({"q": "lighthouse", "genre": "Horror"}))
    wait_for_results(page, "lighthouse", "The Keeper's Last Log")
    assert page.input_value("#q") == "lighthouse"
    assert page.input_value("#genre") == "Horror"
    assert set(page.locator("#results .card .genre").all_text_contents()) == {"Horror"}
    assert not page.locator("#empty").is_visible()
    # a filter is matched case-insensitively, like the API does, and the URL is spelled canonically
    page.goto(base_url + "/?" + urlencode({"q": "lighthouse", "genre": "romance"}))
    wait_for_results(page, "lighthouse", "Beacon & Breakfast")
    assert page.input_value("#genre") == "Romance"
    assert url_params(page.url) == {"q": ["lighthouse"], "genre": ["Romance"]}
    # an empty query is no search: the filters are filled, the empty state shows, nothing is asked
    searches = []
    page.on("request", lambda r: searches.append(r.url) if "/api/search" in r.url else None)
    page.goto(base_url + "/?" + urlencode({"q": "  ", "theme": "Magic"}))
    page.wait_for_selector("#empty:not([hidden])")
    assert page.input_value("#theme") == "Magic"
    assert page.locator("#results .card").count() == 0
    assert searches == []
    # query text from the URL is text, never markup
    hostile = '<img src=x onerror="window.pwned=1">lighthouse'
    page.goto(base_url + "/?" + urlencode({"q": hostile}))
    page.wait_for_function(
        "() => document.getElementById('status').textContent.length > 0"
        " && document.getElementById('status').textContent !== 'Searching…'"
    )
    assert page.input_value("#q") == hostile
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
    page.close()


def test_search_pushes_history_and_back_forward_restore_it(browser, base_url):
    page = browser.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("#genre option[value='Fantasy']", state="attached")
    start = page.evaluate("history.length")
    page.fill("#q", "lighthouse")
    page.press("#q", "Enter")
    wait_for_results(page, "lighthouse")
    a_titles = page.locator("#results .card .title").all_text_contents()
    assert url_params(page.url) == {"q": ["lighthouse"]}
    page.fill("#q", "dragon gold coins")
    page.press("#q", "Enter")
    wait_for_results(page, "dragon gold coins", "The Dragon's Accountant")
    b_titles = page.locator("#results .card .title").all_text_contents()
    assert url_params(page.url) == {"q": ["dragon gold coins"]}
    assert a_titles != b_titles
    assert page.evaluate("history.length") == start + 2  # one entry per search, not per keystroke

    page.go_back()
    wait_for_results(page, "lighthouse")
    assert page.locator("#results .card .title").all_text_contents() == a_titles
    assert url_params(page.url) == {"q": ["lighthouse"]}

    page.go_forward()
    wait_for_results(page, "dragon gold coins", "The Dragon's Accountant")
    assert page.locator("#results .card .title").all_text_contents() == b_titles

    # back to the start: the empty query is no search, the results go away
    page.go_back()
    page.go_back()
    page.wait_for_function("() => document.getElementById('q').value === ''")
    page.wait_for_selector("#empty:not([hidden])")
    assert page.locator("#results .card").count() == 0

    # search as you type: pauses while typing update one entry; Enter after them adds none
    page.type("#q", "robot", delay=400)  # longer than the page's 250 ms debounce: a search per pause
    wait_for_results(page, "robot", "Orbit of Small Repairs")
    page.press("#q", "Enter")
    wait_for_results(page, "robot", "Orbit of Small Repairs")
    assert url_params(page.url) == {"q": ["robot"]}
    assert page.evaluate("history.length") == start + 1  # the forward entries were replaced by this one
    page.go_back()
    page.wait_for_function("() => document.getElementById('q').value === ''")
    assert url_params(page.url) == {}
    page.close()


def test_url_after_a_search_holds_the_encoded_state(browser, base_url):
    page = browser.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("#genre option[value='Romance']", state="attached")
    page.fill("#q", "ghost & lighthouse?")
    page.press("#q", "Enter")
    wait_for_results(page, "ghost & lighthouse?")
    assert "q=ghost+%26+lighthouse%3F" in page.url
    assert url_params(page.url) == {"q": ["ghost & lighthouse?"]}
    page.select_option("#genre", "Romance")
    wait_for_results(page, "ghost & lighthouse?", "Beacon & Breakfast")
    assert url_params(page.url) == {"q": ["ghost & lighthouse?"], "genre": ["Romance"]}
    # the URL reloads to the same page
    page.reload()
    wait_for_results(page, "ghost & lighthouse?", "Beacon & Breakfast")
    assert page.input_value("#genre") == "Romance"
    page.close()


def js_fixed2(x: float) -> str:
    """`x.toFixed(2)` as JavaScript does it: the exact value rounded, ties away from zero."""
    return str(Decimal(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def expected_info_line(info: dict) -> str:
    text = info["system"].strip()
    if isinstance(info.get("test_ndcg@10"), (int, float)):
        return f"{text} · test NDCG@10 {js_fixed2(info['test_ndcg@10'])}"
    if isinstance(info.get("dev_ndcg@10"), (int, float)):
        return f"{text} · dev NDCG@10 {js_fixed2(info['dev_ndcg@10'])}"
    return text


def info_line(page) -> tuple[bool, str]:
    """(visible, text) of the info line once the page has its answer from /api/info."""
    page.wait_for_selector("#system-info[data-state]", state="attached")
    line = page.locator("#system-info")
    return line.is_visible(), line.text_content()


def test_info_line_from_the_real_server(browser, base_url):
    answer = httpx.get(base_url + "/api/info", timeout=10)
    page = browser.new_page()
    page.goto(base_url + "/")
    visible, text = info_line(page)
    if answer.status_code == 200:
        assert visible
        assert text == expected_info_line(answer.json())
    elif answer.status_code == 404:
        assert not visible
        assert text == ""
    else:
        pytest.fail(f"/api/info answered {answer.status_code}")
    assert not page.locator("#error").is_visible()
    page.close()


INFO = {
    "system": "fine-tuned MiniLM + BM25 hybrid",
    "kind": "hybrid",
    "model": "minilm-ft",
    "backend": "onnx",
    "prompts": 8,
    "corpus_fingerprint": "abc123",
    "dev_ndcg@10": 0.9,
    "test_ndcg@10": 0.875,
}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, INFO, "fine-tuned MiniLM + BM25 hybrid · test NDCG@10 0.88"),
        (200, {**INFO, "test_ndcg@10": None}, "fine-tuned MiniLM + BM25 hybrid · dev NDCG@10 0.90"),
        (200, {**INFO, "test_ndcg@10": None, "dev_ndcg@10": None}, "fine-tuned MiniLM + BM25 hybrid"),
        (
            200,
            {**INFO, "system": '<img src=x onerror="window.pwned=1"> & <b>BM25</b>'},
            '<img src=x onerror="window.pwned=1"> & <b>BM25</b> · test NDCG@10 0.88',
        ),
        (404, {"error": "not found"}, None),
        (500, "not json", None),
    ],
    ids=["test-ndcg", "dev-ndcg", "no-ndcg", "markup-is-text", "absent", "broken"],
)
def test_info_line_shapes(browser, base_url, status, body, expected):
    page = browser.new_page()
    payload = body if isinstance(body, str) else json.dumps(body)
    page.route("**/api/info", lambda route: route.fulfill(status=status, body=payload, content_type="application/json"))
    page.goto(base_url + "/?q=lighthouse")
    visible, text = info_line(page)
    if expected is None:
        assert not visible
        assert text == ""
    else:
        assert visible
        assert text == expected
        assert text == expected_info_line(body)
        assert page.locator("#system-info *").count() == 0
        assert page.evaluate("window.pwned") is None
    # the page works either way
    wait_for_results(page, "lighthouse")
    assert not page.locator("#error").is_visible()
    page.close()


def test_pages_work_under_their_content_security_policy(browser, base_url):
    """The server sends a strict CSP (scripts and styles from this origin only, nothing inline, no
    framing): the page and /docs must run under it with no violation, styled and scripted."""
    page = browser.new_page()
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(msg.text))
    page.on("pageerror", lambda exc: messages.append(str(exc)))
    response = page.goto(base_url + "/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.fill("#q", "ghost in a lighthouse")
    page.wait_for_selector("#results .card")
    assert page.evaluate("getComputedStyle(document.querySelector('.card')).display") != "inline"  # style.css
    page.goto(base_url + "/docs")
    page.wait_for_selector("#ops .op")  # docs.js rendered /openapi.json
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(251, 248, 243)"  # docs.css
    page.locator("#ops .op form button").first.click()  # "Try it" fetches from this origin
    page.wait_for_selector("#ops .op pre:not([hidden])")
    assert not [m for m in messages if "Content Security Policy" in m or "Refused" in m], messages
    page.close()
