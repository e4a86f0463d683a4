"""IR metrics as small pure functions, with trec_eval's definitions.

A run maps query id -> {prompt id: score}; qrels map query id -> {prompt id: graded relevance}.
A prompt is relevant when its grade is > 0 (trec_eval's default relevance level 1). Rankings sort by
score descending and break ties by prompt id descending, as trec_eval does. Every metric is in [0, 1];
a query with no relevant prompt scores 0; a query in the qrels but missing from the run scores 0.

- precision@k: relevant in the top k / k (k, not the number retrieved, as trec_eval's P_k)
- recall@k: relevant in the top k / all relevant
- hit@k: 1 if any relevant prompt is in the top k
- mrr@k: 1 / rank of the first relevant prompt within the top k
- ndcg@k: DCG with linear gains (the grade) and log2(rank + 1) discounts, over the ideal DCG (ndcg_cut)
- map@k: sum of precision at each relevant rank within the top k / all relevant (map_cut)
- r_precision: precision at R, R = number of relevant prompts (Rprec)
- context_precision@k / context_recall@k: RAGAS's non-LLM context precision (mean of precision@i
  over the relevant positions i <= k) and context recall (share of the relevant prompts retrieved),
  with relevance taken from the qrels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from ..errors import InputError
from ..golden.goldenset import Qrels
from ..search.runs import Run, rank  # trec_eval's order; shared with the systems that make runs


def _n_rel(rels: Mapping[str, int]) -> int:
    return sum(1 for g in rels.values() if g > 0)


def precision(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    return sum(1 for d in ranking[:k] if rels.get(d, 0) > 0) / k


def recall(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    n = _n_rel(rels)
    return sum(1 for d in ranking[:k] if rels.get(d, 0) > 0) / n if n else 0.0


def hit(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    return 1.0 if any(rels.get(d, 0) > 0 for d in ranking[:k]) else 0.0


def mrr(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranking[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def ndcg(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    dcg = sum(max(rels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def average_precision(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    n = _n_rel(rels)
    if not n:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranking[:k]):
        if rels.get(d, 0) > 0:
            hits += 1
            total += hits / (i + 1)
    return total / n


def r_precision(ranking: Sequence[str], rels: Mapping[str, int], k: int | None = None) -> float:
    n = _n_rel(rels)
    return precision(ranking, rels, n) if n else 0.0


def context_precision(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    hits, total = 0, 0.0
    for i, d in enumerate(ranking[:k]):
        if rels.get(d, 0) > 0:
            hits += 1
            total += hits / (i + 1)
    return total / hits if hits else 0.0


def context_recall(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    return recall(ranking, rels, k)


MetricFn = Callable[[Sequence[str], Mapping[str, int], int], float]
METRICS: dict[str, MetricFn] = {
    "precision": precision,
    "recall": recall,
    "hit": hit,
    "mrr": mrr,
    "ndcg": ndcg,
    "map": average_precision,
    "r_precision": r_precision,
    "context_precision": context_precision,
    "context_recall": context_recall,
}
DEFAULT_KS = (1, 3, 5, 10)
DEFAULT_METRICS = ("precision", "recall", "hit", "mrr", "ndcg", "map")


def metric_names(metrics: Sequence[str] = DEFAULT_METRICS, ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """`ndcg@10`-style names; r_precision has no cutoff."""
    names = []
    for m in metrics:
        if m not in METRICS:
            raise InputError(f"unknown metric {m!r}; known: {', '.join(METRICS)}")
        names.extend([m] if m == "r_precision" else [f"{m}@{k}" for k in ks])
    return names


def parse_name(name: str) -> tuple[MetricFn, int]:
    base, _, k = name.partition("@")
    if base not in METRICS:
        raise InputError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[base], int(k) if k else 0


def per_query(run: Run, qrels: Qrels, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """metric name -> query id -> value, for every query in the qrels."""
    fns = [(n, *parse_name(n)) for n in names]
    out: dict[str, dict[str, float]] = {n: {} for n in names}
    for qid, rels in qrels.items():
        ranking = rank(run.get(qid, {}))
        for name, fn, k in fns:
            out[name][qid] = fn(ranking, rels, k)
    return out


def mean(values: Mapping[str, float]) -> float:
    return sum(values.values()) / len(values) if values else 0.0


def evaluate(run: Run, qrels: Qrels, names: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over the queries of the qrels."""
    return {n: mean(v) for n, v in per_query(run, qrels, names).items()}
