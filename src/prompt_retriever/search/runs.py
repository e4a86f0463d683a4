"""Runs (query id -> {prompt id: score}) and the few pure functions that make and order them.

Shared by every system (dense, BM25, the hybrids) and by evaluation, so the ranking a metric scores and
the ranking a server returns come from the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .filters import filter_key
from .stores import top_k_indices

Run = dict[str, dict[str, float]]


def rank(scores: Mapping[str, float]) -> list[str]:
    """Prompt ids best first: score descending, ties by id descending (trec_eval's order)."""
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def filter_mask(genres: Sequence[str], themes: Sequence[str], genre: str | None, theme: str | None):
    """Boolean mask over prompts matching the filters, or None when there is no filter."""
    g, t = filter_key(genre), filter_key(theme)
    if g is None and t is None:
        return None
    m = np.ones(len(genres), dtype=bool)
    if g is not None:
        m &= np.array([x.casefold() == g for x in genres], dtype=bool)
    if t is not None:
        m &= np.array([x.casefold() == t for x in themes], dtype=bool)
    return m


def run_from_scores(
    qids: Sequence[str],
    ids: Sequence[str],
    scores: np.ndarray,
    k: int,
    keep: Callable[[float], bool] | None = None,
    mask: np.ndarray | None = None,
) -> Run:
    """The best `k` prompts per query row of `scores` (ties: lower index first). `keep` drops scores
    (BM25 keeps only matches); `mask` restricts to the prompts a filter allows."""
    run: Run = {}
    for qid, row in zip(qids, scores, strict=True):
        if mask is not None:
            allowed = np.flatnonzero(mask)
            top = allowed[top_k_indices(row[allowed], k)] if len(allowed) else allowed
        else:
            top = top_k_indices(row, k)
        run[qid] = {ids[i]: float(row[i]) for i in top if keep is None or keep(row[i])}
    return run
