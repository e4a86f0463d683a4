"""Fusion over candidates: the hybrids fuse each side's top `depth` prompts, not the whole corpus.

The inputs are plain candidate lists, one `Run` per side (query id -> {prompt id: score}): the dense
side's top `depth` prompts and the BM25 side's top `depth` matches, both after the genre/theme filter.
`exact_candidates` takes them from full score matrices (what evaluation and the in-process server do); an
engine (an HNSW index, sparse vectors) supplies the same lists from its own indexes, and everything after
that is the same code (`candidate_run`).

The weighted fusion (`fuse_weighted`, `fuse_adaptive`):

- the union of the two lists is fused;
- a prompt missing from one side gets that side's floor: its lowest candidate score, or, when the side
  returned fewer than `depth` because it ran out (BM25 returns only prompts that match), the score it
  gives every prompt it did not return (`UNMATCHED`: BM25 scores those 0);
- each side is min-max normalised over the union (so its floor becomes 0), then
  alpha * dense + (1 - alpha) * bm25, with alpha per query for the adaptive hybrid (its length bucket);
- the best `k` by score, ties by prompt id descending (`runs.rank`'s order).

With `depth` at least the number of prompts the filter allows this is exactly the full-corpus fusion
(`fusion.normalize` over those prompts). Rank fusion (`fuse_rrf`) reads the same two lists.

>>> dense = {"q": {"a": 0.9, "b": 0.7, "c": 0.5}}
>>> bm25 = {"q": {"b": 7.0}}                   # one match: the rest of the corpus scores 0
>>> fuse_weighted(dense, bm25, 0.5, depth=3, k=2)
{'q': {'b': 0.75, 'a': 0.5}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .fusion import minmax, rrf
from .runs import Run, run_from_scores

# word-count buckets of the query-adaptive hybrid: 1-2 words, 3-4, 5-7, 8 or more
ADAPTIVE_BOUNDS = (2, 4, 7)
# The score a side gives a prompt it did not return when it returned fewer than `depth`: the dense side
# returns every allowed prompt up to `depth` (None: its lowest score stands in), BM25 only its matches.
UNMATCHED: dict[str, float | None] = {"dense": None, "bm25": 0.0}
HYBRID_KINDS = ("hybrid", "hybrid-adaptive", "hybrid-rrf")
# Each side's candidates when a system does not say (`SystemSpec.depth`): chosen on dev, see
# benchmarks/bench_candidates.py.
DEFAULT_DEPTH = 100


def length_buckets(texts: Sequence[str], bounds: Sequence[int] = ADAPTIVE_BOUNDS) -> np.ndarray:
    """The word-count bucket of each query: 0 for at most bounds[0] words, ..., len(bounds) above the last."""
    return np.array([int(np.searchsorted(bounds, len(t.split()), side="left")) for t in texts], dtype=int)


def exact_candidates(
    qids: Sequence[str],
    ids: Sequence[str],
    dense: np.ndarray | None,
    bm25: np.ndarray | None,
    depth: int,
    mask: np.ndarray | None = None,
) -> tuple[Run, Run]:
    """Each side's top `depth` candidates from full score matrices (queries x prompts), among the prompts
    `mask` allows: the dense side's best prompts and BM25's best matches (score > 0). A side without a
    matrix (None) has no candidates."""
    empty: Run = {q: {} for q in qids}
    d = run_from_scores(qids, ids, dense, depth, mask=mask) if dense is not None else empty
    b = run_from_scores(qids, ids, bm25, depth, keep=lambda s: s > 0, mask=mask) if bm25 is not None else empty
    return d, b


def _floor(scores: np.ndarray, depth: int, unmatched: float | None) -> float:
    """What a prompt missing from a side scores on it (see the module's rules)."""
    if not len(scores):
        return unmatched or 0.0
    lo = float(scores.min())
    return min(lo, unmatched) if len(scores) < depth and unmatched is not None else lo


def _side(cands: Mapping[str, float], union: Sequence[str], depth: int, unmatched: float | None) -> np.ndarray:
    """One side's scores over the union, missing prompts at its floor, min-max normalised (float32, the
    precision of the full-corpus score matrices)."""
    own = np.fromiter(cands.values(), dtype=np.float32, count=len(cands))
    floor = np.float32(_floor(own, depth, unmatched))
    row = np.fromiter((cands.get(p, floor) for p in union), dtype=np.float32, count=len(union))
    return minmax(row) if len(row) else row


@dataclass(frozen=True)
class Union:
    """One query's fused candidates: the prompt ids and each side's normalised scores over them."""

    ids: list[str]
    dense: np.ndarray
    bm25: np.ndarray

    def top(self, alpha: float, k: int) -> dict[str, float]:
        """alpha * dense + (1 - alpha) * bm25, best `k` (score descending, ties by id descending)."""
        fused = alpha * self.dense + (1 - alpha) * self.bm25  # as `fusion.weighted_sum`: float32
        best = sorted(zip(fused.tolist(), self.ids, strict=True), reverse=True)[:k]
        return {pid: s for s, pid in best}


def prepare(dense: Run, bm25: Run, depth: int, qids: Sequence[str] | None = None) -> dict[str, Union]:
    """Each query's `Union` of the two sides' candidates, normalised once (alpha tuning fuses it again and
    again). `qids`: the queries, in order (default: every query of either side)."""
    if qids is None:
        qids = list(dict.fromkeys([*dense, *bm25]))
    out: dict[str, Union] = {}
    for q in qids:
        d, b = dense.get(q, {}), bm25.get(q, {})
        union = list(dict.fromkeys([*d, *b]))
        out[q] = Union(union, _side(d, union, depth, UNMATCHED["dense"]), _side(b, union, depth, UNMATCHED["bm25"]))
    return out


def fuse_prepared(prepared: Mapping[str, Union], alphas: Mapping[str, float] | float, k: int) -> Run:
    """The weighted fusion of prepared unions: one alpha for all, or one per query id."""
    return {q: u.top(float(alphas[q] if isinstance(alphas, Mapping) else alphas), k) for q, u in prepared.items()}


def fuse_weighted(dense: Run, bm25: Run, alpha: float, *, depth: int, k: int, qids: Sequence[str] | None = None) -> Run:
    """alpha * dense + (1 - alpha) * bm25 over the union of the candidates, each side normalised over it."""
    return fuse_prepared(prepare(dense, bm25, depth, qids), alpha, k)


def fuse_adaptive(
    dense: Run,
    bm25: Run,
    qids: Sequence[str],
    texts: Sequence[str],
    alphas: Sequence[float],
    bounds: Sequence[int] = ADAPTIVE_BOUNDS,
    *,
    depth: int,
    k: int,
) -> Run:
    """The query-adaptive weighted fusion: each query's alpha is the one of its length bucket."""
    buckets = length_buckets(texts, bounds)
    return fuse_prepared(
        prepare(dense, bm25, depth, qids), {q: alphas[b] for q, b in zip(qids, buckets, strict=True)}, k
    )


def fuse_rrf(dense: Run, bm25: Run, *, k_rrf: int, k: int, qids: Sequence[str]) -> Run:
    """Reciprocal rank fusion of the two candidate lists (`fusion.rrf`)."""
    return rrf([dense, bm25], k_rrf, top=k, qids=qids)


def candidate_run(
    kind: str,
    qids: Sequence[str],
    dense: Run,
    bm25: Run,
    k: int,
    *,
    depth: int,
    alpha: float = 0.5,
    k_rrf: int = 60,
    texts: Sequence[str] = (),
    alphas: Sequence[float] = (),
    bounds: Sequence[int] = ADAPTIVE_BOUNDS,
) -> Run:
    """The run of a hybrid of `kind` from its two candidate lists (whoever produced them)."""
    if kind == "hybrid":
        return fuse_weighted(dense, bm25, alpha, depth=depth, k=k, qids=qids)
    if kind == "hybrid-adaptive":
        return fuse_adaptive(dense, bm25, qids, texts, alphas, bounds, depth=depth, k=k)
    if kind == "hybrid-rrf":
        return fuse_rrf(dense, bm25, k_rrf=k_rrf, k=k, qids=qids)
    raise ValueError(f"not a hybrid: {kind!r} (use {', '.join(HYBRID_KINDS)})")
