"""What every engine index shares, whatever engine holds its points: Qdrant Edge in the process
(`edge.EdgeIndex`) or a Qdrant server or cluster through `qdrant-client` (`qdrant_index.QdrantIndex`).

- the collection layout: a named dense vector `DENSE` (cosine), a named sparse vector `SPARSE` (BM25
  document vectors, `bm25_terms`, no modifier: idf is applied on the query side), one point per prompt
  (id `stores.point_id`) with payload `point_payload` (`prompt_id`, `genre`, `theme`, `bm25_len`);
- `HnswParams` (the graph's parameters and the search beam) and `Ask` (one search of a mixed batch);
- `EngineIndexBase`: the BM25 bookkeeping both keep outside the engine (`BM25Terms`): checking and
  counting an upsert, taking replaced or removed prompts out of the statistics, reweighting, and the
  whole corpus's lowest BM25 score (`bm25_lowest`). A subclass talks to its engine; this class never does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..corpus import Prompt
from ..encoding.encoder import prompt_document
from ..errors import InputError
from .bm25_terms import BM25Terms, SparsePair, tokenize
from .filters import filter_key

DENSE = "dense"
SPARSE = "bm25"
Candidates = list[tuple[str, float]]


@dataclass(frozen=True)
class HnswParams:
    """HNSW graph parameters (`m`, `ef_construct`) and the search-time `ef`; chosen by measured recall on
    real embeddings (benchmarks/bench_engine.py, docs/engines.md)."""

    m: int = 32
    ef_construct: int = 256
    ef: int = 512
    full_scan_threshold: int = 10_000  # KB of vectors below which a segment is searched exactly
    indexing_threshold_kb: int | None = None  # KB of vectors from which a segment gets a graph (None: Qdrant's)


@dataclass(frozen=True)
class Ask:
    """One search of a heterogeneous batch (`EdgeIndex.batch`): `side` dense (`query` a vector) or bm25
    (`query` a text); the best `limit` among the prompts `genre`/`theme` allow, or, with `ids`, the scores
    of exactly those prompts (exact). `ef`: the HNSW beam for a dense search (default the index's)."""

    side: str
    query: object
    limit: int
    genre: str | None = None
    theme: str | None = None
    ids: tuple[str, ...] | None = None
    ef: int | None = None


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the engine index ({e})") from e


def point_payload(prompt: Prompt, length: int) -> dict:
    """A prompt's payload: its id, its filter keys (as `filter_key` compares them) and its BM25 length."""
    return {
        "prompt_id": prompt.id,
        "genre": filter_key(prompt.genre),
        "theme": filter_key(prompt.theme),
        "bm25_len": length,
    }


class EngineIndexBase:
    """The engine-agnostic half of an engine index: `terms` (BM25 statistics), `template`, `dim`,
    `max_drift`; a subclass provides `_forget`, `reweight` and `bm25_candidates` against its engine."""

    terms: BM25Terms
    template: str
    dim: int
    max_drift: float
    upserted: int = 0  # prompts upserted through this object (a retriever's copies share it: `upserted`)

    def __len__(self) -> int:
        return self.terms.n_docs

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _forget(self, prompt_ids: Sequence[str]) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def reweight(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def bm25_candidates(self, query_texts, depth, genre=None, theme=None) -> list[Candidates]:  # pragma: no cover
        raise NotImplementedError

    # -- updates -----------------------------------------------------------------------------------
    def _prepare_upsert(
        self, prompts: Sequence[Prompt], embeddings: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[SparsePair, int]]]:
        """Check an upsert, take the prompts it replaces out of the statistics and count the new ones in;
        returns the float32 vectors and each prompt's (BM25 document vector, length)."""
        vectors = np.asarray(embeddings, dtype=np.float32)
        if len(prompts) != len(vectors) or (len(vectors) and vectors.shape[1] != self.dim):
            raise InputError(f"{len(prompts)} prompts, embeddings {vectors.shape}: dimension {self.dim} expected")
        if len({p.id for p in prompts}) != len(prompts):
            raise InputError("duplicate prompt ids in one upsert")
        self._forget([p.id for p in prompts])
        self.upserted += len(prompts)
        docs = self.terms.add(tokenize([prompt_document(p, self.template) for p in prompts]))
        return vectors, docs

    def _forget_records(self, records: Iterable[tuple[str, Sequence[int], int]]) -> list[str]:
        """Take stored prompts, each (prompt id, its BM25 term ids, its length), out of the statistics."""
        gone = []
        for prompt_id, term_ids, length in records:
            self.terms.remove(list(term_ids), int(length))
            gone.append(prompt_id)
        return gone

    def _maybe_reweight(self) -> None:
        if self.terms.n_docs and self.terms.drift > self.max_drift:
            self.reweight()

    def _reweighted(self, records: Sequence[tuple[object, Sequence[int], Sequence[float], int]]) -> list[tuple]:
        """Every stored document vector, (point id, term ids, weights, length), rewritten with the live
        avgdl: tf recovered from the weights, then `avgdl_ref` moved to the live avgdl. Returns
        (point id, term ids, new weights)."""
        recovered = [
            (pid, list(ids), self.terms.recover_tf(values, length), length) for pid, ids, values, length in records
        ]
        self.terms.avgdl_ref = self.terms.avgdl
        out = []
        for pid, ids, tf, length in recovered:
            k = self.terms._k(length, self.terms.avgdl_ref)
            out.append((pid, ids, [t / (t + k) for t in tf]))
        return out

    def _check_queries(self, query_vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(query_vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InputError(f"query vectors {vectors.shape}: (n, {self.dim}) expected")
        return vectors

    # -- whole-corpus bounds -----------------------------------------------------------------------
    def bm25_lowest(self, text: str, *, exhaustive_up_to: int = 5_000) -> float:
        """The lowest BM25 score of `text` over every prompt: 0 whenever some prompt shares no term with it
        (certain when the terms' document frequencies sum to less than N; otherwise every match is listed
        when N <= `exhaustive_up_to`, and 0 is assumed above that: approximate)."""
        ids, _ = self.terms.query_vector(text)
        n = self.terms.n_docs
        if not ids or sum(self.terms.df[i] for i in ids) < n or n > exhaustive_up_to:
            return 0.0
        every = self.bm25_candidates([text], n)[0]
        return min(s for _, s in every) if len(every) >= n else 0.0
