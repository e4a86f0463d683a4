"""`PromptRetriever`: a dense index over prompts with filters, add/remove and save/load."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .._version import __version__
from ..corpus import Prompt
from ..encoding.encoder import DEFAULT_TEMPLATE, Encoder, prompt_document
from ..encoding.models import DEFAULT_MODEL
from ..errors import IndexLoadError, InputError, MissingError
from ..fileio import atomic_save_npy, atomic_write_json, atomic_write_jsonl, sha256_bytes, sha256_file
from .stores import ExactStore, VectorStore

INDEX_FORMAT = 1


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


class PromptRetriever:
    """Exact cosine search over L2-normalised prompt embeddings.

    >>> r = PromptRetriever()            # bundled all-MiniLM-L6-v2
    >>> r.index(load_corpus())           # doctest: +SKIP
    >>> r.search("haunted lighthouse", k=5, genre="Horror")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        template: str = DEFAULT_TEMPLATE,
        batch_size: int = 32,
        use_cache: bool = True,
        show_progress: bool = False,
        allow_download: bool | None = None,
        store: VectorStore | None = None,
        backend: str = "torch",
    ):
        """`store`: where vectors are searched; default an in-process `ExactStore`, or e.g. a `QdrantStore`.
        `backend`: torch, onnx or onnx-int8 inference (see `Encoder`)."""
        self.store: VectorStore = store if store is not None else ExactStore()
        self.encoder = Encoder(
            model,
            batch_size=batch_size,
            use_cache=use_cache,
            show_progress=show_progress,
            allow_download=allow_download,
            backend=backend,
        )
        self.template = template
        self.prompts: list[Prompt] = []
        self.embeddings = np.zeros((0, 0), dtype=np.float32)
        self._by_id: dict[str, Prompt] = {}

    # ------------------------------------------------------------------ building
    @property
    def model_name(self) -> str:
        return self.encoder.model_name

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    def __len__(self) -> int:
        return len(self.prompts)

    def _embed(self, prompts: Sequence[Prompt]) -> np.ndarray:
        return self.encoder.encode_documents([prompt_document(p, self.template) for p in prompts])

    def index(self, prompts: Iterable[Prompt]) -> PromptRetriever:
        """Replace the index with `prompts`."""
        prompts = list(prompts)
        ids = [p.id for p in prompts]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InputError(f"duplicate prompt id {dup!r}")
        self.store.delete([p.id for p in self.prompts])
        self.prompts = prompts
        self.embeddings = self._embed(prompts) if prompts else np.zeros((0, self.encoder.dimension), np.float32)
        self._sync(prompts, self.embeddings)
        return self

    def use_encoder(self, encoder: Encoder) -> PromptRetriever:
        """Encode with `encoder` from now on (e.g. another inference backend); the indexed prompts are
        re-encoded with it, so documents and queries always come from the same encoder."""
        self.encoder = encoder
        return self.index(self.prompts)

    def attach_store(self, store: VectorStore) -> PromptRetriever:
        """Search in `store` from now on (e.g. a `QdrantStore`); the indexed vectors are written into it."""
        self.store = store
        self._sync(self.prompts, self.embeddings)
        return self

    def _sync(self, prompts: Sequence[Prompt], vectors: np.ndarray) -> None:
        """Tell the store about new vectors and refresh the id lookup."""
        self._by_id = {p.id: p for p in self.prompts}
        if prompts:
            payloads = [{"genre": p.genre, "theme": p.theme} for p in prompts]
            self.store.upsert([p.id for p in prompts], vectors, payloads)

    def add(self, prompts: Iterable[Prompt]) -> None:
        """Add prompts; an id already in the index is replaced."""
        prompts = list(prompts)
        if not prompts:
            return
        self.remove([p.id for p in prompts], missing_ok=True)
        new = self._embed(prompts)
        self.embeddings = new if len(self.prompts) == 0 else np.vstack([self.embeddings, new])
        self.prompts.extend(prompts)
        self._sync(prompts, new)

    def remove(self, ids: Iterable[str], *, missing_ok: bool = False) -> int:
        drop = set(ids)
        if not missing_ok and (unknown := drop - set(self._by_id)):
            raise MissingError(f"unknown prompt id(s): {sorted(unknown)[:5]}")
        keep = [i for i, p in enumerate(self.prompts) if p.id not in drop]
        removed = len(self.prompts) - len(keep)
        if removed:
            self.store.delete([p.id for p in self.prompts if p.id in drop])
            self.prompts = [self.prompts[i] for i in keep]
            self.embeddings = self.embeddings[keep] if len(keep) else self.embeddings[:0]
            self._by_id = {p.id: p for p in self.prompts}
        return removed

    def get(self, prompt_id: str) -> Prompt | None:
        return self._by_id.get(prompt_id)

    # ------------------------------------------------------------------ searching
    def search(self, query: str, k: int = 5, genre: str | None = None, theme: str | None = None) -> list[Hit]:
        return self.search_many([query], k=k, genre=genre, theme=theme)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 5, genre: str | None = None, theme: str | None = None
    ) -> list[list[Hit]]:
        if k < 1:
            raise InputError("k must be at least 1")
        if not self.prompts:
            return [[] for _ in queries]
        return self.search_vectors(self.encoder.encode_queries(list(queries)), k=k, genre=genre, theme=theme)

    def search_requests(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Answer many independent searches at once: one encode call for all queries, and one store
        search per distinct (k, genre, theme), so a server under load does one matrix product per batch
        instead of one per request."""
        if any(r.k < 1 for r in requests):
            raise InputError("k must be at least 1")
        if not requests:
            return []
        vectors = self.encoder.encode_queries([r.query for r in requests])
        groups: dict[tuple[int, str | None, str | None], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.k, r.genre, r.theme), []).append(i)
        out: list[list[Hit]] = [[] for _ in requests]
        for (k, genre, theme), idx in groups.items():
            for i, hits in zip(idx, self.search_vectors(vectors[idx], k, genre, theme), strict=True):
                out[i] = hits
        return out

    def search_vectors(
        self, qv: np.ndarray, k: int = 5, genre: str | None = None, theme: str | None = None
    ) -> list[list[Hit]]:
        """Search with query embeddings that are already computed (e.g. encoded in a batch by a server)."""
        if k < 1:
            raise InputError("k must be at least 1")
        if not self.prompts:
            return [[] for _ in range(len(qv))]
        found = self.store.search_many(qv, k, genre, theme)
        return [[Hit(self._by_id[pid], score, r) for r, (pid, score) in enumerate(row, 1)] for row in found]

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write `embeddings.npy`, `prompts.jsonl` and (last) `manifest.json` with checksums."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(d / "embeddings.npy", self.embeddings)
        atomic_write_jsonl(d / "prompts.jsonl", [p.to_dict() for p in self.prompts])
        manifest = {
            "format": INDEX_FORMAT,
            "model": self.model_name,
            "fingerprint": self.fingerprint,
            "backend": self.encoder.backend,
            "dimension": int(self.embeddings.shape[1]) if self.embeddings.ndim == 2 else 0,
            "count": len(self.prompts),
            "template": self.template,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "prompt_retriever_version": __version__,
            "checksums": {
                "embeddings.npy": sha256_file(d / "embeddings.npy"),
                "prompts.jsonl": sha256_file(d / "prompts.jsonl"),
            },
        }
        atomic_write_json(d / "manifest.json", manifest)
        return d

    @staticmethod
    def read_manifest(directory: str | Path) -> dict:
        path = Path(directory) / "manifest.json"
        if not path.exists():
            raise IndexLoadError(f"{directory}: not an index folder (no manifest.json)")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexLoadError(f"{path}: corrupt manifest ({exc})") from exc

    @classmethod
    def load(cls, directory: str | Path, model: str | None = None, **kwargs) -> PromptRetriever:
        """Load an index (with the inference backend it was built with). With `model`, refuse an index
        built with different weights."""
        d = Path(directory)
        manifest = cls.read_manifest(d)
        # Read each file once and check that very content: a writer replacing files between a check and a
        # read cannot slip mismatched data past the checksums.
        blobs: dict[str, bytes] = {}
        for name in ("embeddings.npy", "prompts.jsonl"):
            digest = manifest.get("checksums", {}).get(name)
            try:
                blobs[name] = (d / name).read_bytes()
            except OSError as exc:
                raise IndexLoadError(f"{d}: missing or unreadable {name}") from exc
            if digest is None or sha256_bytes(blobs[name]) != digest:
                raise IndexLoadError(f"{d / name}: checksum mismatch (file corrupt or modified)")
        retriever = cls(
            model or manifest["model"],
            template=manifest.get("template", DEFAULT_TEMPLATE),
            backend=manifest.get("backend", "torch"),
            **kwargs,
        )
        if retriever.fingerprint != manifest["fingerprint"]:
            raise IndexLoadError(
                f"{d}: index was built with model {manifest['model']} ({manifest['fingerprint']}), "
                f"not {retriever.model_name} ({retriever.fingerprint}); rebuild it with this model"
            )
        try:
            text = blobs["prompts.jsonl"].decode("utf-8")
            prompts = [Prompt.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]
            embeddings = np.load(io.BytesIO(blobs["embeddings.npy"]), allow_pickle=False).astype(np.float32, copy=False)
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise IndexLoadError(f"{d}: unreadable index data ({exc})") from exc
        if len(prompts) != manifest["count"] or embeddings.shape[0] != manifest["count"]:
            raise IndexLoadError(f"{d}: manifest count {manifest['count']} does not match the data")
        retriever.prompts, retriever.embeddings = prompts, embeddings
        retriever._sync(prompts, embeddings)
        return retriever
