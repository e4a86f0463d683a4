"""The feedback log through the real HTTP API, in SQLite: `serve --feedback FILE` (a real server process),
searches and events linked by `query_id`, refusals with JSON errors, nothing about the client's address
stored, a full queue that drops with an exact counter while searches are answered, `feedback export --ubi`
validated against the UBI 1.3.0 JSON schemas (tests/data/ubi), and `feedback purge`."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from feedback_util import app_server, event, search, wait_for
from server_util import running_server
from typer.testing import CliRunner

from prompt_retriever.cli import app as cli
from prompt_retriever.feedback import EventRecord, FeedbackRecorder, QueryRecord, open_store
from prompt_retriever.feedback.records import now
from prompt_retriever.feedback.store import read_text, store_text
from prompt_retriever.serving.api import create_app
from prompt_retriever.serving.events import MAX_EVENT_BYTES, RateLimiter, add_event_routes

DATA = Path(__file__).parent / "data"
UBI = DATA / "ubi" / "1.3.0"
runner = CliRunner()
CLIENT = "5e3b2a1c-8b7d-4f2e-a3d4-c9b2e1f3a4b5"


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_corpus_path):
    """A real `prompt-retriever serve --feedback FILE` process."""
    db = tmp_path_factory.mktemp("feedback") / "feedback.db"
    with running_server("--corpus", str(small_corpus_path), "--feedback", str(db)) as base:
        yield base, db


@pytest.fixture(scope="module")
def linked(served):
    """One search, then an open of its first result and a copy of its second, through the server."""
    base, db = served
    answer = search(base, "ghost in a lighthouse", client_id=CLIENT, k=5)
    ids = [h["prompt"]["id"] for h in answer["results"]]
    for action, pos in (("open", 1), ("copy", 2)):
        r = httpx.post(base + "/api/events", json=event(answer["query_id"], action, ids[pos - 1], pos, CLIENT))
        assert r.status_code == 202 and r.json() == {"status": "queued"}, r.text
    return answer, ids


def stored(db: Path) -> tuple[list[dict], list[dict]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        qs = [dict(r) for r in conn.execute("SELECT * FROM ubi_queries")]
        es = [dict(r) for r in conn.execute("SELECT * FROM ubi_events ORDER BY event_id")]
    return qs, es


def test_every_search_answer_has_a_query_id_and_says_feedback_is_on(served):
    base, _ = served
    a, b = search(base, "robot"), search(base, "robot")
    assert a["feedback"] is True and b["feedback"] is True
    assert len(a["query_id"]) == 36 and a["query_id"] != b["query_id"]
    odd = search(base, "robot", client_id="not an id!")  # a bad client id never fails a search: not kept
    wait_for(lambda: [q for q in stored(served[1])[0] if q["query_id"] == odd["query_id"]], what="query stored")
    assert [q["client_id"] for q in stored(served[1])[0] if q["query_id"] == odd["query_id"]] == [None]


def test_search_open_and_copy_arrive_in_sqlite_linked_to_their_query(served, linked):
    base, db = served
    answer, ids = linked
    qid = answer["query_id"]
    wait_for(lambda: len([e for e in stored(db)[1] if e["query_id"] == qid]) == 2, what="both events stored")
    queries, events = stored(db)
    (query,) = [q for q in queries if q["query_id"] == qid]
    assert query["user_query"] == "ghost in a lighthouse" and query["client_id"] == CLIENT and query["k"] == 5
    assert json.loads(query["object_ids"]) == ids
    mine = [(e["action_name"], e["object_id"], e["position"], e["client_id"]) for e in events if e["query_id"] == qid]
    assert mine == [("open", ids[0], 1, CLIENT), ("copy", ids[1], 2, CLIENT)]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_no_client_address_is_stored(served, linked):
    _, db = served
    wait_for(lambda: stored(db)[1], what="events stored")
    for path in db.parent.glob(db.name + "*"):  # the database, its write-ahead log and shared memory
        data = path.read_bytes()
        assert b"127.0.0.1" not in data and b"localhost" not in data, path


def _post(base: str, body) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(base + "/api/events", content=body, headers={"content-type": "application/json"})
    return httpx.post(base + "/api/events", json=body)


def test_malformed_oversized_and_unknown_events_are_refused_with_json_errors(served, linked):
    base, db = served
    answer, ids = linked
    qid = answer["query_id"]
    good = event(qid, "use", ids[0], 1, CLIENT)
    unknown = "00112233-4455-6677-8899-aabbccddeeff"
    cases = [
        (b"{not json", 422, "json"),
        ({**good, "action_name": "delete_everything"}, 422, "action_name"),
        ({**good, "ip": "10.0.0.1"}, 422, "ip"),  # no field beyond the ones taken
        ({k: v for k, v in good.items() if k != "client_id"}, 422, "client_id"),
        ({**good, "client_id": "<script>"}, 422, "client_id"),
        ({**good, "query_id": "not-a-uuid"}, 422, "query_id"),
        (event(qid, "open", ids[0], 0, CLIENT), 422, "ordinal"),
        (
            {**good, "event_attributes": {"object": {"object_id": "x" * 200}, "position": {"ordinal": 1}}},
            422,
            "object_id",
        ),
        ({**good, "padding": "x" * MAX_EVENT_BYTES}, 413, f"{MAX_EVENT_BYTES} bytes"),
        (event(unknown, "open", ids[0], 1, CLIENT), 422, f"unknown query_id {unknown}"),
        (event(qid, "open", "no-such-prompt", 1, CLIENT), 422, "not among the results"),
        (event(qid, "open", ids[1], 1, CLIENT), 422, "answered at position 2"),
    ]
    before = len(stored(db)[1])
    for body, status, words in cases:
        r = _post(base, body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert words.lower() in r.json()["error"].lower(), (words, r.json())
    r = httpx.get(base + "/api/events")
    assert r.status_code == 405 and "error" in r.json()
    time.sleep(0.5)  # longer than the writer's batch wait: a refused event would have been written by now
    assert len(stored(db)[1]) == before


def test_feedback_is_off_unless_asked(small_retriever):
    client = TestClient(create_app(small_retriever))
    answer = client.get("/api/search", params={"q": "robot"}).json()
    assert len(answer["query_id"]) == 36 and "feedback" not in answer  # the page sends no events
    r = client.post("/api/events", json=event(answer["query_id"], "open", answer["results"][0]["prompt"]["id"], 1))
    assert r.status_code == 404 and "error" in r.json()
    assert "/api/events" not in client.get("/openapi.json").json()["paths"]


def test_events_past_an_address_rate_are_refused_429(small_retriever, tmp_path):
    recorder = FeedbackRecorder(open_store(tmp_path / "f.db"))
    app = create_app(small_retriever)  # no events route: this one's limiter is tight
    app.state.feedback = recorder
    add_event_routes(app, recorder, RateLimiter(rate=0.5, burst=3))
    try:
        client = TestClient(app)
        answer = client.get("/api/search", params={"q": "robot"}).json()
        body = event(answer["query_id"], "open", answer["results"][0]["prompt"]["id"], 1)
        codes = [client.post("/api/events", json=body).status_code for _ in range(4)]
        assert codes == [202, 202, 202, 429]
        r = client.post("/api/events", json=body)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "too many" in r.json()["error"]
    finally:
        recorder.close()


def test_a_full_queue_drops_with_an_exact_counter_and_never_blocks_a_search(small_retriever, tmp_path):
    """The store is locked by another writer (a real SQLite lock): the writer thread waits on it, the
    queue fills, and what does not fit is dropped and counted, while every search is answered at once.
    An event about a search that was dropped is refused as unknown: every event stored has its search."""
    db = tmp_path / "locked.db"
    recorder = FeedbackRecorder(open_store(db), capacity=6, batch_size=2, max_wait=0.05)
    app = create_app(small_retriever, feedback=recorder)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    statuses, slowest, refused = [], 0.0, 0
    try:
        with app_server(app) as base:
            for i in range(10):
                t0 = time.perf_counter()
                dropped_before = recorder.stats().dropped
                answer = search(base, f"robot {i}", k=3)
                slowest = max(slowest, time.perf_counter() - t0)
                search_dropped = recorder.stats().dropped > dropped_before
                body = event(answer["query_id"], "open", answer["results"][0]["prompt"]["id"], 1)
                r = httpx.post(base + "/api/events", json=body, timeout=30)
                if search_dropped:
                    assert r.status_code == 422 and "unknown query_id" in r.json()["error"], r.text
                    refused += 1
                else:
                    assert r.status_code == 202
                    statuses.append(r.json()["status"])
            stats = recorder.stats()
            assert refused > 0 and stats.offered == 20 - refused and stats.written == 0 and stats.dropped > 0
            scraped = _scrape(base)
            assert scraped["prompt_retriever_feedback_records_dropped_total"] == stats.dropped
            assert scraped["prompt_retriever_feedback_records_offered_total"] == 20 - refused
            assert statuses.count("dropped") <= stats.dropped  # searches dropped too: those are not answered so
        lock.execute("ROLLBACK")
        assert recorder.flush(30)
    finally:
        lock.close()
        recorder.close()
    stats = recorder.stats()
    queries, events = stored(db)
    assert stats.written == len(queries) + len(events) == stats.offered - stats.dropped
    assert stats.failed == 0 and stats.dropped >= stats.offered - 6 - 2  # at most the queue plus a batch in hand
    assert len(events) == statuses.count("queued")
    assert {e["query_id"] for e in events} <= {q["query_id"] for q in queries}
    assert slowest < 5.0  # a search never waited for the store (the lock was held throughout)


def _scrape(base: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(base + "/metrics").text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_export_is_ubi_and_validates_against_the_ubi_json_schemas(served, linked, tmp_path):
    import jsonschema_rs

    _, db = served
    qid = linked[0]["query_id"]
    wait_for(lambda: len([e for e in stored(db)[1] if e["query_id"] == qid]) == 2, what="events stored")
    res = runner.invoke(cli, ["feedback", "export", "--feedback", str(db), "--ubi", str(tmp_path / "ubi")])
    assert res.exit_code == 0, res.output
    queries = [json.loads(line) for line in (tmp_path / "ubi" / "ubi_queries.jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in (tmp_path / "ubi" / "ubi_events.jsonl").read_text().splitlines()]
    schemas = {name: json.loads((UBI / f"{name}.schema.json").read_text()) for name in ("query.request", "event")}
    validate = {name: jsonschema_rs.validator_for(s, validate_formats=True) for name, s in schemas.items()}
    for q in queries:
        validate["query.request"].validate(q)
    for e in events:
        validate["event"].validate(e)
    (q,) = [q for q in queries if q["query_id"] == qid]
    assert {"query_id", "client_id", "user_query", "query_response_object_ids", "timestamp"} <= set(q)
    assert q["client_id"] == CLIENT and q["query_response_object_ids"] == linked[1]
    assert q["timestamp"].endswith("Z")
    mine = [e for e in events if e["query_id"] == qid]
    assert [(e["action_name"], e["event_attributes"]["object"]["object_id"]) for e in mine] == [
        ("open", linked[1][0]),
        ("copy", linked[1][1]),
    ]
    assert [e["event_attributes"]["position"]["ordinal"] for e in mine] == [1, 2]
    assert all(e["client_id"] == CLIENT and e["timestamp"].endswith("Z") for e in mine)
    # the validator is not a formality: a query without user_query, an event without a timestamp fail
    assert not validate["query.request"].is_valid({k: v for k, v in q.items() if k != "user_query"})
    assert not validate["event"].is_valid({k: v for k, v in mine[0].items() if k != "timestamp"})


def test_purge_removes_what_is_older_and_the_events_about_it(tmp_path):
    db = tmp_path / "purge.db"
    store = open_store(db)
    t = now()
    old = QueryRecord("00000000-0000-4000-8000-000000000001", t - timedelta(days=100), "c-old-0001", "old", ("a",), 1)
    new = QueryRecord("00000000-0000-4000-8000-000000000002", t - timedelta(days=10), "c-new-0001", "new", ("b",), 1)
    store.write(
        [old, new],
        [
            EventRecord(old.query_id, t - timedelta(days=99), "c-old-0001", "open", "a", 1),
            EventRecord(old.query_id, t - timedelta(days=80), "c-old-0001", "copy", "a", 1),  # newer, old query
            EventRecord(new.query_id, t - timedelta(days=9), "c-new-0001", "open", "b", 1),
        ],
    )
    store.close()
    res = runner.invoke(cli, ["feedback", "purge", "--feedback", str(db), "--older-than", "90d"])
    assert res.exit_code == 0, res.output
    assert "removed 1 searches and 2 events" in res.output
    store = open_store(db)
    assert store.counts() == (1, 1)
    assert store.query(new.query_id) is not None and store.query(old.query_id) is None
    assert [e.query_id for e in store.iter_events()] == [new.query_id]
    store.close()
    res = runner.invoke(cli, ["feedback", "purge", "--feedback", str(db), "--older-than", "ninety days"])
    assert res.exit_code == 2 and "90d" in res.output


def test_a_store_that_cannot_be_opened_is_named_with_its_password_hidden(tmp_path):
    res = runner.invoke(cli, ["feedback", "stats", "--feedback", "postgresql://writer:s3cret@127.0.0.1:1/feedback"])
    assert res.exit_code == 2
    assert "cannot open the feedback store postgresql://writer:***@127.0.0.1:1/feedback" in res.output
    assert "s3cret" not in res.output
    res = runner.invoke(cli, ["feedback", "export", "--feedback", str(tmp_path / "none.db"), "--ubi", str(tmp_path)])
    assert res.exit_code == 2 and "no feedback store at" in res.output
    res = runner.invoke(cli, ["feedback", "stats", "--feedback", "mysql://u:pw@db/x"])
    assert res.exit_code == 2 and "mysql:// is not supported" in res.output and "pw" not in res.output


def test_export_refuses_to_replace_an_earlier_export_unless_forced(tmp_path):
    db = tmp_path / "f.db"
    store = open_store(db)
    store.write([QueryRecord("00000000-0000-4000-8000-000000000009", now(), None, "tide", ("a",), 1)], [])
    store.close()
    out = tmp_path / "ubi"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["feedback", "export", "--feedback", str(db), "--ubi", str(out)]
    assert runner.invoke(cli, args).exit_code == 0  # a folder holding other files: written into
    (out / "ubi_events.jsonl").write_text("an earlier export\n")
    res = runner.invoke(cli, args)
    assert res.exit_code == 2 and "already holds ubi_queries.jsonl and ubi_events.jsonl" in res.output
    assert "--force" in res.output and (out / "ubi_events.jsonl").read_text() == "an earlier export\n"
    res = runner.invoke(cli, [*args, "--force"])
    assert res.exit_code == 0, res.output
    assert (out / "ubi_events.jsonl").read_text() == "" and (out / "notes.txt").read_text() == "mine"
    assert "tide" in (out / "ubi_queries.jsonl").read_text()


def test_shutdown_with_a_store_that_does_not_answer_counts_what_is_left_as_dropped(tmp_path, caplog):
    """The store is locked (a real SQLite lock) when the server shuts down: `close` waits its timeout,
    then counts the records still queued as dropped and logs how many, instead of losing them silently."""
    db = tmp_path / "stuck.db"
    recorder = FeedbackRecorder(open_store(db, busy_timeout=5), capacity=20, batch_size=2, max_wait=0.01)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(8):
            q = QueryRecord(f"00000000-0000-4000-8000-{i:012d}", now(), None, "q", ("a",), 1)
            assert recorder.record_query(q)
        wait_for(lambda: recorder.stats().queued < 8, what="a batch taken")
        time.sleep(0.1)  # the writer waits on the lock with its batch in hand
        queued = recorder.stats().queued
        with caplog.at_level(logging.ERROR, logger="prompt_retriever.feedback"):
            t0 = time.monotonic()
            recorder.close(timeout=0.3)
            assert time.monotonic() - t0 < 3
        stats = recorder.stats()
        assert queued > 0 and stats.dropped == queued and stats.written == 0
        assert f"{queued} records still queued are dropped" in caplog.text
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_for(lambda: recorder.stats().written == 8 - queued, what="the batch in hand written")
    assert open_store(db).counts() == (8 - queued, 0)


def test_stored_text_escapes_nul_reversibly():
    """`store_text` leaves ordinary text alone, never stores a NUL, and `read_text` gives back every text."""
    assert store_text("haunted lighthouse") == "haunted lighthouse" and store_text(None) is None
    assert store_text("haunted\x00 lighthouse") == "haunted\\u0000 lighthouse"
    for n in range(1, 6):
        for parts in itertools.product(["\\", "\x00", "u0000", "u", "0", "a"], repeat=n):
            text = "".join(parts)
            stored = store_text(text)
            assert "\x00" not in stored and read_text(stored) == text, (text, stored)
