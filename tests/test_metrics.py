from __future__ import annotations

import math
import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompt_retriever.evaluation import metrics as M

KS = (1, 3, 5, 10, 50)


def random_case(rng: random.Random, n_queries: int = 15, n_docs: int = 25):
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q:02d}"
        judged = rng.sample(range(n_docs), rng.randint(1, 8))
        qrels[qid] = {f"d{d:02d}": rng.choice([0, 0, 1, 1, 2, 3]) for d in judged}
        retrieved = rng.sample(range(n_docs), rng.randint(1, n_docs))
        # one decimal: many ties
        run[qid] = {f"d{d:02d}": round(rng.random(), 1) for d in retrieved}
    return qrels, run


def trec_ordered(run):
    """ranx leaves the order of tied scores undefined (its sort is not stable); break ties the trec_eval
    way first, by nudging tied scores apart without changing the order, so all three rank alike."""
    return {q: {d: s[d] - i * 1e-9 for i, d in enumerate(M.rank(s))} for q, s in run.items()}


@pytest.fixture(scope="module")
def cases():
    rng = random.Random(1234)
    return [random_case(rng) for _ in range(25)]


def test_matches_pytrec_eval(cases):
    import pytrec_eval

    measures = {"P", "recall", "ndcg_cut", "map_cut", "Rprec", "recip_rank"}
    for qrels, run in cases:
        ev = pytrec_eval.RelevanceEvaluator(qrels, measures)
        got = ev.evaluate(run)
        ours = M.per_query(run, qrels, [f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map") for k in KS])
        for qid in qrels:
            for k in (5, 10):  # pytrec_eval's default cutoffs
                assert ours[f"precision@{k}"][qid] == pytest.approx(got[qid][f"P_{k}"], abs=1e-9)
                assert ours[f"recall@{k}"][qid] == pytest.approx(got[qid][f"recall_{k}"], abs=1e-9)
                assert ours[f"ndcg@{k}"][qid] == pytest.approx(got[qid][f"ndcg_cut_{k}"], abs=1e-9)
                assert ours[f"map@{k}"][qid] == pytest.approx(got[qid][f"map_cut_{k}"], abs=1e-9)
            ranking = M.rank(run[qid])
            assert M.r_precision(ranking, qrels[qid]) == pytest.approx(got[qid]["Rprec"], abs=1e-9)
            assert M.mrr(ranking, qrels[qid], 10**6) == pytest.approx(got[qid]["recip_rank"], abs=1e-9)
        # custom cutoffs, including k larger than any run
        ev = pytrec_eval.RelevanceEvaluator(qrels, {"P.1,3,50", "ndcg_cut.1,3,50", "map_cut.1,3,50", "recall.1,3,50"})
        got = ev.evaluate(run)
        for qid in qrels:
            for k in (1, 3, 50):
                assert ours[f"precision@{k}"][qid] == pytest.approx(got[qid][f"P_{k}"], abs=1e-9)
                assert ours[f"ndcg@{k}"][qid] == pytest.approx(got[qid][f"ndcg_cut_{k}"], abs=1e-9)
                assert ours[f"map@{k}"][qid] == pytest.approx(got[qid][f"map_cut_{k}"], abs=1e-9)
                assert ours[f"recall@{k}"][qid] == pytest.approx(got[qid][f"recall_{k}"], abs=1e-9)


def test_matches_ranx(cases):
    import ranx

    pairs = {
        "precision": "precision",
        "recall": "recall",
        "hit": "hit_rate",
        "mrr": "mrr",
        "ndcg": "ndcg",
        "map": "map",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for qrels, run in cases:
            names = [f"{ours}@{k}" for ours in pairs for k in KS]
            theirs = ranx.evaluate(
                ranx.Qrels(qrels),
                ranx.Run(trec_ordered(run)),
                [f"{pairs[n.split('@')[0]]}@{n.split('@')[1]}" for n in names] + ["r-precision"],
                return_mean=False,
            )
            ours = M.per_query(run, qrels, [*names, "r_precision"])
            qids = list(ranx.Qrels(qrels).keys())
            for n in names:
                ranx_name = f"{pairs[n.split('@')[0]]}@{n.split('@')[1]}"
                for i, qid in enumerate(qids):
                    assert ours[n][qid] == pytest.approx(float(theirs[ranx_name][i]), abs=1e-9), (n, qid)
            for i, qid in enumerate(qids):
                assert ours["r_precision"][qid] == pytest.approx(float(theirs["r-precision"][i]), abs=1e-9)


def test_hand_worked_example():
    # ranking: a(2) x b(1) y ; 2 relevant (a grade 2, b grade 1), c relevant but not retrieved -> 3 relevant
    rels = {"a": 2, "b": 1, "c": 1, "z": 0}
    ranking = ["a", "x", "b", "y"]
    assert M.precision(ranking, rels, 3) == pytest.approx(2 / 3)
    assert M.precision(ranking, rels, 10) == pytest.approx(2 / 10)
    assert M.recall(ranking, rels, 3) == pytest.approx(2 / 3)
    assert M.hit(ranking, rels, 1) == 1.0 and M.hit(["x"], rels, 1) == 0.0
    assert M.mrr(["x", "b"], rels, 2) == 0.5 and M.mrr(["x", "b"], rels, 1) == 0.0
    dcg = 2 / math.log2(2) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg(ranking, rels, 4) == pytest.approx(dcg / idcg)
    assert M.average_precision(ranking, rels, 10) == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert M.r_precision(ranking, rels) == pytest.approx(2 / 3)
    assert M.context_precision(ranking, rels, 4) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert M.context_recall(ranking, rels, 4) == pytest.approx(2 / 3)
    # no relevant prompt at all: every metric 0
    for name, fn in M.METRICS.items():
        assert fn(ranking, {"a": 0}, 5) == 0.0, name


def test_ties_break_by_id_descending_and_missing_queries_score_zero():
    assert M.rank({"a": 0.5, "z": 0.5, "y": 0.9}) == ["y", "z", "a"]
    res = M.evaluate({"q1": {"a": 1.0}}, {"q1": {"a": 1}, "q2": {"b": 1}}, ["hit@1", "ndcg@10"])
    assert res == {"hit@1": 0.5, "ndcg@10": 0.5}


def test_metric_names():
    assert M.metric_names(["ndcg", "r_precision"], [5, 10]) == ["ndcg@5", "ndcg@10", "r_precision"]
    with pytest.raises(ValueError, match="unknown metric"):
        M.metric_names(["bleu"])


grades = st.dictionaries(st.sampled_from([f"d{i}" for i in range(12)]), st.integers(0, 3), min_size=1)
scores = st.dictionaries(st.sampled_from([f"d{i}" for i in range(12)]), st.floats(-5, 5, allow_nan=False), min_size=1)


@settings(max_examples=300, deadline=None)
@given(rels=grades, run=scores, k=st.integers(1, 15))
def test_properties(rels, run, k):
    ranking = M.rank(run)
    values = {name: fn(ranking, rels, k) for name, fn in M.METRICS.items()}
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in values.values()), values
    assert values["mrr"] >= M.precision(ranking, rels, 1) - 1e-12
    assert values["hit"] >= values["mrr"]
    ideal = sorted(rels, key=lambda d: (-rels[d], d))
    if any(g > 0 for g in rels.values()):
        assert M.ndcg(ideal, rels, k) == pytest.approx(1.0)
        assert M.mrr(ideal, rels, k) == 1.0
