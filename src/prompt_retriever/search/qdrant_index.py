"""`QdrantIndex`: the engine index of `edge.EdgeIndex` on a Qdrant server or cluster, through `qdrant-client`
(the `serve` extra). Same collection layout, same answers, same interface (what `engine.EngineSearch` and
`PromptRetriever` call: `dense_candidates`, `bm25_candidates`, `batch`, `bm25_lowest`, `upsert`, `delete`,
`reweight`, `persist`, `close`, `len`, `max_drift`, `source`, `folder`, `terms`, `template`).

One point per prompt (id `stores.point_id(prompt id)`) in `collection` with
- `dense`: the embedding, cosine, HNSW `m`/`ef_construct` from `HnswParams` (searched with `hnsw_ef =
  max(ef, depth)`);
- `bm25`: the BM25 document vector of `bm25_terms`, a sparse vector WITHOUT modifier: idf is applied on
  the query side from the statistics kept here, so a score is `BM25System`'s (the server's IDF modifier,
  like the Edge engine's, would count deleted points until a segment is vacuumed);
- payload `prompt_id`, `genre`, `theme` (keyword payload indexes: filters run in the server) and `bm25_len`.

The points live on the server; the BM25 statistics (`bm25.json`, `BM25Terms`) and `qdrant.json` (where:
`url`, `collection`; what: `dim`, `hnsw`, `template`, `source`) live in a local `folder`, written by
`persist` atomically. `open` checks that the collection still holds as many points as the statistics
count (a collection changed by anyone else is refused: rebuild it). The API key is `QDRANT_API_KEY`
(`settings.qdrant_api_key`) unless one is given; it is never written to the folder.

`location` is a `QdrantClient`, a server's URL (`http://host:6333`), or, for qdrant-client's local mode
(pure Python, exact search, what the tests use), `":memory:"` or a folder.

Example:
    >>> index = QdrantIndex.build("runs/x/index-qdrant", prompts, embeddings,
    ...                           location="http://localhost:6333", collection="prompts")
    >>> index.dense_candidates(query_vectors, depth=100, genre="horror")  # per query: [(prompt id, cosine)]
    >>> index.bm25_candidates(["lighthouse keeper"], depth=100)          # per query: [(prompt id, BM25)]
    >>> index.close()
    >>> index = QdrantIndex.open("runs/x/index-qdrant")                  # reconnects to the recorded url
"""

from __future__ import annotations

import time
import warnings
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
from .qdrant_connection import client_for, is_local
from .stores import point_id

FORMAT = 1
META = "qdrant.json"
STATS = "bm25.json"
REQUESTS_PER_CALL = 256  # queries sent in one `query_batch_points` call
IDS_PER_CALL = 1024  # points read or deleted in one call


def _models():
    from qdrant_client import models

    return models


class QdrantIndex(EngineIndexBase):
    """Dense and BM25 candidate lists from a Qdrant collection; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        client,
        collection: str,
        dim: int,
        hnsw: HnswParams,
        terms: BM25Terms,
        template: str,
        source: dict | None = None,
        *,
        url: str | None = None,
        owns_client: bool = False,
    ):
        self.folder, self.client, self.collection = folder, client, collection
        self.dim, self.hnsw, self.terms, self.template = dim, hnsw, terms, template
        self.url = url  # where the collection lives (recorded in qdrant.json; None: a client we cannot name)
        self.source: dict = dict(source or {})  # what the points were made from (corpus, model fingerprints)
        self.max_drift = 0.0  # as `EdgeIndex.max_drift`
        self._owns_client = owns_client
        self._closed = False

    @property
    def local(self) -> bool:
        """Whether the collection is in qdrant-client's local mode (pure Python, exact search), not a server."""
        return is_local(self.url)

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | Path,
        dim: int,
        *,
        location,
        collection: str = "prompts",
        hnsw: HnswParams | None = None,
        template: str = DEFAULT_TEMPLATE,
        api_key: str | None = None,
    ) -> QdrantIndex:
        """A new, empty collection `collection` at `location` (which must not hold one by that name),
        its statistics in `folder` (which must not hold an index)."""
        m = _models()
        folder = Path(folder)
        hnsw = hnsw or HnswParams()
        if (folder / META).exists() or (folder / STATS).exists():
            raise InputError(f"{folder} already holds an engine index: open it, or remove it first")
        client, owns, url = client_for(location, api_key)
        try:
            if client.collection_exists(collection):
                raise InputError(
                    f"collection {collection!r} already exists at {url or 'the server'}: open its index, "
                    "build with replace=True, or choose another collection"
                )
            client.create_collection(
                collection,
                vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams()},
                hnsw_config=m.HnswConfigDiff(
                    m=hnsw.m, ef_construct=hnsw.ef_construct, full_scan_threshold=hnsw.full_scan_threshold
                ),
                optimizers_config=None
                if hnsw.indexing_threshold_kb is None
                else m.OptimizersConfigDiff(indexing_threshold=hnsw.indexing_threshold_kb),
            )
            with warnings.catch_warnings():  # local mode says its payload indexes change nothing: known
                warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
                for field in ("genre", "theme"):
                    client.create_payload_index(collection, field, m.PayloadSchemaType.KEYWORD, wait=True)
        except BaseException:
            if owns:
                client.close()
            raise
        folder.mkdir(parents=True, exist_ok=True)
        index = cls(folder, client, collection, dim, hnsw, BM25Terms(), template, url=url, owns_client=owns)
        index.persist()
        return index

    @classmethod
    def open(cls, folder: str | Path, *, location=None, api_key: str | None = None) -> QdrantIndex:
        """The index `persist` left in `folder`, on the collection it names, at `location` (a client, needed
        for `":memory:"` or a local-mode folder another client holds; or a URL or folder), by default the
        url it recorded."""
        folder = Path(folder)
        meta = read_json(folder / META)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InputError(f"{folder}/{META}: not a Qdrant engine index of format {FORMAT}")
        terms = BM25Terms.from_dict(read_json(folder / STATS))
        if location is None:
            location = meta.get("url")
            if not location or location == ":memory:":
                raise InputError(f"{folder}: its collection is in memory or at an unknown place: pass its client")
        client, owns, url = client_for(location, api_key)
        collection, dim = meta["collection"], int(meta["dim"])
        try:
            if not client.collection_exists(collection):
                raise InputError(f"{folder}: collection {collection!r} is not at {url}: rebuild the index")
            vectors = client.get_collection(collection).config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
            points = client.count(collection, exact=True).count
            if size != dim or points != terms.n_docs:
                raise InputError(
                    f"{folder}: collection {collection!r} holds {points} points of dimension {size}, the index "
                    f"{terms.n_docs} of dimension {dim}: it was changed elsewhere, rebuild the index"
                )
        except BaseException:
            if owns:
                client.close()
            raise
        url = url or meta.get("url")
        source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
        hnsw = HnswParams(**meta["hnsw"])
        return cls(folder, client, collection, dim, hnsw, terms, meta["template"], source, url=url, owns_client=owns)

    @classmethod
    def build(
        cls,
        folder: str | Path,
        prompts: Sequence[Prompt],
        embeddings: np.ndarray,
        *,
        location,
        collection: str = "prompts",
        hnsw: HnswParams | None = None,
        template: str = DEFAULT_TEMPLATE,
        replace: bool = False,
        api_key: str | None = None,
    ) -> QdrantIndex:
        """Create (with `replace`: drop the collection and the folder's index first), fill with `prompts`
        (rows of `embeddings`), wait for the server's indexing and persist."""
        folder = Path(folder)
        client, owns, _ = client_for(location, api_key)
        if replace:
            for name in (META, STATS):
                (folder / name).unlink(missing_ok=True)
            if client.collection_exists(collection):
                client.delete_collection(collection)
        dim = int(np.asarray(embeddings).shape[1])
        try:
            index = cls.create(folder, dim, location=client, collection=collection, hnsw=hnsw, template=template)
        except BaseException:
            if owns:
                client.close()
            raise
        index._owns_client = owns
        if owns and isinstance(location, str | Path):
            index.url = str(location)
        index.upsert(prompts, embeddings)
        index.optimize()
        index.persist()
        return index

    def persist(self) -> None:
        """Write the statistics and parameters (atomically); the points are the server's (every write
        waits for it)."""
        atomic_write_json(self.folder / STATS, self.terms.to_dict())
        meta = {
            "format": FORMAT,
            "url": self.url,
            "collection": self.collection,
            "dim": self.dim,
            "hnsw": asdict(self.hnsw),
            "template": self.template,
            "source": self.source,
        }
        atomic_write_json(self.folder / META, meta)

    def optimize(self, timeout_s: float = 600.0) -> None:
        """Wait until the server has indexed the collection (status green; local mode is at once)."""
        m = _models()
        deadline = time.monotonic() + timeout_s
        while self.client.get_collection(self.collection).status != m.CollectionStatus.GREEN:
            if time.monotonic() > deadline:
                raise InputError(f"collection {self.collection!r}: still indexing after {timeout_s:.0f} s")
            time.sleep(0.2)

    def close(self) -> None:
        if self._closed:
            return
        self.persist()
        if self._owns_client:
            self.client.close()
        self._closed = True

    # -- updates -----------------------------------------------------------------------------------
    def upsert(self, prompts: Sequence[Prompt], embeddings: np.ndarray, batch: int = 512) -> None:
        """Add prompts, or replace those whose id is already in the index."""
        m = _models()
        vectors, docs = self._prepare_upsert(prompts, embeddings)
        for start in range(0, len(prompts), batch):
            points = [
                m.PointStruct(
                    id=point_id(p.id),
                    vector={DENSE: v.tolist(), SPARSE: m.SparseVector(indices=ids, values=values)},
                    payload=point_payload(p, length),
                )
                for p, v, ((ids, values), length) in zip(
                    prompts[start : start + batch],
                    vectors[start : start + batch],
                    docs[start : start + batch],
                    strict=True,
                )
            ]
            self.client.upsert(self.collection, points=points, wait=True)
        self._maybe_reweight()

    def delete(self, prompt_ids: Sequence[str]) -> int:
        """Remove prompts by id (unknown ids are ignored); returns how many were removed."""
        removed = self._forget(prompt_ids)
        for start in range(0, len(removed), IDS_PER_CALL):
            chunk = [point_id(i) for i in removed[start : start + IDS_PER_CALL]]
            self.client.delete(self.collection, points_selector=_models().PointIdsList(points=chunk), wait=True)
        if removed:
            self._maybe_reweight()
        return len(removed)

    def _forget(self, prompt_ids: Sequence[str]) -> list[str]:
        """Take the stored prompts among `prompt_ids` out of the BM25 statistics; returns their ids."""
        if not prompt_ids or not self.terms.n_docs:
            return []
        records = []
        unique = list(dict.fromkeys(prompt_ids))
        for start in range(0, len(unique), IDS_PER_CALL):
            got = self.client.retrieve(
                self.collection,
                ids=[point_id(i) for i in unique[start : start + IDS_PER_CALL]],
                with_payload=["prompt_id", "bm25_len"],
                with_vectors=[SPARSE],
            )
            for rec in got:
                sparse = (rec.vector or {}).get(SPARSE) if isinstance(rec.vector, dict) else None
                records.append(
                    (rec.payload["prompt_id"], list(sparse.indices) if sparse else [], rec.payload["bm25_len"])
                )
        return self._forget_records(records)

    def reweight(self, batch: int = 2048) -> None:
        """Rewrite every document's BM25 vector with the live avgdl (tf recovered from the stored weights),
        so scores equal a fresh `BM25System` again."""
        m = _models()
        records, offset = [], None
        while True:
            page, offset = self.client.scroll(
                self.collection, limit=batch, offset=offset, with_payload=["bm25_len"], with_vectors=[SPARSE]
            )
            for rec in page:
                sparse = (rec.vector or {}).get(SPARSE) if isinstance(rec.vector, dict) else None
                length = int(rec.payload["bm25_len"])
                records.append(
                    (rec.id, list(sparse.indices) if sparse else [], sparse.values if sparse else [], length)
                )
            if offset is None:
                break
        updates = [
            m.PointVectors(id=pid, vector={SPARSE: m.SparseVector(indices=ids, values=values)})
            for pid, ids, values in self._reweighted(records)
        ]
        for start in range(0, len(updates), batch):
            self.client.update_vectors(self.collection, points=updates[start : start + batch], wait=True)

    # -- candidates --------------------------------------------------------------------------------
    def _filter(self, genre: str | None, theme: str | None):
        m = _models()
        must = [
            m.FieldCondition(key=field, match=m.MatchValue(value=value))
            for field, value in (("genre", filter_key(genre)), ("theme", filter_key(theme)))
            if value is not None
        ]
        return m.Filter(must=must) if must else None

    def _ids_filter(self, prompt_ids: Sequence[str]):
        m = _models()
        return m.Filter(must=[m.HasIdCondition(has_id=[point_id(i) for i in dict.fromkeys(prompt_ids)])])

    def _dense_query(self, vector, limit: int, flt, ef: int | None, exact: bool):
        m = _models()
        return m.QueryRequest(
            query=np.asarray(vector, dtype=np.float32).tolist(),
            using=DENSE,
            limit=limit,
            filter=flt,
            # local mode searches exactly and warns that search params mean nothing to it
            params=None if self.local else m.SearchParams(hnsw_ef=max(ef or self.hnsw.ef, limit), exact=exact),
            with_payload=["prompt_id"],
        )

    def _bm25_query(self, text: str, limit: int, flt):
        """The request for `text`'s BM25 search, None when it has no known term (no prompt matches)."""
        m = _models()
        ids, values = self.terms.query_vector(text)
        if not ids:
            return None
        return m.QueryRequest(
            query=m.SparseVector(indices=ids, values=values),
            using=SPARSE,
            limit=limit,
            filter=flt,
            with_payload=["prompt_id"],
        )

    def _send(self, requests: list, n: int) -> list[Candidates]:
        """`requests` (None: nothing to ask, an empty answer), in calls of `REQUESTS_PER_CALL`, answers in order."""
        out: list[Candidates] = [[] for _ in range(n)]
        slots = [i for i, r in enumerate(requests) if r is not None]
        for start in range(0, len(slots), REQUESTS_PER_CALL):
            part = slots[start : start + REQUESTS_PER_CALL]
            answers = self.client.query_batch_points(self.collection, requests=[requests[i] for i in part])
            for i, answer in zip(part, answers, strict=True):
                out[i] = [(p.payload["prompt_id"], float(p.score)) for p in answer.points]
        return out

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
        vectors = self._check_queries(query_vectors)
        if depth <= 0:
            return [[] for _ in vectors]
        flt = self._filter(genre, theme)
        return self._send([self._dense_query(v, depth, flt, None, exact) for v in vectors], len(vectors))

    def bm25_candidates(
        self, query_texts: Sequence[str], depth: int, genre: str | None = None, theme: str | None = None
    ) -> list[Candidates]:
        """Per query: the `depth` best prompts by BM25 (only prompts sharing a term, score > 0), best first."""
        if depth <= 0:
            return [[] for _ in query_texts]
        flt = self._filter(genre, theme)
        return self._send([self._bm25_query(t, depth, flt) for t in query_texts], len(query_texts))

    def batch(self, asks: Sequence[Ask]) -> list[Candidates]:
        """Many searches of either side in `query_batch_points` calls, answers in order."""
        requests = []
        for ask in asks:
            if ask.limit <= 0 if ask.ids is None else not ask.ids:
                requests.append(None)
                continue
            flt = self._ids_filter(ask.ids) if ask.ids is not None else self._filter(ask.genre, ask.theme)
            limit = len(ask.ids) if ask.ids is not None else ask.limit
            if ask.side == DENSE:
                requests.append(self._dense_query(ask.query, limit, flt, ask.ef, exact=ask.ids is not None))
            else:
                requests.append(self._bm25_query(str(ask.query), limit, flt))
        return self._send(requests, len(asks))
