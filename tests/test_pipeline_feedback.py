"""The feedback query family: judged-feedback files read and checked, split by time, and carried through the
pipeline (the split, training rows, the choice on dev and the report)."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from test_pipeline import tiny_config

from prompt_retriever.corpus import load_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.golden import FEEDBACK_KINDS, GoldenSet, add_feedback_family, read_feedback, time_split
from prompt_retriever.golden.feedback_family import FeedbackQuery
from prompt_retriever.golden.heuristic import HeuristicConfig, generate_heuristic
from prompt_retriever.golden.splits import check_leakage, split_by_prompt
from prompt_retriever.pipeline import run_pipeline

DATA = Path(__file__).parent / "data"
LAMP, DOLL, TEETH = "the-keeper-s-lamp-d2b5d459", "mourning-doll-deee1c51", "teeth-in-a-jar-d20b751c"
TRAIN_CAR, WEDDING, FERRY = "sleeper-car-argument-e5555553", "wedding-caterer-20299aba", "island-ferry-letters-43a5cacd"
DUMPLING, MIXTAPE, WINTER = "dumpling-afternoons-6768e29b", "mixtape-summer-4635462f", "winter-alone-3af9e5f3"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

# writers' requests, oldest first: (text, relevant, nonrelevant)
REQUESTS = [
    ("lighthouse ghost story", {LAMP: 2}, [DOLL]),
    ("a doll that moves around the house", {DOLL: 2}, []),
    ("romance on a night train", {TRAIN_CAR: 2, FERRY: 1}, [LAMP]),
    ("cooking with my grandmother", {DUMPLING: 2}, []),
    ("letters to a lonely keeper", {FERRY: 2, LAMP: 1}, []),
    ("songs from my first love", {MIXTAPE: 2}, []),
    ("alone in a new city in winter", {WINTER: 2}, [MIXTAPE]),
    ("old flame caters the wedding", {WEDDING: 2}, []),
]


def stamp(hours: float) -> str:
    return (START + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def line(text: str, relevant: dict, nonrelevant=(), hours: float = 0, source: str = "clicks", **extra) -> str:
    row = {"query": text, "relevant": relevant, "timestamp": stamp(hours), "source": source, **extra}
    return json.dumps(row | ({"nonrelevant": list(nonrelevant)} if nonrelevant else {}))


def write_requests(path: Path, requests=REQUESTS, *, source: str = "clicks", offset: float = 0) -> Path:
    rows = [line(t, r, n, hours=offset + i, source=source, searches=3) for i, (t, r, n) in enumerate(requests)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prompts12():
    return load_corpus(DATA / "golden12.txt")


# ---------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"query": "x", "relevant": ', "invalid JSON"),
        (json.dumps({"relevant": {LAMP: 2}, "timestamp": stamp(0), "source": "clicks"}), "'query'"),
        (json.dumps({"query": "x", "timestamp": stamp(0), "source": "clicks"}), "'relevant'"),
        (line("x", {LAMP: 3}), "must be 1 or 2"),
        (line("x", {LAMP: True}), "must be 1 or 2"),
        (line("x", {"no-such-prompt": 2}), "'no-such-prompt' is not in the corpus"),
        (line("x", {LAMP: 2}, [LAMP]), "both relevant and in 'nonrelevant'"),
        (line("x", {LAMP: 2}, source="guess"), "'source' must be one of clicks, owner"),
        (json.dumps({"query": "x", "relevant": {LAMP: 2}, "timestamp": "2026-12-07T10:00:00", "source": "owner"}),
         "with a time zone"),
        ("[1, 2]", "expected a JSON object"),
    ],
)  # fmt: skip
def test_a_bad_line_is_an_error_naming_the_file_and_line(tmp_path, prompts12, bad, message):
    path = tmp_path / "judged.jsonl"
    path.write_text(line("fine query", {LAMP: 2}) + "\n\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        read_feedback([path], prompts12)
    assert f"{path}:3:" in str(err.value)


def test_the_reader_keeps_the_latest_of_a_repeated_query_and_counts_what_it_leaves_out(tmp_path, prompts12):
    clicks = tmp_path / "clicks.jsonl"
    clicks.write_text(
        "\n".join(
            [
                line("Haunted Lighthouse", {LAMP: 1}, hours=1),
                line("haunted   lighthouse", {LAMP: 2}, [DOLL], hours=5),  # newer: kept
                line("the doll", {"Mourning Doll": 2}, hours=2),  # a title names a prompt too
                line("gone prompt", {"removed-prompt": 2}, hours=3),
                line("half gone", {TEETH: 2, "removed-prompt": 1}, ["also-removed"], hours=4),
            ]
        ),
        encoding="utf-8",
    )
    owner = tmp_path / "owner.jsonl"
    owner.write_text(line("THE DOLL", {DOLL: 1, TEETH: 2}, hours=2, source="owner") + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"{clicks}:4: prompt 'removed-prompt' is not in the corpus"):
        read_feedback([clicks, owner], prompts12)

    read = read_feedback([clicks, owner], prompts12, skip_unknown=True)
    got = {q.text: q for q in read.queries}
    assert set(got) == {"haunted lighthouse", "THE DOLL", "half gone"}
    assert got["haunted lighthouse"].relevant == {LAMP: 2} and got["haunted lighthouse"].nonrelevant == (DOLL,)
    assert got["THE DOLL"].kind == "owner_judged" and got["THE DOLL"].relevant == {DOLL: 1, TEETH: 2}  # tie: owner
    assert got["half gone"].relevant == {TEETH: 2} and got["half gone"].kind == "feedback"
    assert (read.replaced, read.unknown_prompts, read.no_relevant) == (2, 3, 1)
    assert [name for name, _ in read.files] == [str(clicks), str(owner)]


# ---------------------------------------------------------------- the time split


def _queries(n: int, same_time: int = 0) -> list[FeedbackQuery]:
    return [
        FeedbackQuery(f"request {i:02d}", {LAMP: 2}, (), START + timedelta(hours=max(i, same_time)), "clicks", "-")
        for i in range(n)
    ]


def test_the_time_split_sends_the_newest_to_test_and_the_oldest_to_train_in_any_input_order():
    queries = _queries(10, same_time=6)  # requests 00-06 share a time: ordered by text
    split, warning = time_split(queries, test=0.2, dev=0.1)
    assert warning is None
    assert [q.text for q in split["test"]] == ["request 08", "request 09"]
    assert [q.text for q in split["dev"]] == ["request 07"]
    assert [q.text for q in split["train"]] == [f"request {i:02d}" for i in range(7)]
    shuffled = queries[:]
    random.Random(3).shuffle(shuffled)
    assert time_split(shuffled, test=0.2, dev=0.1)[0] == split
    newest_train = max(q.timestamp for q in split["train"])
    assert all(q.timestamp >= newest_train for q in split["dev"] + split["test"])

    three, _ = time_split(_queries(3), test=0.2, dev=0.1)  # at least one to test
    assert [len(three[s]) for s in ("train", "dev", "test")] == [2, 0, 1]
    five, _ = time_split(_queries(5), test=0.2, dev=0.1)  # and one to dev when three are left for it and train
    assert [len(five[s]) for s in ("train", "dev", "test")] == [3, 1, 1]
    two, warning = time_split(_queries(2), test=0.2, dev=0.1)
    assert [len(two[s]) for s in ("train", "dev", "test")] == [2, 0, 0] and "all go to train" in warning


def test_the_family_keeps_its_time_split_through_a_by_prompt_split(tmp_path, prompts12):
    gs = split_by_prompt(generate_heuristic(prompts12, HeuristicConfig(seed=42)), test=0.25, dev=0.25, seed=42)
    path = write_requests(tmp_path / "judged.jsonl", [*REQUESTS, ("Horror  Prompt", {LAMP: 2}, [])])
    out, record = add_feedback_family(gs, read_feedback([path], prompts12), test=0.25, dev=0.25)
    assert record["already_present"] == 1  # "horror prompt" is a template query: left out, counted
    assert record["splits"] == {"train": 4, "dev": 2, "test": 2} and record["by_kind"] == {"feedback": 8}
    assert record["test_from"] == stamp(6) and record["train_until"] == stamp(3)
    family = {q.id: q for q in out.queries if q.kind in FEEDBACK_KINDS}
    test_texts = {family[qid].text for qid in out.splits["test"] if qid in family}
    assert test_texts == {"alone in a new city in winter", "old flame caters the wedding"}
    assert {(n.prompt_id, n.type) for n in out.negatives if n.query_id in family} == {
        (DOLL, "judged"),
        (LAMP, "judged"),
        (MIXTAPE, "judged"),
    }
    # another by-prompt split (a new seed) moves the other queries, never the family
    again = split_by_prompt(out, test=0.25, dev=0.25, seed=7)
    for name in ("train", "dev", "test"):
        assert [q for q in again.splits[name] if q in family] == [q for q in out.splits[name] if q in family]
    check_leakage(again)
    saved = GoldenSet.load(out.save(tmp_path / "golden"))
    assert saved.splits == out.splits and len(saved.negatives) == len(out.negatives)


def test_prompts_judged_by_query_chains_are_counted_and_reported(tmp_path, prompts12):
    from prompt_retriever.pipeline.report import _feedback_sentence

    chained = {"impressions": 0, "chains": 3, "reformulated": 4, "chain_grade": 2, "click_grade": None, "grade": 2}
    evidence = {
        0: {LAMP: chained, DOLL: {"impressions": 9, "grade": 0}},  # LAMP: chains alone
        2: {TRAIN_CAR: chained | {"click_grade": 2}, FERRY: "not a dict"},  # clicks had it already: not counted
        4: {FERRY: chained, LAMP: chained},  # both relevant, both by chains
    }
    rows = [
        line(t, r, n, hours=i, **({"evidence": evidence[i]} if i in evidence else {}))
        for i, (t, r, n) in enumerate(REQUESTS)
    ]
    path = tmp_path / "judged.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    gs = split_by_prompt(generate_heuristic(prompts12, HeuristicConfig(seed=42)), test=0.25, dev=0.25, seed=42)
    _, record = add_feedback_family(gs, read_feedback([path], prompts12), test=0.25, dev=0.25)
    assert record["pairs_by_chains"] == 3
    assert "Query chains judged 3 of the relevant prompts" in _feedback_sentence(record)
    plain_read = read_feedback([write_requests(tmp_path / "p.jsonl")], prompts12)
    _, plain = add_feedback_family(gs, plain_read, test=0.25, dev=0.25)
    assert plain["pairs_by_chains"] == 0 and "Query chains" not in _feedback_sentence(plain)


# ---------------------------------------------------------------- the pipeline


def _assert_no_test_text_trained_on(golden: GoldenSet) -> None:
    train = {" ".join(q.text.casefold().split()) for q in golden.split_queries("train")}
    tested = [q for q in golden.split_queries("test") if q.kind in FEEDBACK_KINDS]
    assert tested and not [q.text for q in tested if " ".join(q.text.casefold().split()) in train]


def test_the_pipeline_split_adds_the_family_from_judged_files(tmp_path):
    corpus = tmp_path / "golden12.txt"
    shutil.copy(DATA / "golden12.txt", corpus)
    clicks = write_requests(tmp_path / "clicks.jsonl", REQUESTS[:6])
    owner = write_requests(tmp_path / "owner.jsonl", REQUESTS[6:], source="owner", offset=6)
    quiet = Console(quiet=True)
    cfg = tiny_config(tmp_path, corpus, until="split", feedback_judged=[clicks, owner])
    first = run_pipeline(cfg, quiet)
    assert first["ran"] == ["corpus", "queries", "split"]
    run = tmp_path / "run"
    golden = GoldenSet.load(run / "golden")
    by_text = {q.text: q for q in golden.queries if q.kind in FEEDBACK_KINDS}
    assert len(by_text) == 8 and by_text["old flame caters the wedding"].kind == "owner_judged"
    split_of = {qid: name for name, ids in golden.splits.items() for qid in ids}
    assert [split_of[by_text[t].id] for t, _, _ in REQUESTS] == ["train"] * 4 + ["dev"] * 2 + ["test"] * 2
    _assert_no_test_text_trained_on(golden)
    state = json.loads((run / "stages" / "split.json").read_text())
    assert state["result"]["feedback"]["splits"] == {"train": 4, "dev": 2, "test": 2}
    assert [sha for _, sha in state["inputs"]["feedback"]["files"]] and "feedback" in golden.manifest

    assert run_pipeline(cfg, quiet)["ran"] == []  # unchanged files: nothing reruns
    owner.write_text(owner.read_text() + line("a keeper's lonely light", {LAMP: 2}, hours=9) + "\n")
    assert run_pipeline(cfg, quiet)["ran"] == ["split"]  # a changed file reruns the split


def test_the_cli_takes_the_feedback_options(tmp_path):
    from typer.testing import CliRunner

    from prompt_retriever.cli import app

    judged = write_requests(tmp_path / "judged.jsonl")
    res = CliRunner().invoke(
        app,
        ["--quiet", "pipeline", "-c", str(DATA / "golden12.txt"), "-o", str(tmp_path / "run"),
         "--feedback-judged", str(judged), "--until", "split", "--no-reference"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    golden = GoldenSet.load(tmp_path / "run" / "golden")
    assert sum(q.kind == "feedback" for q in golden.queries) == 8
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line("x", {"gone": 2}) + "\n")
    res = CliRunner().invoke(
        app,
        ["pipeline", "-c", str(DATA / "golden12.txt"), "-o", str(tmp_path / "run2"), "--feedback-judged", str(bad),
         "--until", "split", "--no-reference"],
    )  # fmt: skip
    assert res.exit_code != 0 and f"{bad}:1" in res.output


def test_the_click_grade_option_reaches_the_training_config(tmp_path):
    import inspect

    from typer.testing import CliRunner

    from prompt_retriever.cli import app
    from prompt_retriever.cli.options import TrainingOptions, train_config
    from prompt_retriever.cli.pipeline import pipeline

    defaults = {k: v.default for k, v in inspect.signature(pipeline).parameters.items()}
    assert train_config(TrainingOptions.of(defaults)).click_positive_grade == 2
    assert train_config(TrainingOptions.of(defaults | {"click_positive_grade": 1})).click_positive_grade == 1
    for command in (["pipeline", "-c", str(DATA / "golden12.txt"), "-o", str(tmp_path / "r")], ["train"]):
        res = CliRunner().invoke(app, [*command, "--click-positive-grade", "3"])
        assert res.exit_code == 2 and "click-positive-grade" in res.output


def test_feedback_rows_count_as_natural_for_the_training_budget():
    from prompt_retriever.evaluation.choose import family_of
    from prompt_retriever.training import TrainConfig, TrainRow, select_rows

    rows = [TrainRow(f"t{i}", f"template {i}", LAMP) for i in range(10)]
    rows += [TrainRow(f"f{i}", f"request {i}", LAMP) for i in range(2)] + [TrainRow("o0", "owner's", LAMP)]
    kinds = {r.query_id: "keywords" for r in rows} | {"f0": "feedback", "f1": "feedback", "o0": "owner_judged"}
    picked = select_rows(rows, TrainConfig(max_rows=4, natural_share=0.75), kinds)
    assert sorted(r.query_id for r in picked if not r.query_id.startswith("t")) == ["f0", "f1", "o0"]
    assert family_of("feedback") == family_of("owner_judged") == "feedback"


def test_a_request_judged_from_clicks_trains_only_on_its_grade_2_prompts(tmp_path, prompts12):
    """Click-judged grade 1 is a relevant prompt about half the time (the recover dev log), grade 2 most of
    the time: a click-judged request trains on its grade-2 prompts only; the owner's grade 1 still trains."""
    from prompt_retriever.training import TrainConfig, training_rows

    gs = generate_heuristic(prompts12, HeuristicConfig(seed=42))
    gs.splits = {"train": [q.id for q in gs.queries], "dev": [], "test": []}  # every prompt a train prompt
    requests = [
        ("letters to a lonely keeper", {LAMP: 1}, []),
        ("romance on a night train", {TRAIN_CAR: 2, FERRY: 1}, []),
    ]
    clicks = write_requests(tmp_path / "clicks.jsonl", requests)
    owner = write_requests(tmp_path / "owner.jsonl", [("a keeper's letters", {LAMP: 1}, [])], source="owner", offset=5)
    out, record = add_feedback_family(gs, read_feedback([clicks, owner], prompts12), test=0.0, dev=0.0)
    family = {q.id: q.text for q in out.queries if q.kind in FEEDBACK_KINDS}

    def rows(cfg: TrainConfig) -> set[tuple[str, str]]:
        return {(family[r.query_id], r.positive_id) for r in training_rows(out, cfg) if r.query_id in family}

    sure = {("romance on a night train", TRAIN_CAR), ("a keeper's letters", LAMP)}
    assert rows(TrainConfig(max_positives_per_query=2)) == sure
    assert rows(TrainConfig(max_positives_per_query=2, click_positive_grade=1)) == {
        ("letters to a lonely keeper", LAMP),
        ("romance on a night train", TRAIN_CAR),
        ("romance on a night train", FERRY),
        ("a keeper's letters", LAMP),
    }
    with pytest.raises(InputError, match="click_positive_grade"):
        TrainConfig(click_positive_grade=3)
    # and the report says what was left untrained, instead of dropping it in silence
    from prompt_retriever.pipeline.report import _feedback_sentence

    assert record["train_clicks_grade1_only"] == 1  # "letters to a lonely keeper": grade 1 only, from clicks
    assert "Not trained on: 1 train requests judged from clicks" in _feedback_sentence(record)
    assert "Not trained on" not in _feedback_sentence(record, click_positive_grade=1)


class Store:
    """A real SQLite feedback store with searches and copies: each request searched four times (its prompt
    first, then second), its prompt copied every time, so the click model grades it 2 and the others 0."""

    def __init__(self, path: Path):
        from prompt_retriever.feedback import open_store

        self.path, self.store, self.n = path, open_store(path), 0

    def searched(self, text: str, relevant: str, others: list[str], hours: float) -> None:
        from prompt_retriever.feedback.records import EventRecord, QueryRecord

        queries, events = [], []
        for s in range(4):
            ids = [relevant, *others] if s % 2 == 0 else [others[0], relevant, *others[1:]]
            self.n += 1
            when = START + timedelta(hours=hours, minutes=s)
            q = QueryRecord(f"00000000-0000-4000-8000-{self.n:012d}", when, "client-1", text, tuple(ids), 10)
            queries.append(q)
            events.append(EventRecord(q.query_id, when, "client-1", "copy", relevant, ids.index(relevant) + 1))
        self.store.write(queries, events)


def test_a_run_on_a_feedback_store_reaches_the_report_with_the_feedback_family(tmp_path):
    corpus = tmp_path / "golden12.txt"
    shutil.copy(DATA / "golden12.txt", corpus)
    store = Store(tmp_path / "feedback.db")
    for i, (text, relevant, _) in enumerate(REQUESTS[:5]):
        store.searched(text, next(iter(relevant)), [TEETH, WINTER] if LAMP in relevant else [TEETH, LAMP], i)
    owner = write_requests(tmp_path / "owner.jsonl", REQUESTS[5:], source="owner", offset=5)
    quiet = Console(quiet=True)
    kw = {"feedback": str(store.path), "feedback_judged": [owner], "systems": ("bm25",), "reference": False}
    first = run_pipeline(tiny_config(tmp_path, corpus, until="split", **kw), quiet)
    assert first["ran"] == ["corpus", "queries", "split"]
    run = tmp_path / "run"
    judged = [json.loads(x) for x in (run / "feedback" / "judged.jsonl").read_text().splitlines()]
    assert [j["query"] for j in judged] == [t for t, _, _ in REQUESTS[:5]]
    assert all(j["source"] == "clicks" and j["nonrelevant"] for j in judged)
    golden = GoldenSet.load(run / "golden")
    kinds = {q.text: q.kind for q in golden.queries if q.kind in FEEDBACK_KINDS}
    assert len(kinds) == 8 and kinds["lighthouse ghost story"] == "feedback"
    assert kinds["old flame caters the wedding"] == "owner_judged"
    _assert_no_test_text_trained_on(golden)
    state = json.loads((run / "stages" / "split.json").read_text())["inputs"]["feedback"]
    assert state["store"] == str(store.path) and len(state["judgments"]) == 64

    assert run_pipeline(tiny_config(tmp_path, corpus, until="split", **kw), quiet)["ran"] == []
    store.searched("teeth in a jar of names", TEETH, [LAMP, DOLL], 20)  # a newer search: the split reruns
    again = run_pipeline(tiny_config(tmp_path, corpus, **kw), quiet)
    assert again["ran"] == ["split", "base-eval", "train", "compare", "choose", "report"]
    golden = GoldenSet.load(run / "golden")
    newest = next(q for q in golden.queries if q.text == "teeth in a jar of names")
    assert newest.id in golden.splits["test"]
    _assert_no_test_text_trained_on(golden)

    summary = json.loads((run / "reports" / "compare" / "summary.json").read_text())
    assert summary["more"]["feedback"]["queries"] == 2  # the newest two of nine
    chosen = json.loads((run / "system.json").read_text())
    assert "feedback" in chosen["chosen_on"]["families"] and "feedback" in chosen["test"]
    report = (run / "REPORT.md").read_text()
    assert "writers' newest requests from feedback" in report and "Writers' feedback: 9 judged requests" in report
    store.store.close()

    with pytest.raises(InputError, match="no feedback store there"):
        run_pipeline(tiny_config(tmp_path, corpus, until="split", feedback=str(tmp_path / "nope.db")), quiet)
