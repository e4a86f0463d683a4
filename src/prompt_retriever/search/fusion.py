"""Fusion of retrieval results as pure functions, in the spirit of ranx's `fuse`.

- `normalize(scores)`: min-max normalisation of each query's scores to [0, 1] (a constant row becomes 0).
- `weighted_sum(dense, bm25, alpha)`: alpha * dense + (1 - alpha) * bm25, over scores already normalised.
- `rrf(runs, k=60)`: reciprocal rank fusion of runs, score = sum over runs of 1 / (k + rank).

Score arguments are numpy arrays, one row per query and one column per prompt (a single row works too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .runs import Run, rank


def minmax(row: np.ndarray) -> np.ndarray:
    """One row of scores min-max normalised to [0, 1]; all zeros when every score is the same."""
    lo, hi = float(row.min()), float(row.max())
    return (row - lo) / (hi - lo) if hi > lo else np.zeros_like(row)


def normalize(scores: np.ndarray) -> np.ndarray:
    """Min-max normalise each query's scores (each row of a queries x prompts matrix, or one row)."""
    scores = np.asarray(scores)
    return minmax(scores) if scores.ndim == 1 else np.apply_along_axis(minmax, 1, scores)


def weighted_sum(dense: np.ndarray, bm25: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * dense + (1 - alpha) * bm25; both on the same scale (see `normalize`)."""
    return alpha * dense + (1 - alpha) * bm25


def rrf(
    runs: Sequence[Run], k: int = 60, *, top: int | None = None, qids: Iterable[str] | None = None
) -> dict[str, dict[str, float]]:
    """Reciprocal rank fusion: a prompt scores the sum over runs of 1 / (k + its rank in that run).

    Ranks follow `metrics.rank` (score descending, ties by id descending). `top` keeps the best that many
    per query; `qids` are the queries of the fused run, in order (default: every query of any run).
    """
    if qids is None:
        qids = dict.fromkeys(q for run in runs for q in run)
    fused: dict[str, dict[str, float]] = {}
    for qid in qids:
        acc: dict[str, float] = {}
        for run in runs:
            for r, pid in enumerate(rank(run.get(qid, {})), 1):
                acc[pid] = acc.get(pid, 0.0) + 1.0 / (k + r)
        fused[qid] = dict(sorted(acc.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:top])
    return fused
