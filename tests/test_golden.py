from __future__ import annotations

import csv
import json

import pytest

from prompt_retriever.corpus import load_corpus
from prompt_retriever.golden.goldenset import GoldenSet, read_qrels, summarize
from prompt_retriever.golden.heuristic import HeuristicConfig, generate_heuristic
from prompt_retriever.golden.keywords import TfidfKeywords, tokenize
from prompt_retriever.golden.splits import LeakageError, check_leakage, split_by_prompt


@pytest.fixture(scope="module")
def prompts12(request):
    from pathlib import Path

    return load_corpus(Path(__file__).parent / "data" / "golden12.txt")


@pytest.fixture(scope="module")
def gs12(prompts12):
    return generate_heuristic(prompts12, HeuristicConfig(seed=7))


def by_title(prompts, *titles):
    t = {p.title: p.id for p in prompts}
    return {t[x] for x in titles}


def test_genre_query_judges_every_prompt_of_that_genre(gs12, prompts12):
    genre_qs = [q for q in gs12.queries if q.kind == "genre"]
    assert len(genre_qs) == 3 * 4  # 3 genres x 4 templates
    for q in genre_qs:
        genre = next(p.genre for p in prompts12 if p.id in gs12.qrels[q.id])
        expected = {p.id for p in prompts12 if p.genre == genre}
        assert gs12.qrels[q.id] == dict.fromkeys(expected, 1), q.text


def test_theme_and_genre_theme_qrels(gs12, prompts12):
    q = next(q for q in gs12.queries if q.text == "a story about grief")
    assert set(gs12.qrels[q.id]) == by_title(
        prompts12, "The Keeper's Lamp", "Mourning Doll", "Widower's Garden", "The Empty Chair"
    )
    pair_qs = [q for q in gs12.queries if q.kind == "genre_theme" and "horror" in q.text and "grief" in q.text]
    assert len(pair_qs) == 1
    assert gs12.qrels[pair_qs[0].id] == dict.fromkeys(by_title(prompts12, "The Keeper's Lamp", "Mourning Doll"), 1)


def test_title_keyword_and_genre_keyword_qrels(gs12, prompts12):
    lamp = next(p for p in prompts12 if p.title == "The Keeper's Lamp")
    title_q = next(q for q in gs12.queries if q.kind == "title" and q.source_id == lamp.id)
    assert title_q.text == "The Keeper's Lamp" and gs12.qrels[title_q.id] == {lamp.id: 2}
    kw = [q for q in gs12.queries if q.kind == "keywords" and q.source_id == lamp.id]
    assert kw and all(gs12.qrels[q.id] == {lamp.id: 2} for q in kw)
    gk = next(q for q in gs12.queries if q.kind == "genre_keywords" and q.source_id == lamp.id)
    assert gk.text.startswith("horror ")
    horror = {p.id for p in prompts12 if p.genre == "Horror"}
    assert gs12.qrels[gk.id] == dict.fromkeys(horror - {lamp.id}, 1) | {lamp.id: 2}


def test_keywords_are_tfidf_content_words(prompts12):
    tfidf = TfidfKeywords([p.text for p in prompts12])
    lamp = next(p for p in prompts12 if p.title == "The Keeper's Lamp")
    scores = dict(tfidf.scores(lamp.text))
    top = tfidf.top(lamp.text, 3)
    assert min(scores[w] for w in top) >= max(s for w, s in scores.items() if w not in top)
    assert scores["march"] > scores["lighthouse"]  # "lighthouse" is in two prompts, "march" in one
    assert not set(scores) & {"the", "every", "still", "who", "yet"}
    assert tokenize("Write about THE lighthouse's keeper") == ["lighthouse's", "keeper"]


def test_negatives_are_never_relevant(gs12, prompts12):
    types = {n.type for n in gs12.negatives}
    assert types == {"random", "hard"}
    genre = {p.id: p.genre for p in prompts12}
    qmap = gs12.query_by_id
    for n in gs12.negatives:
        assert n.prompt_id not in gs12.qrels[n.query_id]
        if n.type == "random":
            assert genre[n.prompt_id] != genre[qmap[n.query_id].source_id]


def test_deterministic_for_a_seed(prompts12):
    a = generate_heuristic(prompts12, HeuristicConfig(seed=3))
    b = generate_heuristic(list(reversed(prompts12)), HeuristicConfig(seed=3))
    assert a.fingerprint() == b.fingerprint()
    assert [(n.query_id, n.prompt_id) for n in a.negatives] == [(n.query_id, n.prompt_id) for n in b.negatives]
    sa, sb = split_by_prompt(a, seed=5), split_by_prompt(b, seed=5)
    assert sa.splits == sb.splits


def test_split_has_no_leakage_and_records_parameters(gs12):
    s = split_by_prompt(gs12, test=0.25, dev=0.25, seed=1)
    check_leakage(s)
    held = s.manifest["split"]["prompts"]
    assert len(held["test"]) == 3 and len(held["dev"]) == 3  # 25% of 4 per genre, stratified
    assert s.manifest["split"]["seed"] == 1 and s.manifest["split"]["by"] == "prompt"
    ps = s.prompt_split()
    qmap = s.query_by_id
    texts = {}
    for name, ids in s.splits.items():
        for qid in ids:
            q = qmap[qid]
            if q.source_id:
                assert ps[q.source_id] == name
            texts.setdefault(q.text.casefold(), set()).add(name)
    assert all(len(v) == 1 for v in texts.values())
    # every query lands in exactly one split
    assert sorted(qid for ids in s.splits.values() for qid in ids) == sorted(q.id for q in s.queries)
    # template phrasings of one genre stay together
    for genre in ("horror", "romance", "memoir"):
        where = {
            name
            for name, ids in s.splits.items()
            for qid in ids
            if qmap[qid].kind == "genre" and genre in qmap[qid].text.lower()
        }
        assert len(where) == 1


def test_check_leakage_catches_both_rules(gs12):
    s = split_by_prompt(gs12, seed=1)
    q = next(q for q in s.queries if q.source_id and q.id in s.splits["test"])
    bad = GoldenSet(s.corpus, s.queries, s.qrels, {**s.splits, "train": s.splits["train"] + [q.id]}, [], s.manifest)
    with pytest.raises(LeakageError, match="is in splits"):
        check_leakage(bad)
    moved = {k: [x for x in v if x != q.id] for k, v in s.splits.items()}
    moved["train"].append(q.id)
    with pytest.raises(LeakageError, match="made from test prompt"):
        check_leakage(GoldenSet(s.corpus, s.queries, s.qrels, moved, [], s.manifest))


def test_beir_round_trip(tmp_path, gs12):
    s = split_by_prompt(gs12, seed=1)
    s.save(tmp_path / "g")
    back = GoldenSet.load(tmp_path / "g")
    assert back.corpus == s.corpus
    assert back.queries == s.queries
    assert back.qrels == s.qrels
    assert back.splits == s.splits
    assert [(n.query_id, n.prompt_id, n.type) for n in back.negatives] == [
        (n.query_id, n.prompt_id, n.type) for n in s.negatives
    ]
    assert back.fingerprint() == s.fingerprint()
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["counts"]["queries"] == len(s.queries) and manifest["seed"] == 7
    # BEIR readers: header + three columns
    first = (tmp_path / "g" / "qrels" / "test.tsv").read_text().splitlines()[0]
    assert first == "query-id\tcorpus-id\tscore"
    assert set(read_qrels(tmp_path / "g" / "qrels" / "test.tsv")) == set(s.splits["test"])
    row = json.loads((tmp_path / "g" / "corpus.jsonl").read_text().splitlines()[0])
    assert set(row) == {"_id", "title", "text", "metadata"}


def test_pairs_csv_export(tmp_path, gs12):
    path = gs12.export_pairs_csv(tmp_path / "pairs.csv")
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["relevance"] for r in rows} == {"0", "1", "2"}
    pos = sum(1 for r in rows if r["relevance"] != "0")
    assert pos == sum(len(v) for v in gs12.qrels.values())
    assert len(rows) - pos == len(gs12.negatives)


def test_summarize(gs12):
    s = split_by_prompt(gs12, seed=1)
    summary = summarize(s)
    assert set(summary) == {"all", "train", "dev", "test"}
    assert summary["all"]["queries"] == len(s.queries)
    assert sum(summary[n]["queries"] for n in ("train", "dev", "test")) == len(s.queries)


def test_cli_generate_split_stats(tmp_path):
    from pathlib import Path

    from typer.testing import CliRunner

    from prompt_retriever.cli import app

    corpus = Path(__file__).parent / "data" / "golden12.txt"
    r = CliRunner()
    res = r.invoke(app, ["queries", "generate", "--corpus", str(corpus), "--out", str(tmp_path / "g"), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "g" / "pairs.csv").exists()
    res = r.invoke(app, ["queries", "split", str(tmp_path / "g"), "--test", "0.25", "--dev", "0.25"])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["queries", "stats", str(tmp_path / "g"), "--json"])
    assert res.exit_code == 0
    assert set(json.loads(res.output)) == {"all", "train", "dev", "test"}
    res = r.invoke(app, ["queries", "split", str(tmp_path / "g"), "--test", "0.8", "--dev", "0.5"])
    assert res.exit_code == 2 and "bad split fractions" in res.output
    res = r.invoke(app, ["queries", "stats", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not a golden set" in res.output


def test_paraphrases_swap_words_from_the_lexicon(gs12):
    from prompt_retriever.golden.keywords import synonyms

    lex = synonyms()
    assert len(lex) > 100
    paras = [q for q in gs12.queries if q.kind == "paraphrase"]
    assert paras
    kw = {q.source_id: q.text.split() for q in gs12.queries if q.kind == "keywords" and len(q.text.split()) == 3}
    for q in paras:
        assert gs12.qrels[q.id] == {q.source_id: 2}
        base = kw[q.source_id]
        assert q.text != " ".join(base)
        assert q.text.split()[0] in [base[0], *lex.get(base[0], [])] or " " in " ".join(lex.get(base[0], []))
