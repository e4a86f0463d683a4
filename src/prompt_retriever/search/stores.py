"""Vector stores behind one small protocol: upsert, delete, search (one query or many) with genre/theme
filters.

- `ExactStore` (default): in-process numpy float32 matrix, exact cosine (dot product of L2-normalised
  vectors), ties broken by insertion order. What `PromptRetriever` uses unless told otherwise.
- `QdrantStore`: the same protocol over `qdrant-client`: embedded (`path=` folder or `":memory:"`,
  exact search) for tests and single machines, or a Qdrant server / cluster by `url=` (API key from
  `QDRANT_API_KEY`) for corpora that outgrow one process.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from .filters import filter_key
from .qdrant_connection import connect, server_url
from .rows import Spare, append_rows, take_rows


@runtime_checkable
class VectorStore(Protocol):
    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def search(
        self, vector: np.ndarray, k: int, genre: str | None = None, theme: str | None = None
    ) -> list[tuple[str, float]]: ...

    def search_many(
        self, vectors: np.ndarray, k: int, genre: str | None = None, theme: str | None = None
    ) -> list[list[tuple[str, float]]]:
        """`search` for each row of `vectors` (one matrix product in the exact store)."""
        ...

    def __len__(self) -> int: ...


class ExactStore:
    """Exact search over a float32 matrix; filters by case-insensitive genre/theme (vectorised masks)."""

    def __init__(self, dim: int | None = None):
        self.ids: list[str] = []
        self.vectors = np.zeros((0, dim or 0), dtype=np.float32)
        self._codes: dict[str, int] = {"": 0}
        self._genre = np.zeros(0, dtype=np.int32)
        self._theme = np.zeros(0, dtype=np.int32)
        self._pos: dict[str, int] = {}
        self._spare: Spare | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def copy(self) -> ExactStore:
        """A copy to change while this one is searched: its own ids and lookups; the arrays are shared, as
        every change replaces them (or appends past the end of every view handed out)."""
        new = ExactStore.__new__(ExactStore)
        new.__dict__.update(self.__dict__)
        new.ids, new._pos, new._codes = list(self.ids), dict(self._pos), dict(self._codes)
        return new

    def _code(self, value: str | None) -> int:
        return self._codes.setdefault(filter_key(value) or "", len(self._codes))

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(ids) != len(vectors) or len(ids) != len(payloads):
            raise InputError("ids, vectors and payloads differ in length")
        existing = [i for i in ids if i in self._pos]
        if existing:
            self.delete(existing)
        if len(self.ids) and vectors.shape[1] != self.vectors.shape[1]:
            raise InputError(f"vector dimension {vectors.shape[1]} != store dimension {self.vectors.shape[1]}")
        if self.ids:  # into spare rows when there are (`rows`): a live add does not copy every vector
            self.vectors, self._spare = append_rows(self.vectors, vectors, self._spare)
        else:
            self.vectors, self._spare = vectors.copy(), None
        genres = np.array([self._code(pl.get("genre")) for pl in payloads], dtype=np.int32)
        themes = np.array([self._code(pl.get("theme")) for pl in payloads], dtype=np.int32)
        self._genre = np.concatenate([self._genre, genres])
        self._theme = np.concatenate([self._theme, themes])
        for i in ids:
            self._pos[i] = len(self.ids)
            self.ids.append(i)

    def delete(self, ids: Sequence[str]) -> None:
        drop = set(ids)
        keep = np.array([n for n, i in enumerate(self.ids) if i not in drop], dtype=np.int64)
        self.ids = [self.ids[n] for n in keep]
        self.vectors, self._spare = take_rows(self.vectors, keep)
        self._genre, self._theme = self._genre[keep], self._theme[keep]
        self._pos = {i: n for n, i in enumerate(self.ids)}

    def mask(self, genre: str | None, theme: str | None) -> np.ndarray | None:
        g, t = filter_key(genre), filter_key(theme)
        if g is None and t is None:
            return None
        m = np.ones(len(self.ids), dtype=bool)
        for value, codes in ((g, self._genre), (t, self._theme)):
            if value is not None:
                m &= codes == self._codes.get(value, -1)
        return m

    def search_many(
        self, vectors: np.ndarray, k: int, genre: str | None = None, theme: str | None = None
    ) -> list[list[tuple[str, float]]]:
        if not self.ids:
            return [[] for _ in range(len(vectors))]
        m = self.mask(genre, theme)
        rows = np.flatnonzero(m) if m is not None else None
        matrix = self.vectors if rows is None else self.vectors[rows]
        if matrix.shape[0] == 0:
            return [[] for _ in range(len(vectors))]
        scores = np.asarray(vectors, dtype=np.float32) @ matrix.T
        out = []
        for row in scores:
            top = top_k_indices(row, k)
            ids = top if rows is None else rows[top]
            out.append([(self.ids[i], float(row[j])) for i, j in zip(ids, top, strict=True)])
        return out

    def search(
        self, vector: np.ndarray, k: int, genre: str | None = None, theme: str | None = None
    ) -> list[tuple[str, float]]:
        return self.search_many(np.asarray(vector, dtype=np.float32)[None, :], k, genre, theme)[0]


_NAMESPACE = uuid.UUID("6f1c7a52-3b8e-4d0a-9c1e-2b7d5e8f9a10")


def point_id(prompt_id: str) -> str:
    """Qdrant point ids are UUIDs or integers: a stable UUID per prompt id."""
    return str(uuid.uuid5(_NAMESPACE, prompt_id))


class QdrantStore:
    """`VectorStore` over Qdrant. Embedded: `QdrantStore(dim, path=":memory:")` or a folder; a server or
    cluster: `QdrantStore(dim, url="http://host:6333")` with `QDRANT_API_KEY` in the environment."""

    def __init__(
        self,
        dim: int,
        *,
        path: str | None = ":memory:",
        url: str | None = None,
        collection: str = "prompts",
        exact: bool = True,
        api_key: str | None = None,
    ):
        from qdrant_client import models

        self._models = models
        self.client = connect(server_url(url) if url else path or ":memory:", api_key=api_key)
        self.collection = collection
        self.exact = exact
        if not self.client.collection_exists(collection):
            self.client.create_collection(
                collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
            )
            if url:  # payload indexes speed up filtered search on a server; local mode ignores them
                for field in ("genre", "theme"):
                    self.client.create_payload_index(collection, field, models.PayloadSchemaType.KEYWORD)
        self._remote = bool(url)

    def __len__(self) -> int:
        return self.client.count(self.collection, exact=True).count

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict], batch: int = 512) -> None:
        m = self._models
        vectors = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(ids), batch):
            points = [
                m.PointStruct(
                    id=point_id(i),
                    vector=v.tolist(),
                    payload={
                        "prompt_id": i,
                        "genre": filter_key(pl.get("genre")),
                        "theme": filter_key(pl.get("theme")),
                    },
                )
                for i, v, pl in zip(
                    ids[start : start + batch],
                    vectors[start : start + batch],
                    payloads[start : start + batch],
                    strict=True,
                )
            ]
            self.client.upsert(self.collection, points=points, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(
                self.collection, points_selector=self._models.PointIdsList(points=[point_id(i) for i in ids]), wait=True
            )

    def search(
        self, vector: np.ndarray, k: int, genre: str | None = None, theme: str | None = None
    ) -> list[tuple[str, float]]:
        m = self._models
        must = [
            m.FieldCondition(key=f, match=m.MatchValue(value=v))
            for f, v in (("genre", filter_key(genre)), ("theme", filter_key(theme)))
            if v
        ]
        res = self.client.query_points(
            self.collection,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            limit=k,
            query_filter=m.Filter(must=must) if must else None,
            with_payload=True,
            search_params=m.SearchParams(exact=self.exact) if self._remote else None,
        )
        return [(p.payload["prompt_id"], float(p.score)) for p in res.points]

    def search_many(
        self, vectors: np.ndarray, k: int, genre: str | None = None, theme: str | None = None
    ) -> list[list[tuple[str, float]]]:
        return [self.search(v, k, genre, theme) for v in vectors]


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; ties broken by lower index, at the cut too (of several
    equal scores at the k-th place, the lowest indices make it), so any engine can reproduce the pick."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
        part = np.flatnonzero(scores >= kth)  # the best k and every score tied with the k-th
    else:
        part = np.arange(n)
    order = np.lexsort((part, -scores[part]))[:k]
    return part[order]
