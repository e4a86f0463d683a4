"""`EdgeIndex`: dense and BM25 candidates from a Qdrant Edge shard (`qdrant-edge-py`, the Qdrant engine
embedded in the process) kept in a folder.

One point per prompt (id: `stores.point_id(prompt id)`, the ids `QdrantStore` uses) with
- `dense`: the prompt's embedding, cosine, in an HNSW graph (`HnswParams`; below Qdrant's indexing
  threshold a segment is searched exactly);
- `bm25`: the prompt's BM25 document vector (`bm25_terms`), the same tokens and Lucene BM25 as
  `BM25System`, so a sparse dot product with `BM25Terms.query_vector` is `BM25System`'s score;
- payload `prompt_id`, `genre`, `theme` (as `filter_key` compares them, with keyword payload indexes) and
  `bm25_len` (the document's token count), so genre/theme filters run in the engine.

Folder layout: `shard/` (the Edge shard, the Qdrant server's segment format), `bm25.json` (vocabulary and
collection statistics, `BM25Terms`), `edge.json` (dimension, HNSW parameters). `persist` flushes the
shard and then writes the JSON files atomically; `EdgeIndex.open` loads them back. `upsert` and `delete`
do not persist: the shard's write-ahead log keeps its points, but `bm25.json` is only as new as the last
`persist` (or `close`), so a caller persists after each batch of updates.

BM25 under updates: `upsert` and `delete` update N, df and avgdl exactly (`BM25Terms`); idf is applied on
the query side, so it is exact at once. Document vectors carry tf saturation computed with the avgdl of
the last (re)weighting; when the live avgdl has moved further than `max_drift` (relative) from it,
`upsert`/`delete` rewrite every document vector (`reweight`). With `max_drift=0` scores always equal a
fresh `BM25System` over the live prompts; otherwise they differ by a relative d / (1 - d) at most,
d = `BM25Terms.drift`.

Example:
    >>> index = EdgeIndex.create("idx", dim=384)
    >>> index.upsert(prompts, embeddings)
    >>> index.optimize()                      # builds the HNSW graph
    >>> index.dense_candidates(query_vectors, depth=100, genre="horror")  # per query: [(prompt id, cosine)]
    >>> index.bm25_candidates(["lighthouse keeper"], depth=100)          # per query: [(prompt id, BM25)]
    >>> index.persist()                       # after updates: flush the shard, write the BM25 statistics
    >>> index.close()
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..corpus import Prompt
from ..encoding.encoder import DEFAULT_TEMPLATE
from ..errors import InputError
from ..fileio import atomic_write_json
from .bm25_terms import BM25Terms
from .engine_base import DENSE, SPARSE, Ask, Candidates, EngineIndexBase, HnswParams, point_payload, read_json
from .filters import filter_key
from .stores import point_id

__all__ = ["DENSE", "FORMAT", "SPARSE", "Ask", "Candidates", "EdgeIndex", "HnswParams"]

FORMAT = 1
_read_json = read_json


def _qe():
    import qdrant_edge

    return qdrant_edge


class EdgeIndex(EngineIndexBase):
    """Dense and BM25 candidate lists from one Qdrant Edge shard; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        shard,
        dim: int,
        hnsw: HnswParams,
        terms: BM25Terms,
        template: str,
        source: dict | None = None,
    ):
        self.folder, self.shard, self.dim, self.hnsw = folder, shard, dim, hnsw
        self.terms, self.template = terms, template
        # what the points were made from (e.g. corpus and model fingerprints), kept in edge.json by `persist`
        # so an owner can tell a stale index from a current one
        self.source: dict = dict(source or {})
        # relative avgdl drift tolerated before `upsert`/`delete` reweight every document vector (0: always,
        # so BM25 scores always equal a fresh BM25System; larger values trade that for cheaper updates)
        self.max_drift = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, folder: str | Path, dim: int, *, hnsw: HnswParams | None = None, template: str = DEFAULT_TEMPLATE
    ) -> EdgeIndex:
        """A new, empty index in `folder` (which must not hold one)."""
        qe = _qe()
        folder = Path(folder)
        hnsw = hnsw or HnswParams()
        if (folder / "edge.json").exists() or (folder / "shard").exists():
            raise InputError(f"{folder} already holds an engine index: open it, or remove it first")
        folder.mkdir(parents=True, exist_ok=True)
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams()},
            hnsw_config=qe.HnswIndexConfig(
                m=hnsw.m, ef_construct=hnsw.ef_construct, full_scan_threshold=hnsw.full_scan_threshold
            ),
            optimizers=None
            if hnsw.indexing_threshold_kb is None
            else qe.EdgeOptimizersConfig(indexing_threshold=hnsw.indexing_threshold_kb),
        )
        shard = qe.EdgeShard.create(str(folder / "shard"), config)
        for field in ("genre", "theme"):
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        index = cls(folder, shard, dim, hnsw, BM25Terms(), template)
        index.persist()
        return index

    @classmethod
    def open(cls, folder: str | Path) -> EdgeIndex:
        """The index `persist` left in `folder`."""
        folder = Path(folder)
        meta = _read_json(folder / "edge.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InputError(f"{folder}/edge.json: not an engine index of format {FORMAT}")
        terms = BM25Terms.from_dict(_read_json(folder / "bm25.json"))
        shard = _qe().EdgeShard.load(str(folder / "shard"))
        source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
        return cls(folder, shard, int(meta["dim"]), HnswParams(**meta["hnsw"]), terms, meta["template"], source)

    @classmethod
    def build(
        cls,
        folder: str | Path,
        prompts: Sequence[Prompt],
        embeddings: np.ndarray,
        *,
        hnsw: HnswParams | None = None,
        template: str = DEFAULT_TEMPLATE,
        replace: bool = False,
    ) -> EdgeIndex:
        """Create, fill with `prompts` (rows of `embeddings`), build the HNSW graph and persist."""
        folder = Path(folder)
        if replace:
            for name in ("shard", "edge.json", "bm25.json"):
                target = folder / name
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        index = cls.create(folder, int(np.asarray(embeddings).shape[1]), hnsw=hnsw, template=template)
        index.upsert(prompts, embeddings)
        index.optimize()
        index.persist()
        return index

    def persist(self) -> None:
        """Flush the shard, then write the statistics and parameters (atomically)."""
        self.shard.flush()
        atomic_write_json(self.folder / "bm25.json", self.terms.to_dict())
        meta = {
            "format": FORMAT,
            "dim": self.dim,
            "hnsw": asdict(self.hnsw),
            "template": self.template,
            "source": self.source,
        }
        atomic_write_json(self.folder / "edge.json", meta)

    def optimize(self) -> None:
        """Merge segments and build the HNSW graph (blocks until done)."""
        self.shard.optimize()

    def close(self) -> None:
        self.persist()
        self.shard.close()

    # -- updates -----------------------------------------------------------------------------------
    def upsert(self, prompts: Sequence[Prompt], embeddings: np.ndarray, batch: int = 1024) -> None:
        """Add prompts, or replace those whose id is already in the index."""
        qe = _qe()
        vectors, docs = self._prepare_upsert(prompts, embeddings)
        for start in range(0, len(prompts), batch):
            points = [
                qe.Point(
                    id=point_id(p.id),
                    vector={DENSE: v.tolist(), SPARSE: qe.SparseVector(ids, values)},
                    payload=point_payload(p, length),
                )
                for p, v, ((ids, values), length) in zip(
                    prompts[start : start + batch],
                    vectors[start : start + batch],
                    docs[start : start + batch],
                    strict=True,
                )
            ]
            self.shard.update(qe.UpdateOperation.upsert_points(points))
        self._maybe_reweight()

    def delete(self, prompt_ids: Sequence[str]) -> int:
        """Remove prompts by id (unknown ids are ignored); returns how many were removed."""
        removed = self._forget(prompt_ids)
        if removed:
            self.shard.update(_qe().UpdateOperation.delete_points([point_id(i) for i in removed]))
            self._maybe_reweight()
        return len(removed)

    def _forget(self, prompt_ids: Sequence[str]) -> list[str]:
        """Take the stored prompts among `prompt_ids` out of the BM25 statistics; returns their ids."""
        if not prompt_ids or not self.terms.n_docs:
            return []
        records = []
        for rec in self.shard.retrieve([point_id(i) for i in prompt_ids], ["prompt_id", "bm25_len"], [SPARSE]):
            sparse = rec.vector[SPARSE] if rec.vector and SPARSE in rec.vector else None
            records.append((rec.payload["prompt_id"], list(sparse.indices) if sparse else [], rec.payload["bm25_len"]))
        return self._forget_records(records)

    def reweight(self, batch: int = 2048) -> None:
        """Rewrite every document's BM25 vector with the live avgdl (tf recovered from the stored weights),
        so scores equal a fresh `BM25System` again."""
        qe = _qe()
        records, offset = [], None
        while True:
            page, offset = self.shard.scroll(
                qe.ScrollRequest(offset=offset, limit=batch, with_payload=["bm25_len"], with_vector=[SPARSE])
            )
            for rec in page:
                sparse = rec.vector.get(SPARSE) if rec.vector else None
                length = int(rec.payload["bm25_len"])
                records.append(
                    (rec.id, list(sparse.indices) if sparse else [], sparse.values if sparse else [], length)
                )
            if offset is None:
                break
        updates = [
            qe.PointVectors(id=pid, vector={SPARSE: qe.SparseVector(ids, values)})
            for pid, ids, values in self._reweighted(records)
        ]
        for start in range(0, len(updates), batch):
            self.shard.update(qe.UpdateOperation.update_vectors(updates[start : start + batch]))

    # -- candidates --------------------------------------------------------------------------------
    def _filter(self, genre: str | None, theme: str | None):
        qe = _qe()
        must = [
            qe.FieldCondition(key=field, match=qe.MatchValue(value))
            for field, value in (("genre", filter_key(genre)), ("theme", filter_key(theme)))
            if value is not None
        ]
        return qe.Filter(must=must) if must else None

    def _run(self, queries: list, depth: int, genre: str | None, theme: str | None, params) -> list[Candidates]:
        qe = _qe()
        flt = self._filter(genre, theme)
        out: list[Candidates | None] = [None] * len(queries)
        requests, slots = [], []
        for n, query in enumerate(queries):
            if query is None:
                out[n] = []
            else:
                requests.append(
                    qe.QueryRequest(limit=depth, query=query, filter=flt, with_payload=["prompt_id"], params=params)
                )
                slots.append(n)
        if requests and depth > 0:
            for n, points in zip(slots, self.shard.query_batch(qe.QueryBatchRequest(requests)), strict=True):
                out[n] = [(p.payload["prompt_id"], float(p.score)) for p in points]
        return [o or [] for o in out]

    def dense_candidates(
        self,
        query_vectors: np.ndarray,
        depth: int,
        genre: str | None = None,
        theme: str | None = None,
        *,
        exact: bool = False,
    ) -> list[Candidates]:
        """Per query row: the `depth` nearest prompts by cosine, best first, as (prompt id, score)."""
        qe = _qe()
        vectors = self._check_queries(query_vectors)
        params = qe.SearchParams(hnsw_ef=max(self.hnsw.ef, depth), exact=exact)
        queries = [qe.Query.Nearest(v.tolist(), using=DENSE) for v in vectors]
        return self._run(queries, depth, genre, theme, params)

    def bm25_candidates(
        self, query_texts: Sequence[str], depth: int, genre: str | None = None, theme: str | None = None
    ) -> list[Candidates]:
        """Per query: the `depth` best prompts by BM25 (only prompts sharing a term, score > 0), best first."""
        qe = _qe()
        queries = []
        for text in query_texts:
            ids, values = self.terms.query_vector(text)
            queries.append(qe.Query.Nearest(qe.SparseVector(ids, values), using=SPARSE) if ids else None)
        return self._run(queries, depth, genre, theme, None)

    # -- exact scores and whole-corpus bounds (what candidate fusion needs, `search.engine`) -------------
    def _ids_filter(self, prompt_ids: Sequence[str]):
        qe = _qe()
        return qe.Filter(must=[qe.HasIdCondition({point_id(i) for i in prompt_ids})])

    def batch(self, asks: Sequence[Ask]) -> list[Candidates]:
        """Many searches of either side in one call to the engine, answers in order."""
        qe = _qe()
        requests, slots = [], []
        out: list[Candidates] = [[] for _ in asks]
        for n, ask in enumerate(asks):
            if ask.side == DENSE:
                vec = np.asarray(ask.query, dtype=np.float32)
                query = qe.Query.Nearest(vec.tolist(), using=DENSE)
                params = qe.SearchParams(hnsw_ef=max(ask.ef or self.hnsw.ef, ask.limit), exact=ask.ids is not None)
            else:
                ids, values = self.terms.query_vector(str(ask.query))
                query = qe.Query.Nearest(qe.SparseVector(ids, values), using=SPARSE) if ids else None
                params = None
            if query is None or (ask.limit <= 0 if ask.ids is None else not ask.ids):
                continue
            flt = self._ids_filter(ask.ids) if ask.ids is not None else self._filter(ask.genre, ask.theme)
            limit = len(ask.ids) if ask.ids is not None else ask.limit
            requests.append(
                qe.QueryRequest(limit=limit, query=query, filter=flt, with_payload=["prompt_id"], params=params)
            )
            slots.append(n)
        if requests:
            for n, points in zip(slots, self.shard.query_batch(qe.QueryBatchRequest(requests)), strict=True):
                out[n] = [(p.payload["prompt_id"], float(p.score)) for p in points]
        return out
