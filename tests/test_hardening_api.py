"""The app's own answers to odd requests: HEAD, 405 with Allow, JSON errors only, ids as the corpus
allows them, an offline /docs page, control characters escaped in the access log."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient

from prompt_retriever.corpus import ID_RE as _ID_RE
from prompt_retriever.serving.api import ID_PATTERN, create_app, log_safe

EXTERNAL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", re.IGNORECASE)


@pytest.fixture(scope="module")
def client(small_retriever):
    return TestClient(create_app(small_retriever), raise_server_exceptions=False)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/api/facets", "/api/search?q=robot", "/", "/docs"])
def test_head_works_on_every_get_route(client, path):
    get, head = client.get(path), client.head(path)
    assert get.status_code == 200 and head.status_code == 200, (head.status_code, head.text)
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_every_405_carries_allow_and_is_json(client):
    for method, path in [("POST", "/api/search"), ("DELETE", "/healthz"), ("PUT", "/api/prompts/x"), ("POST", "/")]:
        r = client.request(method, path)
        assert r.status_code == 405, (method, path)
        assert r.headers["content-type"] == "application/json" and r.json()["error"]
        assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "HEAD"}


def test_server_errors_are_json(small_retriever):
    app = create_app(small_retriever)

    def broken(_requests):
        raise RuntimeError("model crashed")

    app.state.batcher.run_fn = broken
    r = TestClient(app, raise_server_exceptions=False).get("/api/search", params={"q": "x"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "internal server error"}  # no traceback or message leaks
    # answered past the middleware, yet with the security headers, once each
    assert r.headers.get_list("x-frame-options") == ["DENY"] and r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_prompt_ids_follow_the_corpus_rule(client):
    assert ID_PATTERN.pattern == f"^{_ID_RE.pattern}$"
    for ok in ("Bad_ID.x", "UPPER", "a_b", "x" * 120, "0.9-rc_1"):  # valid corpus ids: looked up, not refused
        r = client.get(f"/api/prompts/{ok}")
        assert r.status_code == 404 and "no prompt with id" in r.json()["error"], ok
    for bad in ("_x", ".hidden", "-x", "x" * 121, "a b", "a%0ab", "a:b"):
        r = client.get(f"/api/prompts/{bad}")
        assert r.status_code == 422 and "prompt_id" in r.json()["error"], bad
    schema = client.get("/openapi.json").json()["paths"]["/api/prompts/{prompt_id}"]["get"]["parameters"][0]
    assert schema["schema"]["pattern"] == ID_PATTERN.pattern


def test_a_csv_id_returned_by_search_can_be_fetched(tmp_path, small_retriever):
    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.search.retriever import PromptRetriever

    path = tmp_path / "c.csv"
    path.write_text(
        "id,genre,theme,title,text\n"
        "Bad_ID.x,Horror,Grief,The Keeper,A lighthouse keeper logs a ghost every night.\n"
        "ok-2,Romance,Love,Night Train,Two strangers share a sleeper cabin.\n"
    )
    retriever = PromptRetriever()
    retriever.encoder = small_retriever.encoder  # the model already loaded; nothing else is shared
    c = TestClient(create_app(retriever.index(load_corpus(path))))
    top = c.get("/api/search", params={"q": "lighthouse ghost", "k": 1}).json()["results"][0]["prompt"]
    assert top["id"] == "Bad_ID.x"
    r = c.get(f"/api/prompts/{top['id']}")
    assert r.status_code == 200 and r.json() == top


def test_docs_page_works_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(page.text), EXTERNAL.search(page.text)
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page.text)
    assert scripts, "the docs page renders the schema with a local script"
    for src in scripts + re.findall(r'<link[^>]*href="([^"]+)"', page.text):
        assert src.startswith("/"), src
        asset = client.get(src)
        assert asset.status_code == 200 and not EXTERNAL.search(asset.text), src
    assert client.get("/redoc").status_code == 404  # FastAPI's CDN-based pages are off
    assert client.get("/docs/oauth2-redirect").status_code == 404
    assert not EXTERNAL.search(client.get("/").text)


def test_log_safe_escapes_control_characters():
    assert log_safe("/a\nb\r\x1b[31m\x00\x7f\x85\u2028\\") == "/a\\nb\\r\\x1b[31m\\x00\\x7f\\x85\\u2028\\\\"
    assert log_safe("/api/search ümlaut") == "/api/search ümlaut"


def test_access_log_escapes_every_field(small_retriever, caplog):
    c = TestClient(create_app(small_retriever, log_queries=True))
    with caplog.at_level(logging.INFO, logger="prompt_retriever.api"):
        c.get("/api/prompts/a%0aFORGED%0d")
        c.get("/api/search/%1b[31m%e2%80%a8?q=x%0aFORGED")
    lines = [r.getMessage() for r in caplog.records if r.name == "prompt_retriever.api"]
    assert len(lines) == 2, lines
    assert all("\n" not in m and "\r" not in m and "\x1b" not in m for m in lines), lines
    assert "/api/prompts/a\\nFORGED\\r" in lines[0]
    assert "/api/search/\\x1b[31m\\u2028?q=x%0aFORGED 404" in lines[1]  # the raw query string stays encoded
