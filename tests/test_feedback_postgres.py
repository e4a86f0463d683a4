"""The feedback log in a real PostgreSQL server that the test starts (Debian's `postgresql`: initdb and
pg_ctl in a temporary folder, a Unix socket only), through the real HTTP API: two servers share one log,
so an event may reach another server than the one that answered its search; export and purge read it."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from feedback_util import app_server, event, pg_bin, postgres_server, search
from typer.testing import CliRunner

from prompt_retriever.cli import app as cli
from prompt_retriever.feedback import BatchWriter, EventRecord, FeedbackRecorder, QueryRecord, open_store
from prompt_retriever.feedback.records import now
from prompt_retriever.serving.api import create_app

pytestmark = pytest.mark.skipif(
    pg_bin("initdb") is None or pg_bin("pg_ctl") is None,
    reason="PostgreSQL server programs not installed (apt-get install postgresql; .ci/run does)",
)
CLIENT = "pg-client-000001"


@pytest.fixture(scope="module")
def pg_url():
    folder = Path(tempfile.mkdtemp(prefix="pr-pg-"))  # not pytest's tmp (0700 root): the server runs as postgres
    try:
        with postgres_server(folder) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_two_servers_share_one_postgres_log(small_retriever, pg_url, tmp_path):
    a = FeedbackRecorder(open_store(pg_url), max_wait=0.05)
    b = FeedbackRecorder(open_store(pg_url), max_wait=0.05)
    try:
        with (
            app_server(create_app(small_retriever, feedback=a)) as base_a,
            app_server(create_app(small_retriever, feedback=b)) as base_b,
        ):
            nul = search(base_a, "haunted\x00 lighthouse", client_id=CLIENT, k=2)  # PostgreSQL text refuses NUL
            answer = search(base_a, "ghost in a lighthouse", client_id=CLIENT, k=4)
            qid, ids = answer["query_id"], [h["prompt"]["id"] for h in answer["results"]]
            r = httpx.post(base_a + "/api/events", json=event(qid, "open", ids[0], 1, CLIENT))
            assert r.status_code == 202, r.text
            assert a.flush(30)  # the search is in the shared log: server b knows it from there
            r = httpx.post(base_b + "/api/events", json=event(qid, "copy", ids[2], 3, CLIENT))
            assert r.status_code == 202 and r.json()["status"] == "queued", r.text
            r = httpx.post(base_b + "/api/events", json=event(qid, "open", ids[2], 1, CLIENT))
            assert r.status_code == 422 and "answered at position 3" in r.json()["error"]
            unknown = "00112233-4455-6677-8899-aabbccddeeff"
            r = httpx.post(base_b + "/api/events", json=event(unknown, "open", ids[0], 1, CLIENT))
            assert r.status_code == 422 and "unknown query_id" in r.json()["error"]
            assert b.flush(30)
    finally:
        a.close()
        b.close()
    store = open_store(pg_url)
    try:
        assert store.query(nul["query_id"]).user_query == "haunted\x00 lighthouse"  # stored escaped, read back
        query = store.query(qid)
        assert query is not None and query.object_ids == tuple(ids) and query.client_id == CLIENT
        assert query.user_query == "ghost in a lighthouse" and query.k == 4
        got = [(e.action_name, e.object_id, e.position, e.client_id) for e in store.iter_events() if e.query_id == qid]
        assert got == [("open", ids[0], 1, CLIENT), ("copy", ids[2], 3, CLIENT)]
    finally:
        store.close()

    runner = CliRunner()
    res = runner.invoke(cli, ["feedback", "export", "--feedback", pg_url, "--ubi", str(tmp_path / "ubi")])
    assert res.exit_code == 0, res.output
    assert qid in (tmp_path / "ubi" / "ubi_queries.jsonl").read_text()
    assert (tmp_path / "ubi" / "ubi_events.jsonl").read_text().count(qid) == 2
    res = runner.invoke(cli, ["feedback", "purge", "--feedback", pg_url, "--older-than", "90d"])
    assert res.exit_code == 0 and "removed 0 searches and 0 events" in res.output, res.output
    store = open_store(pg_url)
    try:
        assert store.purge(now() + timedelta(seconds=1)) == (2, 2) and store.counts() == (0, 0)
    finally:
        store.close()


def test_one_record_the_store_refuses_costs_only_itself(pg_url):
    """One batch: a query with a NUL (stored escaped), one PostgreSQL refuses (a client id over its column's
    100 characters), good ones and an event. The refused batch is written record by record: only the
    bad record is lost, counted failed."""
    from sqlalchemy import text

    def qid(i: int) -> str:
        return f"00000000-0000-4000-8000-{i:012d}"

    t = now()
    nul = QueryRecord(qid(1), t, CLIENT, "haunted\x00 lighthouse", ("p-1",), 1)
    bad = QueryRecord(qid(2), t, "c" * 101, "too long a client id for its column", ("p-2",), 1)
    good = QueryRecord(qid(3), t, CLIENT, "a \\u0000 typed as such", ("p-3",), 1)
    opened = EventRecord(qid(3), t, CLIENT, "open", "p-3", 1)
    store = open_store(pg_url)
    writer = BatchWriter(store.write, batch_size=10, max_wait=0.5, retry_delay=0.01)
    try:
        for record in (nul, bad, good, opened):
            assert writer.offer(record)
        assert writer.flush(30)
        stats = writer.stats()
        assert (stats.written, stats.failed) == (3, 1)
        assert store.query(nul.query_id) == nul and store.query(good.query_id) == good
        assert store.query(bad.query_id) is None
        assert [e.query_id for e in store.iter_events()] == [good.query_id]
        with store.engine.connect() as conn:
            raw = conn.execute(text("SELECT user_query FROM ubi_queries ORDER BY query_id")).scalars().all()
        assert raw == ["haunted\\u0000 lighthouse", "a \\\\u0000 typed as such"]  # the documented rule
        assert store.purge(now() + timedelta(seconds=1)) == (2, 1)
    finally:
        writer.close()
        store.close()
