"""What a search asks and gets (`SearchRequest`, `Hit`), and how a batch of requests is answered: grouped
by (k, genre, theme), each group one run of the system, in process over full score matrices
(`exact_hits`, the functions evaluation uses) or from an engine index (`engine_hits`).

>>> SearchRequest("haunted lighthouse", k=3, genre="Horror")
SearchRequest(query='haunted lighthouse', k=3, genre='Horror', theme=None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..corpus import Prompt, check_query
from .engine import EngineSearch
from .runs import Run, filter_mask, rank
from .systems import SystemSpec, system_run

Groups = dict[tuple[int, str | None, str | None], list[int]]


@dataclass(frozen=True)
class Hit:
    prompt: Prompt
    score: float
    rank: int

    def to_dict(self) -> dict:
        return {"rank": self.rank, "score": round(self.score, 6), **self.prompt.to_dict()}


@dataclass(frozen=True)
class SearchRequest:
    """One query with its own k and filters (see `PromptRetriever.search_requests`)."""

    query: str
    k: int = 5
    genre: str | None = None
    theme: str | None = None

    def __post_init__(self) -> None:
        check_query(self.query)  # refused here, before it joins a batch of others' requests (see search_requests)


def grouped(requests: Sequence[SearchRequest]) -> Groups:
    """Request positions by (k, genre, theme): each group is searched as one batch."""
    groups: Groups = {}
    for i, r in enumerate(requests):
        groups.setdefault((r.k, r.genre, r.theme), []).append(i)
    return groups


def hits_of(run_scores: Mapping[str, float], by_id: Mapping[str, Prompt]) -> list[Hit]:
    """A query's run as hits, ranked as `runs.rank` ranks (a prompt `by_id` does not hold is left out:
    one a live update added after this state was taken)."""
    found = [pid for pid in rank(run_scores) if pid in by_id]
    return [Hit(by_id[pid], run_scores[pid], r) for r, pid in enumerate(found, 1)]


def exact_hits(
    spec: SystemSpec,
    prompts: Sequence[Prompt],
    by_id: Mapping[str, Prompt],
    requests: Sequence[SearchRequest],
    dense: np.ndarray | None,
    bm25: np.ndarray,
) -> list[list[Hit]]:
    """BM25 and the hybrids from full score matrices (requests x prompts): per group, the run of
    `systems.system_run`, the function evaluation uses (the weighted hybrids fuse as `spec.fusion` says)."""
    texts = [r.query for r in requests]
    ids = [p.id for p in prompts]
    genres, themes = [p.genre for p in prompts], [p.theme for p in prompts]
    out: list[list[Hit]] = [[] for _ in requests]
    for (k, genre, theme), idx in grouped(requests).items():
        qids = [str(i) for i in idx]
        run: Run = system_run(
            spec.kind,
            qids,
            ids,
            None if dense is None else dense[idx],
            bm25[idx],
            k,
            alpha=spec.alpha,
            k_rrf=spec.k_rrf,
            depth=spec.depth,
            mask=filter_mask(genres, themes, genre, theme),
            texts=[texts[i] for i in idx],
            alphas=spec.alphas,
            bounds=spec.bounds,
            fusion=spec.fusion,
        )
        for i, qid in zip(idx, qids, strict=True):
            out[i] = hits_of(run[qid], by_id)
    return out


def engine_hits(
    search: EngineSearch,
    by_id: Mapping[str, Prompt],
    requests: Sequence[SearchRequest],
    vectors: np.ndarray | None,
) -> list[list[Hit]]:
    """Every system through an engine index (`engine.EngineSearch`), per group."""
    texts = [r.query for r in requests]
    out: list[list[Hit]] = [[] for _ in requests]
    for (k, genre, theme), idx in grouped(requests).items():
        qids = [str(i) for i in idx]
        qv = None if vectors is None else vectors[idx]
        run = search.run(qids, [texts[i] for i in idx], qv, k, genre, theme)
        for i, qid in zip(idx, qids, strict=True):
            out[i] = hits_of(run[qid], by_id)
    return out
