"""`feedback.owner`: the owner's judged query set on disk (one line per query, merged on re-judging, read
back by `load_judged_queries`, the reader of `evaluate --judged`) and the log's most searched queries."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from prompt_retriever.errors import InputError
from prompt_retriever.feedback import owner as owner_module
from prompt_retriever.feedback.owner import NO_RELEVANT, OwnerJudgments, frequent_queries, query_key
from prompt_retriever.feedback.records import QueryRecord, utc
from prompt_retriever.golden.goldenset import load_judged_queries


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_saved_query_is_a_line_evaluate_judged_reads(tmp_path, small_prompts):
    a, b, c = (p.id for p in small_prompts[:3])
    path = tmp_path / "judged.jsonl"
    owner = OwnerJudgments.load(path)
    assert len(owner) == 0 and not path.exists()  # created on the first save
    line = owner.put("  haunted   lighthouse ", {a: 2, b: 1, c: 0}, at=utc(2026, 12, 7, 10, 30, 5))
    assert line == {
        "query": "haunted lighthouse",
        "relevant": {a: 2, b: 1},
        "nonrelevant": [c],
        "timestamp": "2026-12-07T10:30:05.000Z",
        "source": "owner",
    }
    assert lines(path) == [line]
    gs = load_judged_queries(path, small_prompts)
    (query,) = gs.queries
    assert query.text == "haunted lighthouse" and gs.qrels[query.id] == {a: 2, b: 1}
    assert gs.splits == {"test": [query.id]}


def test_rejudging_merges_into_the_one_line_of_the_query(tmp_path, small_prompts):
    a, b, c, d = (p.id for p in small_prompts[:4])
    path = tmp_path / "judged.jsonl"
    owner = OwnerJudgments.load(path)
    owner.put("ghost ship", {a: 2, b: 0})
    owner.put("first love", {c: 1})
    line = owner.put("Ghost  SHIP", {b: 1, a: 0, d: 2})  # same query: case and spacing do not matter
    assert line["query"] == "Ghost SHIP"  # the latest spelling
    assert line["relevant"] == {b: 1, d: 2} and line["nonrelevant"] == [a]
    rows = lines(path)
    assert [r["query"] for r in rows] == ["Ghost SHIP", "first love"]  # replaced in place, not appended
    assert owner.grades("ghost ship") == {a: 0, b: 1, d: 2}
    again = OwnerJudgments.load(path)  # read back at the next start
    assert again.rows() == rows and again.judged("GHOST ship") and not again.judged("ghost")
    assert len(load_judged_queries(path, small_prompts).queries) == 2


def test_grades_not_given_again_are_kept(tmp_path, small_prompts):
    a, b, c = (p.id for p in small_prompts[:3])
    owner = OwnerJudgments.load(tmp_path / "j.jsonl")
    owner.put("q", {a: 2, b: 0})
    assert owner.put("q", {c: 1})["relevant"] == {a: 2, c: 1}
    assert owner.grades("q") == {a: 2, b: 0, c: 1}


def test_a_query_left_without_a_relevant_prompt_is_refused_and_nothing_changes(tmp_path, small_prompts):
    a, b = small_prompts[0].id, small_prompts[1].id
    path = tmp_path / "j.jsonl"
    owner = OwnerJudgments.load(path)
    with pytest.raises(InputError, match="rate at least one result 1 or 2"):
        owner.put("nothing fits", {a: 0, b: 0})
    assert not path.exists() and len(owner) == 0
    owner.put("q", {a: 1})
    before = path.read_bytes()
    with pytest.raises(InputError) as exc:
        owner.put("q", {a: 0})  # the only relevant prompt graded 0: the line would have none
    assert str(exc.value) == NO_RELEVANT
    assert path.read_bytes() == before and owner.grades("q") == {a: 1}
    assert owner.put("q", {a: 0, b: 2})["nonrelevant"] == [a]  # with another relevant one, it is fine


@pytest.mark.parametrize("grades", [{}, {"p": 3}, {"p": -1}, {"p": True}, {"p": 1.5}, {"p": "1"}])
def test_bad_grades_are_refused(tmp_path, grades):
    owner = OwnerJudgments.load(tmp_path / "j.jsonl")
    with pytest.raises(InputError):
        owner.put("q", grades)
    assert len(owner) == 0


def test_an_existing_file_is_read_kept_and_extended(tmp_path, small_prompts):
    """The owner's own file, written by hand (relevant prompts by title, keys of its own): its lines are
    kept as they are; re-judging one of them writes its titles as prompt ids when the alias knows them."""
    keeper, teeth, sleeper = small_prompts[:3]
    path = tmp_path / "mine.jsonl"
    hand = [
        {"query": "lighthouse keeper", "relevant": {keeper.title: 2}, "notes": "mine"},
        {"query": "love on a train", "relevant": {sleeper.id: 1}},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in hand) + "\n", encoding="utf-8")
    owner = OwnerJudgments.load(path)
    assert owner.rows() == hand
    owner.put("something new", {teeth.id: 2})
    assert lines(path)[:2] == hand and len(lines(path)) == 3
    by_title = {p.title.casefold(): p.id for p in small_prompts}

    def alias(key):
        return key if key in by_title.values() else by_title.get(key.casefold())

    assert owner.grades("lighthouse keeper", alias) == {keeper.id: 2}
    line = owner.put("lighthouse keeper", {teeth.id: 0}, alias=alias)
    assert line["relevant"] == {keeper.id: 2} and line["nonrelevant"] == [teeth.id]
    assert line["notes"] == "mine"  # the line's other keys are kept
    assert len(load_judged_queries(path, small_prompts).queries) == 3


@pytest.mark.parametrize(
    "text, problem",
    [
        ("not json\n", "2: invalid JSON"),
        ('["a list"]\n', "2: a line must be a JSON object"),
        ('{"relevant": {"x": 1}}\n', "2: need a non-empty 'query'"),
        ('{"query": "q2", "relevant": {}}\n', "2: need a non-empty 'relevant'"),
        ('{"query": "q2", "relevant": {"x": "2"}}\n', "2: the grades in 'relevant' must be whole numbers"),
        ('{"query": "q2", "relevant": {"x": 1}, "nonrelevant": "y"}\n', "2: 'nonrelevant' must be a list"),
        ('{"query": "Q1 ", "relevant": {"x": 1}}\n', "2: repeats the query of line 1"),
    ],
)
def test_a_broken_existing_file_is_an_error_naming_the_line(tmp_path, text, problem):
    path = tmp_path / "j.jsonl"
    path.write_text('{"query": "q1", "relevant": {"x": 1}}\n' + text, encoding="utf-8")
    with pytest.raises(InputError, match=problem):
        OwnerJudgments.load(path)


def test_a_repeated_query_after_blank_lines_is_named_by_its_line_in_the_file(tmp_path):
    """Blank lines are skipped, not forgotten: the lines named are those of the file (they used to be
    counted among the non-blank lines only)."""
    path = tmp_path / "j.jsonl"
    rows = ["", '{"query": "q1", "relevant": {"x": 1}}', "", "", '{"query": "q2", "relevant": {"x": 1}}']
    path.write_text("\n".join([*rows, '{"query": "Q1", "relevant": {"x": 1}}']) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"j\.jsonl:6: repeats the query of line 2 "):
        OwnerJudgments.load(path)


def test_a_line_keeping_a_line_separator_in_a_string_is_read_again_after_a_save(tmp_path):
    """A save writes U+2028, U+0085 and the like raw (JSON allows them in strings); reading the file
    again splits it at newlines only (str.splitlines split such a line in two: the server could not
    restart on its own file)."""
    path = tmp_path / "j.jsonl"
    path.write_text('{"query": "q1", "relevant": {"x": 1}, "notes": "a\\u2028b\\u0085c\\u001ed"}\r\n', encoding="utf-8")
    OwnerJudgments.load(path).put("q1", {"y": 2})
    assert "\u2028" in path.read_text(encoding="utf-8")
    again = OwnerJudgments.load(path)
    assert again.line("q1")["notes"] == "a\u2028b\u0085c\u001ed" and again.grades("q1") == {"x": 1, "y": 2}


def test_a_folder_or_a_fifo_is_no_judgments_file(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        OwnerJudgments.load(tmp_path)
    fifo = tmp_path / "fifo"
    import os

    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        OwnerJudgments.load(fifo)


def test_a_failed_write_changes_neither_the_file_nor_the_judgments(tmp_path, small_prompts, monkeypatch):
    a, b = small_prompts[0].id, small_prompts[1].id
    path = tmp_path / "j.jsonl"
    owner = OwnerJudgments.load(path)
    owner.put("q", {a: 1})
    before = path.read_bytes()

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(owner_module, "atomic_write_jsonl", full)
    with pytest.raises(OSError):
        owner.put("q", {b: 2})
    with pytest.raises(OSError):
        owner.put("another", {b: 2})
    assert path.read_bytes() == before
    assert owner.grades("q") == {a: 1} and not owner.judged("another") and len(owner) == 1


def test_query_key_ignores_case_and_spacing():
    assert query_key(" Ghost\tShip  ") == query_key("ghost ship") == "ghost ship"


def test_frequent_queries_counts_distinct_recent_queries():
    t0 = utc(2026, 12, 1)

    def rec(text, minutes):
        return QueryRecord(f"id-{text}-{minutes}", t0 + timedelta(minutes=minutes), None, text, (), 10)

    records = [
        rec("old favourite", -9000),  # before `since`
        rec("old favourite", -9001),
        rec("old favourite", -9002),
        rec("ghost ship", 1),
        rec("Ghost  Ship", 5),  # the same query, spelled differently: shown as last typed
        rec("grief", 2),
        rec("robots", 3),
        rec("grief", 4),
        rec("lighthouse", 6),
    ]
    got = frequent_queries(records, since=t0 - timedelta(days=1), limit=3)
    assert [(q.query, q.count) for q in got] == [("Ghost Ship", 2), ("grief", 2), ("lighthouse", 1)]
    assert got[0].last == t0 + timedelta(minutes=5)
    assert [q.query for q in frequent_queries(records)][:1] == ["old favourite"]
    assert frequent_queries([], limit=5) == []
