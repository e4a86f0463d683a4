"""`GET /metrics` of a real server (uvicorn over HTTP, feedback on in SQLite, a BM25 run so that a search can
find nothing): parsed with prometheus-client's own text parser, it counts exactly the requests, errors,
searches, zero-result searches, clicks, click-through rate and mean reciprocal rank this test caused,
per route template and run, and never carries a path or a query the client wrote. Two apps in one process
count apart (a registry per app). No mocks."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from feedback_util import app_server
from prometheus_client.parser import text_string_to_metric_families

from prompt_retriever.feedback import FeedbackRecorder, open_store
from prompt_retriever.search.retriever import PromptRetriever
from prompt_retriever.serving.api import create_app
from prompt_retriever.serving.metrics import ServiceMetrics

P = "prompt_retriever"
CLIENT = "metrics-test-client-01"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, for every sample of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory, small_prompts):
    """A real uvicorn serving a BM25 run with feedback on (SQLite), in this process: the model and the
    libraries the other tests loaded are not loaded again."""
    tmp = tmp_path_factory.mktemp("metrics")
    PromptRetriever(system="bm25").index(small_prompts).save_run(tmp / "run-m", {"label": "BM25 run"})
    recorder = FeedbackRecorder(open_store(str(tmp / "feedback.sqlite")))
    try:
        with app_server(create_app(PromptRetriever.from_run(tmp / "run-m"), feedback=recorder)) as base:
            yield base
    finally:
        recorder.close()


def event(query: dict, action: str, position: int) -> dict:
    hit = query["results"][position - 1]
    return {
        "action_name": action,
        "query_id": query["query_id"],
        "client_id": CLIENT,
        "event_attributes": {"object": {"object_id": hit["prompt"]["id"]}, "position": {"ordinal": position}},
    }


def test_metrics_count_what_was_done(server):
    before = samples(httpx.get(server + "/metrics").text)
    with httpx.Client(base_url=server, timeout=30) as c:
        found = [c.get("/api/search", params={"q": q, "k": 3}).json() for q in ("lighthouse", "night", "grief")]
        assert all(f["results"] for f in found), found
        for q in ("zzzqqx", "qqqzzx"):  # no word of the corpus: BM25 finds nothing
            r = c.get("/api/search", params={"q": q})
            assert r.status_code == 200 and r.json()["results"] == []
        assert c.get("/api/search", params={"q": "x", "k": 0}).status_code == 422
        assert c.get("/api/prompts/no-such-prompt").status_code == 404
        assert c.get("/no/such/path-SECRET-PATH", params={"q": "SECRET-QUERY"}).status_code == 404
        assert c.post("/api/search", params={"q": "x"}).status_code == 405
        assert c.head("/api/facets").status_code == 200
        # clicks: an open at rank 1 and one at rank 2 (1/1 and 1/2), a copy (not a click)
        for query, action, position in ((found[0], "open", 1), (found[1], "open", 2), (found[1], "copy", 2)):
            r = c.post("/api/events", json=event(query, action, position), headers={"X-Client-Id": CLIENT})
            assert r.status_code == 202, r.text
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    assert "SECRET" not in r.text
    after = samples(r.text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    def requests(method: str, route: str, status: int) -> float:
        return grew(f"{P}_http_requests_total", method=method, route=route, status=str(status))

    assert requests("GET", "/api/search", 200) == 5
    assert requests("GET", "/api/search", 422) == 1
    assert requests("GET", "/api/prompts/{prompt_id}", 404) == 1
    assert requests("GET", "unmatched", 404) == 1
    assert requests("POST", "/api/search", 405) == 1
    assert requests("HEAD", "/api/facets", 200) == 1
    assert requests("POST", "/api/events", 202) == 3
    assert grew(f"{P}_http_request_errors_total", method="GET", route="/api/search", status="422") == 1
    assert grew(f"{P}_http_request_errors_total", method="GET", route="/api/search", status="200") == 0
    # the latency histogram of the search route: 6 more observations, buckets cumulative
    assert grew(f"{P}_http_request_duration_seconds_count", method="GET", route="/api/search") == 6
    buckets = sorted(
        (float(dict(k[1])["le"]), v)
        for k, v in after.items()
        if k[0] == f"{P}_http_request_duration_seconds_bucket" and dict(k[1])["route"] == "/api/search"
        and dict(k[1])["method"] == "GET"
    )  # fmt: skip
    assert buckets[-1][0] == float("inf") and [v for _, v in buckets] == sorted(v for _, v in buckets)
    # per run: searches, zero-result searches, clicks, CTR and MRR
    assert grew(f"{P}_searches_total", run="run-m") == 5
    assert grew(f"{P}_zero_result_searches_total", run="run-m") == 2
    assert grew(f"{P}_feedback_events_total", run="run-m", action="copy") == 1
    assert grew(f"{P}_clicks_total", run="run-m") == 2
    assert grew(f"{P}_clicked_searches_total", run="run-m") == 2
    assert grew(f"{P}_first_click_reciprocal_rank_total", run="run-m") == pytest.approx(1 + 1 / 2)
    searches = value(after, f"{P}_searches_total", run="run-m")
    clicked = value(after, f"{P}_clicked_searches_total", run="run-m")
    assert value(after, f"{P}_click_through_rate", run="run-m") == pytest.approx(clicked / searches)
    assert value(after, f"{P}_clicked_mrr", run="run-m") == pytest.approx((1 + 1 / 2) / 2)


def test_each_app_counts_apart_and_rates_follow_the_events(small_prompts):
    retriever = PromptRetriever(system="bm25").index(small_prompts)
    one, two = create_app(retriever), create_app(retriever)
    with TestClient(one) as c1, TestClient(two) as c2:
        for _ in range(3):
            c1.get("/api/search", params={"q": "lighthouse"})
        c2.get("/api/search", params={"q": "zzzqqx"})
        s1, s2 = samples(c1.get("/metrics").text), samples(c2.get("/metrics").text)
    route = {"method": "GET", "route": "/api/search", "status": "200"}
    assert value(s1, f"{P}_http_requests_total", **route) == 3 and value(s2, f"{P}_http_requests_total", **route) == 1
    assert value(s1, f"{P}_zero_result_searches_total", run="") == 0
    assert value(s2, f"{P}_zero_result_searches_total", run="") == 1

    m = ServiceMetrics(process=False)
    for _ in range(4):
        m.observe_search("a", results=3)
    m.observe_event("a", "open", 1)  # the first click on a search
    m.observe_event("a", "open", 3, first_of_search=False)  # another result of it: a click, not another search
    m.observe_event("a", "open", 4)  # the first click on a second search, at rank 4
    m.observe_event("a", "open", 4, first_of_result=False, first_of_search=False)  # opened again: not counted
    m.observe_event("a", "thumbs_up", 1)
    assert m.click_through_rate("a") == 2 / 4
    assert m.mean_reciprocal_rank("a") == (1 + 1 / 4) / 2
    assert value(samples(m.exposition().decode()), f"{P}_clicks_total", run="a") == 3
    with pytest.raises(ValueError, match="rank"):
        m.observe_event("a", "open", 0)
    assert m.click_through_rate("b") is None and m.mean_reciprocal_rank("b") is None
    # labels the client could push are capped: never more than MAX_RUNS runs
    for i in range(200):
        m.observe_search(f"run-{i}", results=1)
    runs = {dict(k[1])["run"] for k in samples(m.exposition().decode()) if k[0] == f"{P}_searches_total"}
    assert len(runs) == 65 and "other" in runs


def test_a_result_opened_200_times_is_one_click_of_one_clicked_search(small_prompts, tmp_path):
    """The page may report an open again (a writer opens a prompt twice, a client replays): every event is
    stored, but a click counts once per result of a search, so the click-through rate stays a share."""
    recorder = FeedbackRecorder(open_store(str(tmp_path / "f.db")), max_wait=0.05)
    app = create_app(PromptRetriever(system="bm25").index(small_prompts), feedback=recorder, feedback_rate=10_000)
    try:
        with app_server(app) as base, httpx.Client(base_url=base, timeout=30) as c:
            a, b = (c.get("/api/search", params={"q": q, "k": 3}).json() for q in ("lighthouse", "night"))
            for _ in range(200):
                assert c.post("/api/events", json=event(a, "open", 2)).status_code == 202
            assert c.post("/api/events", json=event(a, "open", 1)).status_code == 202  # another result: a click
            assert c.post("/api/events", json=event(b, "copy", 1)).status_code == 202  # not a click
            scrape = samples(c.get("/metrics").text)
        assert recorder.flush(30)
        assert recorder.store.counts() == (2, 202)  # the repeats are stored: the log keeps what came
    finally:
        recorder.close()
    assert value(scrape, f"{P}_feedback_events_total", run="", action="open") == 201
    assert value(scrape, f"{P}_clicks_total", run="") == 2
    assert value(scrape, f"{P}_clicked_searches_total", run="") == 1
    assert value(scrape, f"{P}_first_click_reciprocal_rank_total", run="") == 1 / 2
    assert value(scrape, f"{P}_click_through_rate", run="") == 1 / 2 <= 1
    assert value(scrape, f"{P}_clicked_mrr", run="") == 1 / 2
