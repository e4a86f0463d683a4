"""The owner's judging page (`serving.judging`) on a real server (uvicorn in a thread) over the small
corpus: its API (the token, validation, saving and re-judging, the log's queries), that it exists only
with an admin token and a judgments file, the file read back by `load_judged_queries` (what `evaluate
--judged` reads), and the page itself in a real Chromium: unlock, pick or type a query, rate, save."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from feedback_util import app_server, search
from typer.testing import CliRunner

from prompt_retriever.cli import app as cli_app
from prompt_retriever.errors import InputError
from prompt_retriever.feedback import FeedbackRecorder, open_store
from prompt_retriever.feedback.owner import NO_RELEVANT, OwnerJudgments
from prompt_retriever.golden.goldenset import load_judged_queries
from prompt_retriever.serving.api import create_app

TOKEN = "judge-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEB = Path(__file__).parents[1] / "src" / "prompt_retriever" / "serving" / "web"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def judge_app(retriever, path: Path, **kwargs):
    return create_app(retriever, admin_token=TOKEN, judgments=OwnerJudgments.load(path), **kwargs)


# ------------------------------------------------------------------ off unless token and file


def test_without_a_judgments_file_or_a_token_the_judging_routes_do_not_exist(small_retriever, tmp_path):
    paths = ["/judge", "/static/judge.js", "/api/judge/queries", "/api/judge/results?q=ghost"]
    for app in (create_app(small_retriever, admin_token=TOKEN), create_app(small_retriever)):
        with app_server(app) as base:
            for path in paths:
                r = httpx.get(base + path, headers=AUTH)
                assert r.status_code == 404 and "error" in r.json(), (path, r.status_code)
            r = httpx.post(base + "/api/judgments", json={"query": "q", "grades": {"x": 1}}, headers=AUTH)
            assert r.status_code == 404
            assert not [p for p in httpx.get(base + "/openapi.json").json()["paths"] if "judg" in p]
    with pytest.raises(InputError, match="admin token"):
        create_app(small_retriever, judgments=OwnerJudgments.load(tmp_path / "j.jsonl"))


def test_serve_refuses_judgments_without_a_token_or_with_a_broken_file(tmp_path, small_corpus_path):
    """Both refused before anything loads, with the reason; `--help` says whose file it is."""
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"query": "q", "relevant": {"x": 1}}\n{"query": "q"}\n', encoding="utf-8")
    base = [sys.executable, "-m", "prompt_retriever.cli", "serve", "--corpus", str(small_corpus_path), "--port", "9"]
    env_without = {k: v for k, v in os.environ.items() if k != "PROMPT_RETRIEVER_ADMIN_TOKEN"}
    res = subprocess.run(
        [*base, "--judgments", str(tmp_path / "j.jsonl")], env=env_without, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and "needs PROMPT_RETRIEVER_ADMIN_TOKEN" in res.stderr, res.stderr
    env = {**env_without, "PROMPT_RETRIEVER_ADMIN_TOKEN": TOKEN}
    res = subprocess.run([*base, "--judgments", str(broken)], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "broken.jsonl:2" in res.stderr and "'relevant'" in res.stderr, res.stderr
    help_text = " ".join(CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "--judgments" in help_text and "It is your file" in help_text


# ------------------------------------------------------------------ the API


def test_the_api_needs_the_admin_token(small_retriever, tmp_path):
    with app_server(judge_app(small_retriever, tmp_path / "j.jsonl")) as base:
        assert httpx.get(base + "/judge").status_code == 200  # the page is static: it asks for the token
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {TOKEN}"}):
            for r in (
                httpx.get(base + "/api/judge/queries", headers=headers),
                httpx.get(base + "/api/judge/results", params={"q": "ghost"}, headers=headers),
                httpx.get(base + "/api/judge/results", headers=headers),  # no q either: still 401, not 422
                httpx.post(base + "/api/judgments", json={"bad": "body"}, headers=headers),
            ):
                assert r.status_code == 401, (r.request.url, r.status_code, r.text)
                assert "admin token" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    assert not (tmp_path / "j.jsonl").exists()


def test_saving_and_rejudging_a_query(small_retriever, small_prompts, tmp_path):
    path = tmp_path / "judged.jsonl"
    with app_server(judge_app(small_retriever, path)) as base:
        r = httpx.get(base + "/api/judge/results", params={"q": "  ghost in a   lighthouse ", "k": 4}, headers=AUTH)
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["query"] == "ghost in a lighthouse" and data["saved"] == {} and data["timestamp"] is None
        ids = [h["prompt"]["id"] for h in data["results"]]
        assert len(ids) == 4 and [h["grade"] for h in data["results"]] == [None] * 4
        assert ids == [h.prompt.id for h in small_retriever.search("ghost in a lighthouse", k=4)]  # the served top k

        body = {"query": "ghost in a lighthouse", "grades": {ids[0]: 2, ids[1]: 0, ids[2]: 1}}
        r = httpx.post(base + "/api/judgments", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["status"] == "saved" and out["relevant"] == {ids[0]: 2, ids[2]: 1} and out["nonrelevant"] == [ids[1]]
        assert out["queries"] == 1 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out["timestamp"])
        (line,) = lines(path)
        assert line == {k: out[k] for k in ("query", "relevant", "nonrelevant", "timestamp")} | {"source": "owner"}

        data = httpx.get(
            base + "/api/judge/results", params={"q": "Ghost in a Lighthouse", "k": 4}, headers=AUTH
        ).json()
        assert [h["grade"] for h in data["results"]] == [2, 0, 1, None] and data["timestamp"] == out["timestamp"]

        other = {"query": "a robot learns to paint", "grades": {ids[3]: 2}}
        assert httpx.post(base + "/api/judgments", json=other, headers=AUTH).status_code == 200
        again = {"query": "GHOST in a lighthouse", "grades": {ids[0]: 1, ids[3]: 2}}
        r = httpx.post(base + "/api/judgments", json=again, headers=AUTH)
        assert r.status_code == 200 and r.json()["queries"] == 2
    rows = lines(path)
    assert [row["query"] for row in rows] == ["GHOST in a lighthouse", "a robot learns to paint"]  # replaced, not added
    assert rows[0]["relevant"] == {ids[0]: 1, ids[2]: 1, ids[3]: 2} and rows[0]["nonrelevant"] == [ids[1]]
    gs = load_judged_queries(path, small_prompts)  # what `evaluate --judged FILE` reads
    assert sorted(gs.qrels[q.id] == rows[i]["relevant"] for i, q in enumerate(gs.queries)) == [True, True]


@pytest.mark.parametrize(
    "body, problem",
    [
        ({"query": "ghost", "grades": {"ID0": 3}}, "less than or equal to 2"),
        ({"query": "ghost", "grades": {"ID0": -1}}, "greater than or equal to 0"),
        ({"query": "ghost", "grades": {"ID0": "1"}}, "valid integer"),
        ({"query": "ghost", "grades": {"ID0": True}}, "valid integer"),
        ({"query": "ghost", "grades": {"ID0": 1.5}}, "valid integer"),
        ({"query": "ghost", "grades": {}}, "grades"),
        ({"query": "ghost"}, "grades: Field required"),
        (
            {"query": "ghost", "grades": {"no-such-prompt": 1}},
            "no prompt with id 'no-such-prompt' in the served corpus",
        ),
        ({"query": "ghost", "grades": {"../etc/passwd": 1}}, "grades"),
        ({"query": "   ", "grades": {"ID0": 1}}, "query"),
        ({"query": "\u200b\u2800", "grades": {"ID0": 1}}, "query"),
        ({"query": "x" * 513, "grades": {"ID0": 1}}, "at most 512"),
        ({"query": "ghost", "grades": {"ID0": 1}, "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"query": "ghost", "grades": {"ID0": 0, "ID1": 0}}, NO_RELEVANT),
    ],
)
def test_bad_judgments_are_json_errors_and_save_nothing(small_retriever, small_prompts, tmp_path, body, problem):
    ids = {"ID0": small_prompts[0].id, "ID1": small_prompts[1].id}
    if "grades" in body:
        body = {**body, "grades": {ids.get(k, k): v for k, v in body["grades"].items()}}
    path = tmp_path / "j.jsonl"
    with app_server(judge_app(small_retriever, path)) as base:
        r = httpx.post(base + "/api/judgments", json=body, headers=AUTH)
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json" and problem in r.json()["error"], r.json()
    assert not path.exists()


def test_a_failed_save_or_an_unreadable_log_is_a_503_that_says_so(
    small_retriever, small_prompts, tmp_path, monkeypatch
):
    from prompt_retriever.feedback import owner as owner_module

    path = tmp_path / "j.jsonl"
    recorder = FeedbackRecorder(open_store(tmp_path / "log.db"), max_wait=0.05)
    try:
        with app_server(judge_app(small_retriever, path, feedback=recorder)) as base:
            body = {"query": "ghost", "grades": {small_prompts[0].id: 2}}
            assert httpx.post(base + "/api/judgments", json=body, headers=AUTH).status_code == 200
            before = path.read_bytes()

            def full(*_args, **_kwargs):
                raise OSError(28, "No space left on device")

            def down(*_args, **_kwargs):
                raise RuntimeError("connection refused")

            monkeypatch.setattr(owner_module, "atomic_write_jsonl", full)
            monkeypatch.setattr(recorder.store, "queries", down)  # the log read the route makes
            r = httpx.post(base + "/api/judgments", json={**body, "query": "other"}, headers=AUTH)
            assert (
                r.status_code == 503
                and r.json()["error"] == "the judgments could not be saved: No space left on device"
            )
            r = httpx.get(base + "/api/judge/queries", headers=AUTH)
            assert r.status_code == 503 and "type a query instead" in r.json()["error"]
            got = httpx.get(base + "/api/judge/results", params={"q": "other"}, headers=AUTH).json()
            assert got["saved"] == {} and got["timestamp"] is None  # nothing of the failed save was kept
    finally:
        recorder.close()
    assert path.read_bytes() == before


def test_the_log_queries_most_searched_first(small_retriever, tmp_path):
    path = tmp_path / "j.jsonl"
    with app_server(judge_app(small_retriever, path)) as base:  # feedback off: nothing to pick from
        r = httpx.get(base + "/api/judge/queries", headers=AUTH)
        assert r.status_code == 200 and r.json() == {"feedback": False, "days": 30, "queries": []}
    db = tmp_path / "log.db"
    recorder = FeedbackRecorder(open_store(db), max_wait=0.05)
    try:
        with app_server(judge_app(small_retriever, path, feedback=recorder)) as base:
            for q in ["robot", "ghost in a lighthouse", "Ghost in a  lighthouse", "first love", "robot", "robot"]:
                search(base, q)
            assert recorder.flush(10)
            got = httpx.get(base + "/api/judge/queries", params={"limit": 2}, headers=AUTH).json()
            assert got["feedback"] is True
            assert [(q["query"], q["count"], q["judged"]) for q in got["queries"]] == [
                ("robot", 3, False),
                ("Ghost in a lighthouse", 2, False),
            ]
            pid = small_retriever.search("robot", k=1)[0].prompt.id
            assert httpx.post(
                base + "/api/judgments", json={"query": "Robot", "grades": {pid: 2}}, headers=AUTH
            ).is_success
            httpx.get(base + "/api/judge/results", params={"q": "robot"}, headers=AUTH).raise_for_status()
            assert recorder.flush(10)
            got = httpx.get(base + "/api/judge/queries", headers=AUTH).json()["queries"]
            assert [(q["query"], q["count"], q["judged"]) for q in got][0] == ("robot", 3, True)
            for bad in ({"limit": 0}, {"days": 0}, {"limit": "x"}):
                assert httpx.get(base + "/api/judge/queries", params=bad, headers=AUTH).status_code == 422
    finally:
        recorder.close()
    with sqlite3.connect(db) as conn:  # the owner's searches are not writers' searches: not in the log
        assert conn.execute("SELECT count(*) FROM ubi_queries").fetchone() == (6,)


def test_the_page_and_its_script_are_served_under_the_csp(small_retriever, tmp_path):
    with app_server(judge_app(small_retriever, tmp_path / "j.jsonl")) as base:
        for path, kind in (("/judge", "text/html"), ("/static/judge.js", "text/javascript")):
            r = httpx.get(base + path)
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
            assert httpx.head(base + path).status_code == 200
    html, js = (WEB / "judge.html").read_text(), (WEB / "judge.js").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:", html, re.I)
    assert not re.search(
        r"\beval\s*\(|new Function\s*\(|setTimeout\(\s*[\"'`]|innerHTML|outerHTML|insertAdjacentHTML", js
    )
    assert "localStorage" not in js  # the token stays in this tab's sessionStorage


# ------------------------------------------------------------------ the page, in Chromium


def _unlock(page, base: str, token: str = TOKEN) -> None:
    page.goto(base + "/judge")
    page.fill("#token", token)
    page.click("#token-form button[type=submit]")


@needs_chromium
def test_the_owner_picks_a_logged_query_rates_with_buttons_and_keys_and_saves(small_retriever, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    path = tmp_path / "judged.jsonl"
    recorder = FeedbackRecorder(open_store(tmp_path / "log.db"), max_wait=0.05)
    messages: list[str] = []
    try:
        with app_server(judge_app(small_retriever, path, feedback=recorder)) as base, sync_playwright() as p:
            for q in ["ghost in a lighthouse", "ghost in a lighthouse", "robot", "Straße der Geister"]:
                search(base, q)
            assert recorder.flush(10)
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page()
            page.on("console", lambda msg: messages.append(msg.text))
            page.on("pageerror", lambda exc: messages.append(str(exc)))
            _unlock(page, base, "wrong-token-0123456789")
            page.wait_for_selector("#error:not([hidden])")
            assert "refused" in page.text_content("#error") and page.is_visible("#token-form")
            _unlock(page, base)
            page.wait_for_selector("#judging:not([hidden])")
            assert page.evaluate("sessionStorage.getItem('prompt-retriever.admin-token')") == TOKEN
            assert page.evaluate("localStorage.length") == 0 and page.input_value("#token") == ""
            options = page.eval_on_selector_all("#logged option", "os => os.map(o => o.value)")
            # the most searched first, then the most recent
            assert options == ["", "ghost in a lighthouse", "Straße der Geister", "robot"]
            page.select_option("#logged", "ghost in a lighthouse")
            page.wait_for_selector("#results .card")
            ids = page.eval_on_selector_all("#results .card", "cards => cards.map(c => c.dataset.id)")
            assert ids == [h.prompt.id for h in small_retriever.search("ghost in a lighthouse", k=10)]
            cards = page.locator("#results .card")
            cards.nth(0).locator(".grade[data-grade='2']").click()  # a button; the marked card stays the first
            page.keyboard.press("ArrowDown")
            page.keyboard.press("0")  # the second: 0, and on to the third
            page.keyboard.press("1")  # the third: 1
            assert cards.nth(2).locator(".grade[data-grade='1']").get_attribute("aria-pressed") == "true"
            assert "3 of " in page.text_content("#progress") and "not saved" in page.text_content("#progress")
            page.click("#save")
            expect(page.locator("#status")).to_have_text(re.compile(r"^Saved"))  # no string eval: the CSP
            assert "not saved" not in page.text_content("#progress")
            assert page.eval_on_selector("#logged", "s => s.options[1].textContent").startswith("✓ ")
            # typed otherwise: the server's query key (case folded, spaces collapsed) marks the logged query
            page.fill("#jq", "  STRASSE   der  GEISTER ")
            page.click("#query-form button[type=submit]")
            expect(page.locator("#status")).to_contain_text("results for “STRASSE der GEISTER”")
            cards.nth(0).locator(".grade[data-grade='2']").click()
            page.click("#save")
            expect(page.locator("#status")).to_have_text(re.compile(r"^Saved"))
            expect(page.locator("#logged option").nth(2)).to_have_text(re.compile("^✓ Straße der Geister"))
            browser.close()
    finally:
        recorder.close()
    line, _typed = lines(path)
    assert line["query"] == "ghost in a lighthouse" and line["source"] == "owner"
    assert line["relevant"] == {ids[0]: 2, ids[2]: 1} and line["nonrelevant"] == [ids[1]]
    assert not [m for m in messages if "Content Security Policy" in m or "Refused" in m], messages


@needs_chromium
def test_a_typed_query_all_not_relevant_is_refused_then_saved_and_shown_again(small_retriever, small_prompts, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    path = tmp_path / "judged.jsonl"
    query = "<img src=x onerror=window.pwned=1> robot"  # shown as text, never as HTML
    with app_server(judge_app(small_retriever, path)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page()
        _unlock(page, base)
        page.wait_for_selector("#judging:not([hidden])")
        assert "no search log" in page.text_content("#log-note") and page.is_disabled("#logged")
        page.fill("#jq", query)
        page.select_option("#k", "5")
        page.click("#query-form button[type=submit]")
        page.wait_for_selector("#results .card")
        assert page.locator("#results .card").count() == 5
        page.locator("#results .card").nth(0).focus()
        for _ in range(5):
            page.keyboard.press("0")
        page.click("#save")
        page.wait_for_selector("#error:not([hidden])")
        assert NO_RELEVANT in page.text_content("#error")
        assert not path.exists()
        page.locator("#results .card").nth(3).locator(".grade[data-grade='2']").click()
        page.click("#save")
        expect(page.locator("#status")).to_have_text(re.compile(r"^Saved"))  # no string eval: the CSP
        assert page.evaluate("window.pwned") is None and page.locator("img").count() == 0
        ids = page.eval_on_selector_all("#results .card", "cards => cards.map(c => c.dataset.id)")

        page.reload()  # the token is kept for this tab: unlocked at once; the saved grades are shown
        page.wait_for_selector("#judging:not([hidden])")
        page.fill("#jq", query)
        page.click("#query-form button[type=submit]")
        page.wait_for_selector("#results .card")
        pressed = page.eval_on_selector_all(
            "#results .card", "cs => cs.map(c => c.querySelector('.grade[aria-pressed=true]')?.dataset.grade ?? null)"
        )
        assert pressed[:5] == ["0", "0", "0", "2", "0"] and "Judged before" in page.text_content("#status")
        page.click("#forget")
        assert page.is_visible("#token-form")
        assert page.evaluate("sessionStorage.getItem('prompt-retriever.admin-token')") is None
        browser.close()
    (line,) = lines(path)
    assert line["query"] == query and line["relevant"] == {ids[3]: 2}
    assert sorted(line["nonrelevant"]) == sorted(ids[:3] + ids[4:])
    assert len(load_judged_queries(path, small_prompts).queries) == 1
