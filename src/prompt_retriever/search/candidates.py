"""Fusion over candidates: the weighted hybrids score only the union of each side's top `depth`, and get
exactly what fusing the whole corpus gets.

The full-corpus fusion (what the hybrids always meant) is, per query: min-max normalise the dense scores
and the BM25 scores over EVERY prompt (unmasked), alpha * dense + (1 - alpha) * bm25, then keep the
prompts the genre/theme filter allows and take the best `k` (`fusion.minmax`, `runs.run_from_scores`).
Candidate fusion computes the same numbers for fewer prompts:

1. Candidates: the dense side's top `depth` and BM25's top `depth` matches (score > 0), both among the
   prompts the filter allows. Every member of their union carries BOTH its exact scores: its dense cosine
   and its BM25 score (with full score matrices these are lookups; an engine computes a dense score from
   the stored vector and a BM25 score for given documents).
2. Normalisation uses the whole corpus's per-query constants, `Bounds(lo, hi)` per side, unmasked, so each
   member's fused score equals its full-corpus fused score to the bit (same float32 arithmetic). With full
   matrices they are the row's min and max. An engine gets them without scoring every prompt:
   dense max = the top-1 score of an unfiltered search; dense min = minus the top-1 score of an unfiltered
   search with the negated query vector (cosine); BM25 max = the top-1 score of an unfiltered BM25 search;
   BM25 min = 0 whenever some prompt matches none of the query's terms (the number of matching prompts is
   below the corpus size), else the lowest BM25 score.
3. The threshold-algorithm bound: a prompt outside both lists scores at most dense's `depth`-th score on
   the dense side and BM25's `depth`-th score on the other (0 when BM25 ran out of matches), so its fused
   score is at most alpha * norm_d(d_depth) + (1 - alpha) * norm_b(b_depth). When the union's best `k` all
   score strictly above that, they are the full-corpus best `k`. When they do not (`fuse` answers None),
   the exact path (`ExactFusion`, full matrices) fuses that query over the whole (filtered) corpus
   instead, so its result is ALWAYS the full-corpus fusion's; an engine would ask for more candidates.
   When the dense list holds every prompt the filter allows, the union is everything and no bound is needed.
4. Ties are ordered as `run_from_scores` orders them: the best `k` by score, ties by lower corpus position,
   at the cut too (`stores.top_k_indices`); every prompt tied with the `k`-th scores above the bound, so
   it is in the union. A run's ranking is then `runs.rank`'s (score descending, ties by id descending).

Rank fusion (`hybrid-rrf`) fuses the two top-`depth` lists by rank (`candidate_lists`, `fusion.rrf`).

>>> d = np.array([[0.9, 0.7, 0.5, 0.1]], dtype=np.float32)   # one query, four prompts a b c d
>>> b = np.array([[0.0, 7.0, 0.0, 3.0]], dtype=np.float32)
>>> fusion = ExactFusion(["q"], ["a", "b", "c", "d"], d, b, depth=2)
>>> fusion.candidates["q"].ids                # dense's top 2 (a, b) and BM25's (b, d)
['a', 'b', 'd']
>>> fusion.fuse(0.5, k=1)                     # b: 0.5 * 0.75 + 0.5 * 1, above the bound: exact
({'q': {'b': 0.875}}, [])
>>> fusion.fuse(0.5, k=2)                     # a (0.5) is not above the bound: the whole corpus fused
({'q': {'b': 0.875, 'a': 0.5}}, ['q'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .fusion import minmax
from .runs import Run, run_from_scores
from .stores import top_k_indices

# word-count buckets of the query-adaptive hybrid: 1-2 words, 3-4, 5-7, 8 or more
ADAPTIVE_BOUNDS = (2, 4, 7)
HYBRID_KINDS = ("hybrid", "hybrid-adaptive", "hybrid-rrf")
# Each side's candidates when a system does not say (`SystemSpec.depth`): chosen on dev, see
# benchmarks/bench_candidates.py.
DEFAULT_DEPTH = 50

# A fusion weight: a Python float for `hybrid` (weighted as `fusion.weighted_sum`), a numpy float32 for
# `hybrid-adaptive` (weighted as its float32 per-query weights always were); see `query_alphas`.
Alpha = float | np.float32


def length_buckets(texts: Sequence[str], bounds: Sequence[int] = ADAPTIVE_BOUNDS) -> np.ndarray:
    """The word-count bucket of each query: 0 for at most bounds[0] words, ..., len(bounds) above the last."""
    return np.array([int(np.searchsorted(bounds, len(t.split()), side="left")) for t in texts], dtype=int)


def query_alphas(
    kind: str,
    qids: Sequence[str],
    alpha: float = 0.5,
    *,
    texts: Sequence[str] = (),
    alphas: Sequence[float] = (),
    bounds: Sequence[int] = ADAPTIVE_BOUNDS,
) -> dict[str, Alpha]:
    """Each query's fusion weight: `alpha` for `hybrid`; for `hybrid-adaptive` the alpha of the query's
    length bucket, as float32 (the arithmetic of the adaptive hybrid's full-corpus fusion)."""
    if kind == "hybrid-adaptive":
        a = np.asarray(alphas, dtype=np.float32)[length_buckets(texts, bounds)]
        return dict(zip(qids, a, strict=True))
    return dict.fromkeys(qids, float(alpha))


def fused_row(alpha: Alpha, dense: np.ndarray, bm25: np.ndarray) -> np.ndarray:
    """One query's full-corpus fused scores: alpha * minmax(dense) + (1 - alpha) * minmax(bm25), in the
    float32 arithmetic every weighted hybrid uses (an empty corpus: the empty row)."""
    return alpha * minmax(dense) + (1 - alpha) * minmax(bm25) if len(dense) else dense


@dataclass(frozen=True)
class Bounds:
    """One side's score range over the whole corpus for one query (unmasked): what min-max divides by."""

    lo: float
    hi: float

    @classmethod
    def of(cls, row: np.ndarray) -> Bounds:
        """The bounds of a full score row (every prompt); (0, 0) for an empty corpus."""
        return cls(float(row.min()), float(row.max())) if len(row) else cls(0.0, 0.0)

    def norm(self, scores: np.ndarray) -> np.ndarray:
        """`scores` min-max normalised with these bounds: bit for bit `fusion.minmax` over the full row."""
        scores = np.asarray(scores, dtype=np.float32)
        return (scores - self.lo) / (self.hi - self.lo) if self.hi > self.lo else np.zeros_like(scores)


@dataclass(frozen=True)
class Candidates:
    """One query's union of the two sides' top `depth` (among the allowed prompts), each member with both
    exact scores, and what the bound needs.

    `order`: each member's corpus position (ties go to the lower). `dense_floor`: the dense list's lowest
    score, None when that list holds every allowed prompt (the union is then everything). `bm25_floor`:
    the BM25 list's lowest score when it held `depth` matches, else 0 (every other prompt matches none of
    the query's terms)."""

    ids: list[str]
    order: np.ndarray
    dense: np.ndarray
    bm25: np.ndarray
    dense_bounds: Bounds
    bm25_bounds: Bounds
    dense_floor: float | None
    bm25_floor: float

    def fused(self, alpha: Alpha) -> np.ndarray:
        """Each member's full-corpus fused score."""
        return alpha * self.dense_bounds.norm(self.dense) + (1 - alpha) * self.bm25_bounds.norm(self.bm25)

    def threshold(self, alpha: Alpha) -> float | None:
        """The most any prompt outside the union can score (None: there is no such prompt)."""
        if self.dense_floor is None:
            return None
        d, b = np.float32(self.dense_floor), np.float32(self.bm25_floor)
        return float((alpha * self.dense_bounds.norm([d]) + (1 - alpha) * self.bm25_bounds.norm([b]))[0])

    def fuse(self, alpha: Alpha, k: int, *, proven: bool = True) -> dict[str, float] | None:
        """The best `k` (score descending, ties by lower corpus position), or None when the candidates
        cannot prove they are the full-corpus fusion's best `k` (the bound fails; `proven=False`: the
        union's best `k` all the same)."""
        if k <= 0:
            return {}
        fused = self.fused(alpha)
        top = np.lexsort((self.order, -fused))[:k]
        thr = self.threshold(alpha)
        if proven and thr is not None and (len(top) < k or not fused[top[-1]] > thr):
            return None
        return {self.ids[i]: float(fused[i]) for i in top}


def candidates_from_lists(
    dense_hits: Mapping[str, float],
    bm25_hits: Mapping[str, float],
    dense_of: Mapping[str, float],
    bm25_of: Mapping[str, float],
    order: Mapping[str, int],
    bounds: tuple[Bounds, Bounds],
    depth: int,
    *,
    everything: bool = False,
) -> Candidates:
    """An engine's `Candidates`: its two top-`depth` lists (prompt id -> score, among the allowed prompts),
    every union member's exact dense and BM25 score (`dense_of`, `bm25_of`: lookups or computed), each
    member's position `order`, the whole corpus's `(dense, bm25)` bounds. `everything`: the dense list
    holds every allowed prompt (it also does whenever it holds fewer than `depth`)."""
    ids = list(dict.fromkeys([*dense_hits, *bm25_hits]))
    full_dense = len(dense_hits) >= depth and not everything
    return Candidates(
        ids,
        np.array([order[p] for p in ids], dtype=np.int64),
        np.array([dense_of[p] for p in ids], dtype=np.float32),
        np.array([bm25_of[p] for p in ids], dtype=np.float32),
        *bounds,
        dense_floor=min(dense_hits.values()) if full_dense else None,
        bm25_floor=min(bm25_hits.values()) if len(bm25_hits) >= depth else 0.0,
    )


def fuse_candidates(
    cands: Mapping[str, Candidates], alphas: Mapping[str, Alpha] | float, k: int
) -> tuple[Run, list[str]]:
    """The weighted fusion of each query's candidates (one alpha, or one per query id), and the queries
    whose bound failed (absent from the run: fuse them over more, see the module's rule 3)."""
    run: Run = {}
    fallen: list[str] = []
    for q, c in cands.items():
        got = c.fuse(alphas[q] if isinstance(alphas, Mapping) else alphas, k)
        if got is None:
            fallen.append(q)
        else:
            run[q] = got
    return run, fallen


def top_positions(row: np.ndarray, depth: int, allowed: np.ndarray | None, positive: bool) -> np.ndarray:
    """Corpus positions of the best `depth` of a row among `allowed` (ties: lower position first), as
    `run_from_scores` picks them; `positive` keeps only scores above 0 (BM25's matches)."""
    if allowed is None:
        top = top_k_indices(row, depth)
    else:
        top = allowed[top_k_indices(row[allowed], depth)] if len(allowed) else allowed
    return top[row[top] > 0] if positive else top


def candidate_lists(
    qids: Sequence[str],
    ids: Sequence[str],
    dense: np.ndarray | None,
    bm25: np.ndarray | None,
    depth: int,
    mask: np.ndarray | None = None,
) -> tuple[Run, Run]:
    """Each side's top `depth` from full score matrices among the prompts `mask` allows (BM25: matches
    only), as two runs: what rank fusion reads. A side without a matrix (None) has no candidates."""
    empty: Run = {q: {} for q in qids}
    d = run_from_scores(qids, ids, dense, depth, mask=mask) if dense is not None else empty
    b = run_from_scores(qids, ids, bm25, depth, keep=lambda s: s > 0, mask=mask) if bm25 is not None else empty
    return d, b


class ExactFusion:
    """The weighted hybrids from full score matrices (queries x prompts): what evaluation and the
    in-process server run. Candidates are taken once; `fuse` fuses them at any alpha and fuses a query
    whose bound fails over the whole filtered corpus, so its run is always the full-corpus fusion's.

    >>> d = np.array([[0.9, 0.1, 0.5]], dtype=np.float32)
    >>> ExactFusion(["q"], ["a", "b", "c"], d, np.zeros_like(d), depth=2).fuse(1.0, k=1)[0]
    {'q': {'a': 1.0}}
    """

    def __init__(
        self,
        qids: Sequence[str],
        ids: Sequence[str],
        dense: np.ndarray,
        bm25: np.ndarray,
        depth: int,
        mask: np.ndarray | None = None,
    ):
        self.qids, self.ids, self.dense, self.bm25, self.mask = list(qids), list(ids), dense, bm25, mask
        self._row = {q: i for i, q in enumerate(self.qids)}
        allowed = np.flatnonzero(mask) if mask is not None else None
        n_allowed = len(ids) if allowed is None else len(allowed)
        self.candidates: dict[str, Candidates] = {}
        for q, d, b in zip(self.qids, dense, bm25, strict=True):
            d_top, b_top = top_positions(d, depth, allowed, False), top_positions(b, depth, allowed, True)
            pos = np.array(list(dict.fromkeys([*d_top.tolist(), *b_top.tolist()])), dtype=np.int64)
            self.candidates[q] = Candidates(
                [self.ids[i] for i in pos],
                pos,
                d[pos],
                b[pos],
                Bounds.of(d),
                Bounds.of(b),
                dense_floor=float(d[d_top[-1]]) if len(d_top) < n_allowed else None,
                bm25_floor=float(b[b_top[-1]]) if len(b_top) >= depth else 0.0,
            )

    def full(self, q: str, alpha: Alpha, k: int) -> dict[str, float]:
        """Query `q` fused over the whole corpus, then filtered: the full-corpus fusion itself."""
        i = self._row[q]
        return run_from_scores(
            [q], self.ids, fused_row(alpha, self.dense[i], self.bm25[i])[None, :], k, mask=self.mask
        )[q]

    def union_best(self, alphas: Mapping[str, Alpha] | float, k: int) -> Run:
        """Each query's union's best `k`, without the proof (`fusion="candidates"`, see `spec.FUSIONS`):
        what an engine answers in one round at this depth."""
        return {
            q: c.fuse(alphas[q] if isinstance(alphas, Mapping) else alphas, k, proven=False)
            for q, c in self.candidates.items()
        }

    def fuse(self, alphas: Mapping[str, Alpha] | float, k: int) -> tuple[Run, list[str]]:
        """The run (queries in order) and the queries that were fused over the whole corpus."""
        run, fallen = fuse_candidates(self.candidates, alphas, k)
        for q in fallen:
            run[q] = self.full(q, alphas[q] if isinstance(alphas, Mapping) else alphas, k)
        return {q: run[q] for q in self.qids}, fallen
