"""The query-adaptive hybrid (one alpha per query-length bucket, tuned on dev) and the natural-query mix."""

from __future__ import annotations

import numpy as np
import pytest

from prompt_retriever import load_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.evaluation.systems import build_systems, tune_adaptive
from prompt_retriever.golden import generate_heuristic, split_by_prompt
from prompt_retriever.golden.heuristic import HeuristicConfig
from prompt_retriever.golden.natural import add_natural_queries, bundled_natural_path, read_natural_queries
from prompt_retriever.search import PromptRetriever, SearchRequest
from prompt_retriever.search.systems import (
    AdaptiveFusionSystem,
    SystemSpec,
    WeightedFusionSystem,
    length_buckets,
)
from prompt_retriever.training import TrainConfig
from prompt_retriever.training.data import TrainRow, select_rows


@pytest.fixture(scope="module")
def golden():
    corpus = load_corpus()
    few = {p.id for p in corpus if p.genre in ("Horror", "Memoir", "Food Writing", "Science Fiction")}
    prompts = [p for p in corpus if p.id in few]
    natural = [q for q in read_natural_queries(bundled_natural_path()) if q.prompt_id in few and not q.relevant]
    gs = add_natural_queries(generate_heuristic(prompts, HeuristicConfig(seed=3)), natural)
    return split_by_prompt(gs, test=0.2, dev=0.3, seed=3)


def test_length_buckets():
    assert length_buckets(
        ["bees", "haunted lighthouse", "a b c", "a b c d e", "one two three four five six seven eight"]
    ).tolist() == [0, 0, 1, 2, 3]


def test_each_bucket_takes_the_alpha_that_is_best_on_its_dev_queries(golden):
    (system,) = build_systems(["hybrid-adaptive"], golden.corpus)  # no dev: untuned
    assert system.alphas == (0.5, 0.5, 0.5, 0.5)
    queries, qrels = golden.dev_judged()
    alphas = tune_adaptive(system, queries, qrels, min_queries=5)
    buckets = length_buckets([t for _, t in queries])
    weighted = WeightedFusionSystem(system.dense, system.bm25)
    from prompt_retriever.evaluation.metrics import evaluate

    for b, alpha in enumerate(alphas):
        ids = [(q, t) for (q, t), x in zip(queries, buckets, strict=True) if x == b]
        if len(ids) < 5:  # too few dev queries of this length to decide a weight: the dense side alone
            assert alpha == 1.0 and system.tuning["buckets"][str(b)]["fallback"] == "dense only"
            continue
        sub = {q: qrels[q] for q, _ in ids}
        scores = {}
        for a in [round(i / 10, 1) for i in range(11)]:
            weighted.alpha = a
            scores[a] = evaluate(weighted.search(ids, 10), sub, ["ndcg@10"])["ndcg@10"]
        assert scores[alpha] == max(scores.values())
        weighted.alpha = alpha
        got, want = system.search(ids, 10), weighted.search(ids, 10)  # the bucket's queries fuse with its alpha
        for q, _ in ids:
            assert list(got[q]) == list(want[q]) and got[q] == pytest.approx(want[q], abs=1e-6)
    assert system.report_extra["tuned_on"] == "dev"


def test_the_adaptive_hybrid_is_servable(golden):
    (system,) = build_systems(["hybrid-adaptive"], golden.corpus, dev=golden.dev_judged())
    spec = SystemSpec("hybrid-adaptive", alphas=system.alphas, bounds=system.bounds)
    r = PromptRetriever(system=spec).index(golden.corpus)
    texts = ["ghost story", "a memoir about the kitchen my grandmother ran like a ship"]
    hits = r.search_requests([SearchRequest(t, 5) for t in texts])
    want = system.search(list(enumerate(texts)), 5)
    for i, hs in enumerate(hits):
        assert {h.prompt.id for h in hs} == set(want[i])
    with pytest.raises(InputError):
        AdaptiveFusionSystem(system.dense, system.bm25, alphas=(0.5, 2.0, 0.5, 0.5))


def test_natural_share_spends_that_share_of_the_budget_on_natural_queries():
    rows = [TrainRow(f"n{i}", "q", "p") for i in range(100)] + [TrainRow(f"t{i}", "q", "p") for i in range(300)]
    kinds = {r.query_id: "natural" if r.query_id.startswith("n") else "keywords" for r in rows}
    picked = select_rows(rows, TrainConfig(max_rows=80, natural_share=0.75), kinds)
    assert len(picked) == 80 and sum(r.query_id.startswith("n") for r in picked) == 60
    greedy = select_rows(rows, TrainConfig(max_rows=200, natural_share=0.9), kinds)  # only 100 natural rows
    assert len(greedy) == 200 and sum(r.query_id.startswith("n") for r in greedy) == 100
    assert select_rows(rows, TrainConfig(max_rows=80, natural_share=0.75), kinds) == picked  # seeded
    with pytest.raises(InputError):
        TrainConfig(natural_share=1.5)
    assert np.isclose(
        sum(r.query_id.startswith("n") for r in select_rows(rows, TrainConfig(max_rows=80, natural_share=None), kinds))
        / 80,
        0.25,
        atol=0.15,
    )
