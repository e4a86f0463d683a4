"""Every system's run from an engine index (`EdgeIndex`) instead of full score matrices: the same
arithmetic as `systems.system_run`, over the engine's candidate lists.

- `dense`, `bm25`: the engine's top `k` among the prompts the filter allows (filters run in the engine).
- `hybrid-rrf`: reciprocal rank fusion of each side's top `depth` (`fusion.rrf`), as `systems.rrf_run`.
- `hybrid`, `hybrid-adaptive` with `fusion` "candidates" (`spec.FUSIONS`): the union's best `k` at the
  spec's `depth`, in one round: the system itself, as `systems.system_run` computes it from full matrices.
- `hybrid`, `hybrid-adaptive` (fusion "corpus"): candidate fusion (`candidates`): the union of each side's top `depth`,
  every member with both of its scores (the engine scores the members the other side did not list),
  normalised with the whole corpus's per-query bounds (the top-1 of each side and of the negated dense
  query; `EdgeIndex.bm25_lowest`), and the threshold check of `candidates.Candidates.fuse`. A query
  whose check fails asks the engine for four times as many candidates, up to `MAX_DEPTH` (then the
  union's best answer it, unproven, counted in `EngineSearch.unproven`). So when the engine's lists and
  bounds are exact (a segment below the indexing threshold is searched exactly) and the proof succeeds,
  the run is the full-corpus fusion's, as evaluation computes it. Over an HNSW graph the lists and the
  dense bounds are the graph's approximations (benchmarks/bench_served.py measures overlap@10 with the
  exact run).

Ties at a cut are ordered by corpus position (`order`), as `ExactFusion` orders them.

>>> search = EngineSearch(index, SystemSpec("hybrid", alpha=0.6), order)        # doctest: +SKIP
>>> search.run(["q1"], ["haunted lighthouse"], vectors, k=10)                    # doctest: +SKIP
{'q1': {'p-17': 0.93, ...}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .candidates import Bounds, Candidates, candidates_from_lists, query_alphas, top_positions
from .edge import DENSE, SPARSE, Ask, EdgeIndex
from .fusion import rrf
from .runs import Run
from .systems import SystemSpec

DEEPEN = 4  # how much deeper a query asks next time (its threshold check failed, or a tie went past the end)
RANGE_EF = 64  # the HNSW beam of the negated dense query that finds the lowest cosine (the dense bound)
TIE_MARGIN = 8
# A query whose bound fails asks for DEEPEN times more candidates up to this depth; past it, the union's
# best are its answer without proof (a corpus of near-duplicates can need thousands to prove the top 10).
MAX_DEPTH = 800  # results asked beyond `k`, to see whether the `k`-th score is tied with the next ones
Hits = list[tuple[str, float]]


class Positions(dict):
    """Prompt id -> corpus position; a prompt the engine holds but this map does not (a live update added
    it after the searching state was taken) sorts after every known one instead of failing the search."""

    def __missing__(self, key: str) -> int:
        return len(self)


@dataclass(frozen=True)
class LocalScores:
    """What a retriever holds in process, for the weighted hybrids to use beside the engine's dense
    side: the embedding matrix (rows in corpus order), BM25 scores of every prompt (`bm25_rows`, e.g.
    `BM25System.scores`) and the filter masks (`mask(genre, theme)`, None for no filter)."""

    embeddings: np.ndarray
    ids: Sequence[str]
    bm25_rows: Callable[[Sequence[str]], np.ndarray]
    mask: Callable[[str | None, str | None], np.ndarray | None]


class EngineSearch:
    """A `SystemSpec` answered by an `EdgeIndex`; `order` maps each prompt id to its corpus position (ties)."""

    def __init__(
        self,
        index: EdgeIndex,
        spec: SystemSpec,
        order: Mapping[str, int],
        *,
        max_depth: int | None = None,
        local: LocalScores | None = None,
    ):
        self.index, self.spec, self.local = index, spec, local
        self.order = order if isinstance(order, Positions) else Positions(order)
        # the deepest a query asks for before its union's best are taken without the bound's proof
        self.max_depth = MAX_DEPTH if max_depth is None else max_depth
        self.unproven = 0  # queries answered so (counted; see the module docstring)

    def run(
        self,
        qids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray | None,
        k: int,
        genre: str | None = None,
        theme: str | None = None,
    ) -> Run:
        """The system's run for the queries (`vectors`: their embeddings, None for `bm25`)."""
        kind = self.spec.kind
        if kind == "dense":
            return _as_run(qids, self.dense(vectors, k, genre, theme))
        if kind == "bm25":
            return _as_run(qids, self.bm25(texts, k, genre, theme))
        if kind == "hybrid-rrf":
            depth = self.spec.depth
            d = _as_run(qids, self.dense(vectors, depth, genre, theme))
            b = _as_run(qids, self.bm25(texts, depth, genre, theme))
            return rrf([d, b], self.spec.k_rrf, top=k, qids=list(qids))
        return self._fused(qids, texts, vectors, k, genre, theme)

    def dense(self, vectors: np.ndarray, k: int, genre: str | None, theme: str | None) -> list[Hits]:
        """Each query's best `k` by cosine among the allowed prompts, ties by corpus position."""
        return self._top_k(
            lambda rows, limit: self.index.dense_candidates(vectors[rows], limit, genre, theme), len(vectors), k
        )

    def bm25(self, texts: Sequence[str], k: int, genre: str | None, theme: str | None) -> list[Hits]:
        """Each query's best `k` BM25 matches among the allowed prompts, ties by corpus position."""
        return self._top_k(
            lambda rows, limit: self.index.bm25_candidates([texts[i] for i in rows], limit, genre, theme), len(texts), k
        )

    def _top_k(self, fetch: Callable[[list[int], int], list[Hits]], n: int, k: int) -> list[Hits]:
        """The best `k` of each of `n` queries, where several prompts tie at the `k`-th score the lowest
        corpus positions (as `stores.top_k_indices` cuts): the engine is asked for a few more, and for
        more again while the tie reaches the end of what it gave."""
        out: list[Hits] = [[] for _ in range(n)]
        todo, limit = list(range(n)), k + TIE_MARGIN
        while todo and k > 0:
            left = []
            for i, hits in zip(todo, fetch(todo, limit), strict=True):
                if len(hits) == limit and hits[-1][1] == hits[k - 1][1]:
                    left.append(i)
                else:
                    out[i] = sorted(hits, key=lambda h: (-h[1], self.order[h[0]]))[:k]
            todo, limit = left, limit * DEEPEN
        return out

    def _fused(self, qids, texts, vectors, k, genre, theme) -> Run:
        spec = self.spec
        alphas = query_alphas(spec.kind, qids, spec.alpha, texts=texts, alphas=spec.alphas, bounds=spec.bounds)
        run: Run = {}
        todo = list(range(len(qids)))
        one_round = spec.fuses_candidates  # the system is the union's best: no proof, no deepening
        depth = spec.depth if one_round else max(spec.depth, k)  # the union at its depth whatever k
        rows = self.local.bm25_rows(list(texts)) if self.local is not None else None
        bounds: dict[int, tuple[Bounds, Bounds]] = {}  # the whole corpus's bounds: asked once, not per round
        while todo:
            known = [bounds.get(i) for i in todo]
            if rows is None:
                cands = self.candidates([texts[i] for i in todo], vectors[todo], depth, genre, theme, known)
            else:
                cands = self.candidates_local(vectors[todo], rows[todo], depth, genre, theme, known)
            left = []
            last = depth >= self.max_depth
            for i, c in zip(todo, cands, strict=True):
                bounds[i] = (c.dense_bounds, c.bm25_bounds)
                if one_round:
                    run[qids[i]] = c.fuse(alphas[qids[i]], k, proven=False)
                    continue
                got = c.fuse(alphas[qids[i]], k)
                if got is None and last:  # as deep as allowed: the union's best, unproven
                    got = c.fuse(alphas[qids[i]], k, proven=False)
                    self.unproven += 1
                if got is None:  # the bound failed: ask for more candidates (never once the union is everything)
                    left.append(i)
                else:
                    run[qids[i]] = got
            todo, depth = left, min(depth * DEEPEN, self.max_depth)
        return {q: run[q] for q in qids}

    def candidates(
        self,
        texts: Sequence[str],
        vectors: np.ndarray,
        depth: int,
        genre: str | None,
        theme: str | None,
        known: Sequence[tuple[Bounds, Bounds] | None] | None = None,
    ) -> list[Candidates]:
        """Each query's `Candidates` at `depth`, from two batches: (1) both lists (a few beyond `depth`,
        to cut ties as `_top_k` does) and, unless `known` has them, the whole corpus's (dense, BM25)
        bounds: the top-1 of each side and of the negated dense query; (2) each member's score on the side
        that did not list it."""
        index, n = self.index, len(texts)
        known = known or [None] * n
        filtered = genre is not None or theme is not None
        limit = depth + TIE_MARGIN
        asks: list[Ask] = []
        for v, text, have in zip(vectors, texts, known, strict=True):
            asks += [Ask(DENSE, v, limit, genre, theme), Ask(SPARSE, text, limit, genre, theme)]
            if have is None:
                asks += [Ask(DENSE, -v, 1, ef=RANGE_EF)]
                if filtered:
                    asks += [Ask(DENSE, v, 1), Ask(SPARSE, text, 1)]
        got = iter(index.batch(asks))
        dense, bm25, ranges = [], [], []
        for i in range(n):
            d, b = next(got), next(got)
            dense.append(
                self._cut(d, depth, limit, lambda v=vectors[i]: self.dense(v[None, :], depth, genre, theme)[0])
            )
            bm25.append(self._cut(b, depth, limit, lambda t=texts[i]: self.bm25([t], depth, genre, theme)[0]))
            if known[i] is not None:
                ranges.append(known[i])
                continue
            neg = next(got)
            d_top, b_top = (next(got), next(got)) if filtered else (d, b)
            d_hi = d_top[0][1] if d_top else 0.0
            d_lo = -neg[0][1] if neg else 0.0
            b_hi = b_top[0][1] if b_top else 0.0
            ranges.append((Bounds(d_lo, d_hi), Bounds(index.bm25_lowest(texts[i]) if b_top else 0.0, b_hi)))
        extra = []
        for v, text, d, b in zip(vectors, texts, dense, bm25, strict=True):
            extra += [
                Ask(DENSE, v, 0, ids=tuple(p for p in b if p not in d)),
                Ask(SPARSE, text, 0, ids=tuple(p for p in d if p not in b)),
            ]
        scored = index.batch(extra)
        out = []
        for i, (d, b, bounds) in enumerate(zip(dense, bm25, ranges, strict=True)):
            de, be = dict(scored[2 * i]), dict(scored[2 * i + 1])
            dense_of = {**de, **d}
            bm25_of = {p: be.get(p, 0.0) for p in d} | b
            # a dense list shorter than `depth` holds every allowed prompt: the union is everything
            out.append(candidates_from_lists(d, b, dense_of, bm25_of, self.order, bounds, depth))
        return out

    def candidates_local(
        self,
        vectors: np.ndarray,
        rows: np.ndarray,
        depth: int,
        genre: str | None,
        theme: str | None,
        known: Sequence[tuple[Bounds, Bounds] | None] | None = None,
    ) -> list[Candidates]:
        """`candidates` with the dense side from the engine (its list at `depth` and, unless `known` has
        them, the bounds: one batch) and the BM25 side from full BM25 rows in process (`LocalScores`):
        BM25's list, bounds and every member's BM25 score exact, a BM25-only member's cosine from the
        embedding matrix."""
        local, filtered = self.local, genre is not None or theme is not None
        known = known or [None] * len(vectors)
        mask = local.mask(genre, theme)
        allowed = np.flatnonzero(mask) if mask is not None else None
        limit = depth + TIE_MARGIN
        asks: list[Ask] = []
        for v, have in zip(vectors, known, strict=True):
            asks += [Ask(DENSE, v, limit, genre, theme)]
            if have is None:
                asks += [Ask(DENSE, -v, 1, ef=RANGE_EF)] + ([Ask(DENSE, v, 1)] if filtered else [])
        got = iter(self.index.batch(asks))
        out = []
        for i, (v, row) in enumerate(zip(vectors, rows, strict=True)):
            d_hits = next(got)
            d = self._cut(d_hits, depth, limit, lambda v=v: self.dense(v[None, :], depth, genre, theme)[0])
            d = {p: s for p, s in d.items() if self.order[p] < len(row)}  # not added live after this state
            b_pos = top_positions(row, depth, allowed, positive=True)
            b = {local.ids[j]: float(row[j]) for j in b_pos}
            only_b = [j for j in b_pos if local.ids[j] not in d]
            cos = local.embeddings[only_b] @ v if only_b else np.zeros(0, dtype=np.float32)
            dense_of = {local.ids[j]: float(c) for j, c in zip(only_b, cos, strict=True)} | d
            bm25_of = {p: float(row[self.order[p]]) for p in d} | b
            bounds = known[i]
            if bounds is None:
                neg = next(got)
                d_top = next(got) if filtered else d_hits
                bounds = (Bounds(-neg[0][1] if neg else 0.0, d_top[0][1] if d_top else 0.0), Bounds.of(row))
            out.append(candidates_from_lists(d, b, dense_of, bm25_of, self.order, bounds, depth))
        return out

    def _cut(self, hits: Hits, k: int, limit: int, again: Callable[[], Hits]) -> dict[str, float]:
        """The best `k` of `limit` hits, ties at the cut by corpus position; `again` when a tie reaches
        past the end of what the engine gave."""
        if len(hits) == limit and len(hits) > k and hits[-1][1] == hits[k - 1][1]:
            return dict(again())
        return dict(sorted(hits, key=lambda h: (-h[1], self.order[h[0]]))[:k])


def _as_run(qids: Sequence[str], lists: Sequence[Hits]) -> Run:
    return {q: dict(hits) for q, hits in zip(qids, lists, strict=True)}
