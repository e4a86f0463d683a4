"""Judgments from clicks (feedback/judgments.py) over a real SQLite feedback store holding searches of
bundled-corpus prompts: the graded queries, what is left out and counted, the JSON lines file (read back by
`load_judged_queries`, the reader of `evaluate --judged`), --force, and `feedback judgments` on the CLI."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from prompt_retriever.cli import app as cli
from prompt_retriever.corpus import load_corpus
from prompt_retriever.errors import OutputDirError
from prompt_retriever.feedback import (
    ClickModelConfig,
    EventRecord,
    JudgmentsResult,
    QueryRecord,
    implicit_judgments,
    open_store,
    store_judgments,
    write_judged,
)
from prompt_retriever.feedback.records import utc
from prompt_retriever.golden.goldenset import load_judged_queries

runner = CliRunner()
T0 = utc(2026, 5, 1, 9)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture(scope="module")
def ids(corpus):
    return [p.id for p in corpus[:8]]


def make_log(ids: list[str]) -> tuple[list[QueryRecord], list[EventRecord]]:
    """Searches of bundled prompts. "haunted lighthouse" (12 searches, its answer reversed every other
    time): ids[0] copied in 6, ids[1] opened in 3, ids[3] opened in 6 and thumbed down in 4, ids[2] and
    ids[4] never; "clockwork city" (3): ids[5] opened twice at rank 3; "salt witch" (2: below the minimum);
    "storm at sea" (4, nothing done)."""
    qs: list[QueryRecord] = []
    es: list[EventRecord] = []
    plan = [("haunted lighthouse", i) for i in range(12)]
    plan[1:1] = [("clockwork city", i) for i in range(3)]
    plan += [("salt witch", i) for i in range(2)] + [("storm at sea", i) for i in range(4)]
    for n, (text, i) in enumerate(plan):
        qid = f"{n:08x}-0000-4000-8000-000000000000"
        t = T0 + timedelta(minutes=n)
        if text == "haunted lighthouse":
            answer = tuple(ids[:5]) if i % 2 else tuple(reversed(ids[:5]))
            spelled = "Haunted  Lighthouse" if i == 0 else text
            acts = [("copy", ids[0])] * (i % 2 == 0) + [("open", ids[1])] * (i < 3) + [("open", ids[3])] * (i < 6)
            acts += [("thumbs_down", ids[3])] * (i < 4) + [("copy", ids[0])] * (i % 2 == 0)  # a copy twice: once
        elif text == "clockwork city":
            answer, spelled, acts = (ids[6], ids[7], ids[5]), text, [("open", ids[5])] * (i < 2)
        else:
            answer, spelled, acts = tuple(ids[5:8]), text, []
        q = QueryRecord(qid, t, "client-0001", spelled, answer, 10, run="bundled")
        qs.append(q)
        es += [EventRecord(qid, t, "client-0001", a, pid, answer.index(pid) + 1) for a, pid in acts]
    return qs, es


@pytest.fixture
def store_path(tmp_path, ids):
    path = tmp_path / "f.db"
    store = open_store(path)
    try:
        store.write(*make_log(ids))
    finally:
        store.close()
    return path


# The hand-made log is small: graded by the rates' estimates (not their lower bounds), its grades are the
# ones it was written for; the default, lower bounds, is checked in test_cli_judgments.
POINT = ClickModelConfig(lower_bound=False)


def judged_of(path) -> JudgmentsResult:
    store = open_store(path)
    try:
        return store_judgments(store, POINT)
    finally:
        store.close()


def test_store_judgments(store_path, ids):
    result = judged_of(store_path)
    assert [q.query for q in result.queries] == ["haunted lighthouse", "clockwork city"]  # first-seen order
    haunted, clockwork = result.queries
    assert haunted.relevant == {ids[0]: 2, ids[1]: 1} and list(haunted.relevant) == [ids[0], ids[1]]
    assert set(haunted.nonrelevant) == {ids[2], ids[3], ids[4]}
    assert (haunted.searches, haunted.first_seen, haunted.timestamp) == (12, T0, T0 + timedelta(minutes=14))
    ev = haunted.evidence[ids[3]]
    assert (ev["impressions"], ev["opens"], ev["thumbs_down"], ev["grade"]) == (12, 6, 4, 0)
    ev = haunted.evidence[ids[0]]
    assert (ev["copies"], ev["mean_rank"], ev["grade"]) == (6, 3.0, 2)  # the repeated copy counted once
    assert set(ev) >= {"impressions", "mean_rank", "opens", "copies", "uses", "thumbs_up", "thumbs_down", "score"}
    assert clockwork.relevant == {ids[5]: 2} and set(clockwork.nonrelevant) == {ids[6], ids[7]}
    assert clockwork.first_seen == T0 + timedelta(minutes=1) and clockwork.searches == 3
    # "salt witch" (every pair below 3 impressions) and "storm at sea" (all grade 0) are counted, not judged
    assert result.n_without_relevant == 2 and result.pairs_below_min == 3
    assert result.by_grade == {0: 8, 1: 1, 2: 2} and result.pairs_judged == 11
    assert result.searches == 21 and result.events_ignored == 0 and result.corrected
    assert result.theta[0] == 1.0 and len(result.theta) == 5 and result.theta_support == (12, 12, 0, 12, 12)
    assert result.theta[2] == result.theta[1]  # ids[2], always third, says nothing of rank 3: the rank above's
    assert result.to_json()["pairs_by_grade"] == {"0": 8, "1": 1, "2": 2}


def test_the_same_from_records_and_uncorrected(ids):
    qs, es = make_log(ids)
    assert [q.to_json() for q in implicit_judgments(qs, es, POINT).queries] == [
        q.to_json() for q in implicit_judgments(iter(qs), iter(es), POINT).queries
    ]
    plain = implicit_judgments(qs, es, POINT, correct_bias=False)
    assert plain.theta == (1.0,) * 5 and not plain.corrected
    clockwork = plain.queries[1]
    assert clockwork.evidence[ids[5]]["score"] == round(2 / 3, 4)
    strict = implicit_judgments(qs, es, ClickModelConfig(min_impressions=4, lower_bound=False))
    assert [q.query for q in strict.queries] == ["haunted lighthouse"] and strict.pairs_below_min == 6


def test_written_file_is_read_by_load_judged_queries(store_path, tmp_path, corpus, ids):
    result = judged_of(store_path)
    out = write_judged(result, tmp_path / "judged.jsonl")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["query"] for r in rows] == ["haunted lighthouse", "clockwork city"]
    assert rows[0]["relevant"] == {ids[0]: 2, ids[1]: 1} and rows[0]["source"] == "clicks"
    assert rows[0]["timestamp"] == "2026-05-01T09:14:00.000Z" and rows[0]["first_seen"] == "2026-05-01T09:00:00.000Z"
    assert set(rows[0]) == {
        "query",
        "relevant",
        "nonrelevant",
        "timestamp",
        "first_seen",
        "searches",
        "evidence",
        "source",
    }
    gs = load_judged_queries(out, corpus)
    assert sorted(q.text for q in gs.queries) == ["clockwork city", "haunted lighthouse"]
    by_text = {q.text: gs.qrels[q.id] for q in gs.queries}
    assert by_text == {"haunted lighthouse": {ids[0]: 2, ids[1]: 1}, "clockwork city": {ids[5]: 2}}
    # a list of JudgedQuery is written the same
    assert write_judged(list(result.queries), tmp_path / "again.jsonl").read_text() == out.read_text()


def test_an_existing_file_is_replaced_only_with_force(store_path, tmp_path):
    result = judged_of(store_path)
    target = tmp_path / "judged.jsonl"
    target.write_text("mine\n", encoding="utf-8")
    with pytest.raises(OutputDirError, match="--force"):
        write_judged(result, target)
    assert target.read_text(encoding="utf-8") == "mine\n"
    write_judged(result, target, force=True)
    assert target.read_text(encoding="utf-8").count("\n") == 2
    with pytest.raises(OutputDirError, match="folder"):
        write_judged(result, tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_cli_judgments(store_path, tmp_path, corpus, ids):
    out = tmp_path / "judged.jsonl"
    args = ["feedback", "judgments", "--feedback", str(store_path), "--out", str(out)]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    # graded by lower bounds (the default): the same relevant prompts, one of them less sure (1, not 2)
    assert "2 queries judged" in res.output and "1 grade 2, 2 grade 1, 8 grade 0" in res.output
    assert "3 shown fewer than 3 times" in res.output and "2 queries without a relevant prompt" in res.output
    assert "examination by rank: 1 1.00, 2 " in res.output
    assert len(load_judged_queries(out, corpus).queries) == 2
    before = out.read_bytes()
    res = runner.invoke(cli, args)
    assert res.exit_code == 2 and "already exists" in res.output and "--force" in res.output
    assert out.read_bytes() == before
    res = runner.invoke(cli, [*args, "--force", "--json", "--min-impressions", "4", "--no-position-correction"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["queries_judged"] == 1 and summary["pairs_below_min"] == 6 and summary["min_impressions"] == 4
    assert summary["position_corrected"] is False and summary["theta"] == [1.0] * 5
    assert [json.loads(line)["query"] for line in out.read_text().splitlines()] == ["haunted lighthouse"]


def test_cli_judgments_bad_input(store_path, tmp_path):
    base = ["feedback", "judgments", "--out", str(tmp_path / "j.jsonl")]
    res = runner.invoke(cli, [*base, "--feedback", str(tmp_path / "none.db")])
    assert res.exit_code == 2 and "no feedback store" in res.output
    res = runner.invoke(cli, [*base, "--feedback", str(store_path), "--min-impressions", "0"])
    assert res.exit_code == 2
    res = runner.invoke(cli, ["feedback", "judgments", "--feedback", str(store_path), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "is a folder" in res.output
    assert not (tmp_path / "j.jsonl").exists()
