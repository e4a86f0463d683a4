"""The page's event reporting in a real browser (Debian's Chromium, Playwright): a search, an open and a
copy made on the page arrive in the SQLite store, linked to the search's query_id, with the random
client id the page keeps in localStorage; with feedback off the page shows no rating buttons."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from feedback_util import app_server, wait_for

from prompt_retriever.feedback import FeedbackRecorder, open_store
from prompt_retriever.serving.api import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


def test_search_open_and_copy_on_the_page_arrive_linked_to_the_query(small_retriever, tmp_path):
    from playwright.sync_api import sync_playwright

    db = tmp_path / "page.db"
    recorder = FeedbackRecorder(open_store(db), max_wait=0.05)
    try:
        with app_server(create_app(small_retriever, feedback=recorder)) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page()
            page.goto(base + "/")
            page.fill("#q", "ghost in a lighthouse")
            page.wait_for_selector("#results .card .rate:not([hidden])")
            ids = page.eval_on_selector_all("#results .card", "cards => cards.map(c => c.dataset.id)")
            cards = page.locator("#results .card")
            cards.nth(0).locator(".title").click()  # open
            cards.nth(1).locator(".copy").click()  # copy
            cards.nth(1).locator(".up").click()  # thumbs up
            client_id = page.evaluate("localStorage.getItem('prompt-retriever.client_id')")
            assert client_id and len(client_id) == 32
            assert cards.nth(0).evaluate("c => c.classList.contains('open')")
            browser.close()
        wait_for(lambda: recorder.flush(5) and _events(db) and len(_events(db)) == 3, what="3 events stored")
    finally:
        recorder.close()
    with sqlite3.connect(db) as conn:
        queries = conn.execute("SELECT query_id, user_query, object_ids, client_id FROM ubi_queries").fetchall()
    searched = [q for q in queries if q[1] == "ghost in a lighthouse"]
    assert searched, queries  # typing may send a search per pause: the last is the one shown
    # the first search of a new browser carries the id too (made when /api/info says searches are recorded),
    # so a request the writer rephrased at once can be chained (feedback/chains.py)
    assert [q[3] for q in queries] == [client_id] * len(queries)
    events = _events(db)
    assert len({e[0] for e in events}) == 1
    (query,) = [q for q in searched if q[0] == events[0][0]]
    assert query[2].replace(" ", "") == "[" + ",".join(f'"{i}"' for i in ids) + "]"
    assert [e[1:] for e in events] == [
        ("open", ids[0], 1, client_id),
        ("copy", ids[1], 2, client_id),
        ("thumbs_up", ids[1], 2, client_id),
    ]


def _events(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT query_id, action_name, object_id, position, client_id FROM ubi_events ORDER BY event_id"
        ).fetchall()


def test_without_feedback_the_page_shows_no_rating_buttons(small_retriever):
    from playwright.sync_api import sync_playwright

    with app_server(create_app(small_retriever)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(base + "/")
        page.fill("#q", "robot")
        page.wait_for_selector("#results .card")
        page.locator("#results .card").nth(0).locator(".title").click()
        page.locator("#results .card").nth(0).locator(".copy").click()
        assert page.locator("#results .card .rate:not([hidden])").count() == 0
        assert page.evaluate("localStorage.getItem('prompt-retriever.client_id')") is None
        browser.close()
    assert not [u for u in requests if "/api/events" in u]
