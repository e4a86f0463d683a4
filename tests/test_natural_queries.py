"""The bundled natural-language queries: coverage, styles, no give-away words, judged sets, no leakage."""

from __future__ import annotations

import collections
import json
import re

import pytest

from prompt_retriever import load_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.golden import check_leakage, generate_heuristic, split_by_prompt
from prompt_retriever.golden.heuristic import HeuristicConfig
from prompt_retriever.golden.natural import (
    JUDGED_KIND,
    STYLES,
    add_natural_queries,
    bundled_natural_path,
    read_natural_queries,
)

# Words that carry no content: a query may share them with its prompt freely.
_STOP_WORDS = """
    a an the and or but of to in on at for with by from as is are was were be been being it its this that
    these those who whom whose which what when where why how i me my we our you your he him his she her they
    them their there here not no so if then than into out up down over under about after before while until
    because through one ones some any all each every other another someone something somebody anyone anything
    story poem essay piece write writing prompt has have had do does did can could would should will may might
    must just very more most less much many also only like want looking find need set
"""
STOP = set(_STOP_WORDS.split())
TOKEN = re.compile(r"[a-z][a-z'\-]*")


def words(text: str) -> list[str]:
    return [w.strip("'-") for w in TOKEN.findall(text.lower())]


def stem(w: str) -> str:
    for suffix in ("ies", "ied", "ing", "ers", "er", "es", "ed", "s", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            return w[: -len(suffix)]
    return w


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture(scope="module")
def natural():
    return read_natural_queries(bundled_natural_path())


def test_every_prompt_has_at_least_four_queries_in_varied_styles(corpus, natural):
    by_prompt = collections.defaultdict(list)
    for q in natural:
        by_prompt[q.prompt_id].append(q)
    assert set(by_prompt) == {p.id for p in corpus}
    assert min(len(v) for v in by_prompt.values()) >= 4
    assert all(len({q.style for q in v}) >= 3 for v in by_prompt.values())
    assert set(collections.Counter(q.style for q in natural)) == set(STYLES)


def test_queries_give_nothing_away(corpus, natural):
    """No title word, no word that only a handful of prompts use, no phrase copied from the prompt."""
    df: collections.Counter[str] = collections.Counter()
    for p in corpus:
        df.update({stem(w) for w in words(f"{p.text} {p.title}")})
    by_id = {p.id: p for p in corpus}
    problems = []
    for q in natural:
        p = by_id[q.prompt_id]
        qw, src = words(q.text), words(p.text)
        title = {stem(w) for w in words(p.title) if w not in STOP}
        src_stems = {stem(w) for w in src}
        for w in set(qw) - STOP:
            s = stem(w)
            if s in title and df[s] < 15:
                problems.append(f"{q.text!r}: title word {w!r}")
            elif s in src_stems and df[s] < 6:
                problems.append(f"{q.text!r}: rare word {w!r} of its prompt (in {df[s]} prompts)")
        trigrams = {tuple(src[i : i + 3]) for i in range(len(src) - 2)}
        for i in range(len(qw) - 2):
            tri = tuple(qw[i : i + 3])
            if tri in trigrams and not set(tri) <= STOP:
                problems.append(f"{q.text!r}: copied phrase {' '.join(tri)!r}")
        assert 4 <= len(qw) <= 30, q.text
    assert not problems, "\n".join(problems[:20])


def test_no_near_duplicates_within_a_prompt(natural):
    by_prompt = collections.defaultdict(list)
    for q in natural:
        by_prompt[q.prompt_id].append({stem(w) for w in words(q.text) if w not in STOP})
    for pid, sets in by_prompt.items():
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                assert not (a and b and len(a & b) / min(len(a), len(b)) >= 0.7), pid


def test_judged_sets_are_large_enough_and_judge_the_whole_corpus(corpus, natural):
    gs = split_by_prompt(add_natural_queries(generate_heuristic(corpus, HeuristicConfig(seed=42)), natural))
    check_leakage(gs)  # every natural query sits in its source prompt's split
    judged = {q.id for q in gs.queries if q.kind == JUDGED_KIND}
    assert len(judged & set(gs.splits["test"])) >= 150
    assert len(judged & set(gs.splits["dev"])) >= 50
    assert not judged & set(gs.splits["train"])  # judged sets are for evaluation and selection only
    rel = [gs.qrels[q] for q in judged]
    assert sum(len(r) for r in rel) / len(rel) > 1.5  # other prompts than the source were judged relevant
    assert all(set(r.values()) <= {1, 2} for r in rel)


def test_natural_queries_split_with_their_prompt_and_template_splits_do_not_move(corpus, natural):
    base = split_by_prompt(generate_heuristic(corpus, HeuristicConfig(seed=42)))
    with_nat = split_by_prompt(add_natural_queries(generate_heuristic(corpus, HeuristicConfig(seed=42)), natural))
    assert base.manifest["split"]["prompts"] == with_nat.manifest["split"]["prompts"]
    for name in ("train", "dev", "test"):
        assert set(base.splits[name]) <= set(with_nat.splits[name])
    split_of = with_nat.prompt_split()
    for q in with_nat.queries:
        if q.kind.startswith("natural"):
            assert q.id in with_nat.splits[split_of[q.source_id]]


def test_reader_names_file_and_line(tmp_path):
    bad = tmp_path / "n.jsonl"
    bad.write_text(
        json.dumps({"prompt_id": "a", "query": "a quiet story", "style": "mood"})
        + "\n"
        + json.dumps({"prompt_id": "b", "query": "x y", "style": "limerick"})
        + "\n"
    )
    with pytest.raises(InputError, match=r"n\.jsonl:2: 'style'"):
        read_natural_queries(bad)
    dup = tmp_path / "d.jsonl"
    row = {"prompt_id": "a", "query": "a quiet story", "style": "mood"}
    dup.write_text(json.dumps(row) + "\n" + json.dumps(row | {"query": "A  quiet story"}) + "\n")
    with pytest.raises(InputError, match=r"d\.jsonl:2: duplicate query"):
        read_natural_queries(dup)
    judged = tmp_path / "j.jsonl"
    judged.write_text(json.dumps(row | {"relevant": {"b": 2}}) + "\n")
    with pytest.raises(InputError, match="own source prompt"):
        read_natural_queries(judged)


def test_queries_of_prompts_outside_the_corpus_are_counted_not_added(corpus, natural):
    few = corpus[:10]
    gs = add_natural_queries(generate_heuristic(few, HeuristicConfig(seed=1)), natural)
    added = [q for q in gs.queries if q.kind.startswith("natural")]
    assert {q.source_id for q in added} <= {p.id for p in few}
    assert gs.manifest["natural_queries"]["added"] == len(added)
    assert gs.manifest["natural_queries"]["skipped_prompt_not_in_corpus"] == len(natural) - len(added)
