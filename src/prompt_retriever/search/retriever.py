"""`PromptRetriever`: an index over prompts (dense, BM25 or a hybrid of the two) with filters,
add/remove and search. Saving and loading (an index folder, a pipeline run's system) are
`RetrieverFiles`'s (`retriever_files`, over `persistence` and `deployment`), which it inherits; their
public names stay importable from here."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..corpus import Prompt, check_query, corpus_fingerprint
from ..encoding.encoder import DEFAULT_TEMPLATE, Encoder, check_template, prompt_document
from ..encoding.models import DEFAULT_MODEL
from ..errors import IndexLoadError, InputError, MissingError
from .answering import Hit, SearchRequest, engine_hits, exact_hits
from .deployment import (
    SYSTEM_FILE,
    SYSTEM_FORMAT,
    read_system,
    system_info_problem,
)
from .edge import EdgeIndex
from .engine import EngineSearch, Positions
from .engine_open import engine_dir, open_engine, resolve_engine
from .filters import FilterNames, filter_key
from .live import Drift
from .persistence import INDEX_FORMAT
from .retriever_files import RetrieverFiles
from .rows import append_rows, take_rows
from .spec import WEIGHTED_KINDS
from .stores import ExactStore, VectorStore
from .systems import BM25System, SystemSpec, system_label

__all__ = [
    "INDEX_FORMAT",
    "SYSTEM_FILE",
    "SYSTEM_FORMAT",
    "Hit",
    "IndexLoadError",
    "PromptRetriever",
    "SearchRequest",
    "read_system",
    "system_info_problem",
    "system_label",
]


class PromptRetriever(RetrieverFiles):
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
        system: SystemSpec | str | None = None,
    ):
        """`store`: where vectors are searched; default an in-process `ExactStore`, or e.g. a `QdrantStore`.
        `backend`: torch, onnx or onnx-int8 inference (see `Encoder`). `system`: what answers, `dense`
        (default), `bm25`, `hybrid`, `hybrid-rrf` or `hybrid-adaptive` (a kind or a `SystemSpec` with fusion
        parameters); BM25 and the hybrids score every prompt exactly as the evaluation does (`search.systems`)."""
        self.system = SystemSpec(system) if isinstance(system, str) else (system or SystemSpec())
        check_template(template)
        self.store: VectorStore = store if store is not None else ExactStore()
        self._bm25: BM25System | None = None
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
        self.run_info: dict | None = None  # system.json of the run this was loaded from (`from_run`)
        self.engine: EdgeIndex | None = None  # with an engine index, every search is the engine's (`use_engine`)

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
        engine, self.engine = self.engine, None
        self.prompts = prompts
        self.embeddings = self._embed(prompts) if prompts else np.zeros((0, self.encoder.dimension), np.float32)
        self._sync(prompts, self.embeddings)
        if engine is not None:  # the engine index follows: reopened, or rebuilt from the new vectors
            name, folder, location = self._engine_args
            self.use_engine(name, folder, location=location)
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

    def use_engine(
        self, engine: str = "edge", folder: str | Path | None = None, *, location=None, announce=None
    ) -> PromptRetriever:
        """Search with `engine` from now on (`search.engine`): `edge` (a Qdrant Edge index in `folder`),
        `qdrant` (a collection on the Qdrant server or cluster at `location`, a URL, with its BM25
        statistics in `folder`), `exact` (in process) or `auto` (by collection size and system). `folder`
        defaults to one beside the index folder this was loaded from, else a temporary folder. The engine
        index is opened when it was built from these prompts and this model, else built from the stored
        embeddings (no re-encoding)."""
        engine = resolve_engine(engine, len(self.prompts), self.system.kind, self.system.fusion)
        if engine == "exact":
            if self.engine is not None:
                self.engine = None
                self._sync(self.prompts, self.embeddings)
            return self
        if folder is None:
            source = self.__dict__.get("source")
            if source is not None:
                folder = engine_dir(source, engine)
            else:
                import tempfile

                self._engine_tmp = tempfile.TemporaryDirectory(prefix=f"prompt-retriever-{engine}-")
                folder = self._engine_tmp.name
        self.engine = open_engine(
            engine,
            folder,
            self.prompts,
            self.embeddings,
            template=self.template,
            source=self._engine_source(),
            location=location,
            announce=announce,
        )
        self._engine_args = (engine, folder, location)
        self._engine_seen = self.engine.upserted
        self.store, self._bm25 = ExactStore(), None  # the engine answers every search: free their memory
        self.__dict__.pop("_order", None)
        return self

    def _engine_source(self) -> dict:
        return {
            "corpus_fingerprint": corpus_fingerprint(self.prompts),
            "model_fingerprint": self.fingerprint,
            "backend": self.encoder.backend,
            "template": self.template,
        }

    def _sync(
        self, prompts: Sequence[Prompt], vectors: np.ndarray, *, bm25: str = "eager", appended: bool = False
    ) -> None:
        """Tell the store (or the engine) about new vectors and refresh the id lookup (`appended`: `prompts`
        were appended to a lookup that holds the others); the BM25 index is rebuilt now (`bm25` "eager"), at
        its first use ("lazy"), or was changed in step by the caller ("kept")."""
        if appended:
            self._by_id.update((p.id, p) for p in prompts)
            self.__dict__.pop("_filter_names", None)
        else:
            self._by_id = {p.id: p for p in self.prompts}
        self.__dict__.pop("_order", None)
        if bm25 != "kept":
            self._bm25 = None
        if self.engine is not None:
            return
        if bm25 == "eager" and self.system.uses_bm25:
            self._bm25 = BM25System(self.prompts, template=self.template)
        if prompts:
            payloads = [{"genre": p.genre, "theme": p.theme} for p in prompts]
            self.store.upsert([p.id for p in prompts], vectors, payloads)

    def add(self, prompts: Iterable[Prompt]) -> None:
        """Add prompts; an id already in the index is replaced (an update). Each change is noted in
        `drift`. An id given twice is an InputError."""
        prompts = list(prompts)
        if not prompts:
            return
        ids = [p.id for p in prompts]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InputError(f"duplicate prompt id {dup!r}: given twice")
        since = self._drift_base()
        for p in prompts:
            self.drift.note_put(self._by_id.get(p.id), p, since=since)
        new = self._embed(prompts)
        self._drop(set(ids), tell_engine=False)
        if self.engine is not None:
            self.engine.upsert(prompts, new)  # BM25 statistics updated, not rebuilt (`bm25_terms`)
            self._engine_seen = self.engine.upserted
        if len(self.prompts) == 0:
            self.embeddings, self._spare = new, None
        else:  # into spare rows when there are (`rows`): amortised O(added), not a copy of every row
            self.embeddings, self._spare = append_rows(self.embeddings, new, self.__dict__.get("_spare"))
        self.prompts.extend(prompts)
        if self._bm25 is not None:
            self._bm25.add(prompts)  # the new prompts only: nothing indexed is tokenized again
        self._sync(prompts, new, bm25="kept" if self._bm25 is not None else "eager", appended=True)

    def remove(self, ids: Iterable[str], *, missing_ok: bool = False) -> int:
        """Remove prompts by id (each noted in `drift`); MissingError for an unknown id unless `missing_ok`."""
        drop = set(ids)
        if not missing_ok and (unknown := drop - set(self._by_id)):
            raise MissingError(f"unknown prompt id(s): {', '.join(repr(i) for i in sorted(unknown)[:5])}")
        since = self._drift_base() if drop & set(self._by_id) else None
        for pid in sorted(drop & set(self._by_id)):
            self.drift.note_remove(self._by_id[pid], since=since)
        return self._drop(drop)

    @property
    def drift(self) -> Drift:
        """Prompts added, updated and removed since the index was built (for a run: since its system was
        chosen), saved with the index (`search.live`)."""
        drift = self.__dict__.get("_drift")
        if drift is None:
            drift = self._drift = Drift()
        return drift

    def _drift_base(self) -> str | None:
        """The corpus fingerprint drift counts from: known once a change was noted, else the current one."""
        return self.drift.since or corpus_fingerprint(self.prompts)

    def copy(self) -> PromptRetriever:
        """A copy to change while this one keeps answering searches (a server's live update): its own
        prompt list, store, drift and BM25 index (a copy that shares what changes never write into); the
        encoder and the embedding matrix are shared (changes replace them, or append past the end of every
        matrix handed out: `rows`). Needs the in-process `ExactStore`."""
        if not isinstance(self.store, ExactStore):
            raise InputError("live updates while serving need the in-process vector store, not a Qdrant store")
        new = copy.copy(self)
        new.__dict__.pop("_filter_names", None)
        new.prompts = list(self.prompts)
        new._by_id = dict(self._by_id)
        new._drift = copy.deepcopy(self.drift)
        new.store = self.store.copy()  # copy-on-write: its arrays are replaced on change, never written into
        new._bm25 = self._bm25.copy() if self._bm25 is not None else None
        return new

    def _drop(self, drop: set[str], *, tell_engine: bool = True) -> int:
        """Take out the prompts of `drop` (from the BM25 index too: no re-indexing); the engine is told
        unless `tell_engine` is off (the caller upserts those ids at once)."""
        if not any(i in self._by_id for i in drop):  # nothing to take out: no pass over every prompt
            return 0
        keep: list[int] = []
        gone: list[int] = []
        for i, p in enumerate(self.prompts):  # one pass: the positions kept and those taken out
            (gone if p.id in drop else keep).append(i)
        gone_ids = [self.prompts[i].id for i in gone]
        self.store.delete(gone_ids)
        if self.engine is not None and tell_engine:
            self.engine.delete(gone_ids)
        self.prompts = [self.prompts[i] for i in keep]
        self.embeddings, self._spare = take_rows(self.embeddings, keep)
        self._by_id = {p.id: p for p in self.prompts}
        self.__dict__.pop("_order", None)
        if self._bm25 is not None:
            self._bm25.remove(gone)
        return len(gone)

    def get(self, prompt_id: str) -> Prompt | None:
        return self._by_id.get(prompt_id)

    # ------------------------------------------------------------------ searching
    def search(self, query: str, k: int = 5, genre: str | None = None, theme: str | None = None) -> list[Hit]:
        """The `k` best prompts for `query`, optionally of one genre and/or theme (case-insensitive; blank
        means no filter). `InputError` for a query without a visible character (`corpus.query_problem`, the
        rule of the CLI and the API too) and for a genre or theme no indexed prompt has."""
        return self.search_many([query], k=k, genre=genre, theme=theme)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 5, genre: str | None = None, theme: str | None = None
    ) -> list[list[Hit]]:
        if k < 1:
            raise InputError("k must be at least 1")
        for q in queries:
            check_query(q)
        if not self.prompts:
            return [[] for _ in queries]
        self.check_filters(genre, theme)
        if self.system.kind != "dense" or self.engine is not None:
            return self.search_requests([SearchRequest(q, k, genre, theme) for q in queries])
        return self.search_vectors(self.encoder.encode_queries(list(queries)), k=k, genre=genre, theme=theme)

    def search_requests(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Answer many independent searches at once: one encode call for all queries, and one store
        search per distinct (k, genre, theme), so a server under load does one matrix product per batch
        instead of one per request."""
        if any(r.k < 1 for r in requests):
            raise InputError("k must be at least 1")
        for r in requests:
            check_query(r.query)
        if not requests:
            return []
        if not self.prompts:
            return [[] for _ in requests]
        for genre, theme in {(r.genre, r.theme) for r in requests}:
            self.check_filters(genre, theme)
        if self.engine is not None:
            return self._search_engine(requests)
        if self.system.kind != "dense":
            return self._search_fused(requests)
        vectors = self.encoder.encode_queries([r.query for r in requests])
        groups: dict[tuple[int, str | None, str | None], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.k, r.genre, r.theme), []).append(i)
        out: list[list[Hit]] = [[] for _ in requests]
        for (k, genre, theme), idx in groups.items():
            for i, hits in zip(idx, self.search_vectors(vectors[idx], k, genre, theme), strict=True):
                out[i] = hits
        return out

    @property
    def bm25(self) -> BM25System:
        """The BM25 index over the same document text (built at first use, then changed in step with the
        prompts: `add` and `remove` never re-index the rest)."""
        if self._bm25 is None:
            self._bm25 = BM25System(self.prompts, template=self.template)
        return self._bm25

    def _search_fused(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """BM25 and the hybrids in process, as evaluation computes them (`answering.exact_hits`)."""
        texts = [r.query for r in requests]
        dense = self.encoder.encode_queries(texts) @ self.embeddings.T if self.system.kind != "bm25" else None
        return exact_hits(self.system, self.prompts, self._by_id, requests, dense, self.bm25.scores(texts))

    def _search_engine(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Every system through the engine index (`answering.engine_hits`)."""
        texts = [r.query for r in requests]
        vectors = self.encoder.encode_queries(texts) if self.system.kind != "bm25" else None
        order = self.__dict__.get("_order")
        if order is None:
            order = self._order = Positions((p.id, i) for i, p in enumerate(self.prompts))
        search = EngineSearch(self.engine, self.system, order)
        # A copy of this retriever (a server's live update) may have added prompts to the engine both share
        # since this one last wrote to it: they are not this one's to answer, so ask for that many more
        # and keep the k best of its own, instead of answering fewer than k.
        extra = self.engine.upserted - self.__dict__.get("_engine_seen", self.engine.upserted)
        if extra <= 0:
            return engine_hits(search, self._by_id, requests, vectors)
        asked = [dataclasses.replace(r, k=r.k + extra) for r in requests]
        return [hits[: r.k] for hits, r in zip(engine_hits(search, self._by_id, asked, vectors), requests, strict=True)]

    def check_filters(self, genre: str | None, theme: str | None) -> None:
        """`InputError` for a genre or theme filter that no indexed prompt has (compared as `filter_key`
        compares: trimmed, case-insensitive; blank is no filter), as the CLI and the API refuse it, instead
        of answering every search with nothing."""
        if filter_key(genre) is None and filter_key(theme) is None:
            return
        cached = getattr(self, "_filter_names", None)
        if cached is None or cached[0] is not self._by_id:  # a new dict whenever the prompts change
            names = {what: FilterNames(getattr(p, what) for p in self.prompts) for what in ("genre", "theme")}
            cached = self._filter_names = (self._by_id, names)
        for what, value in (("genre", genre), ("theme", theme)):
            try:
                cached[1][what].canonical(value)
            except KeyError:
                known = cached[1][what].names
                shown = ", ".join(known[:30]) + (f" and {len(known) - 30} more" if len(known) > 30 else "")
                raise InputError(f"unknown {what} {value.strip()!r}; known: {shown}") from None

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

    # ------------------------------------------------------------------ what answers
    def describe(self) -> dict:
        """Which system answers: kind, model, backend, corpus, how a weighted hybrid fuses (`fusion`: over
        the whole corpus or each side's top `fusion_depth` candidates), and the numbers it was chosen on."""
        run = self.run_info or {}
        weighted = self.system.kind in WEIGHTED_KINDS
        return {
            "system": run.get("label") or system_label(self.system.kind, self.model_name),
            "kind": self.system.kind,
            "model": None if self.system.kind == "bm25" else run.get("model") or self.model_name,
            "backend": None if self.system.kind == "bm25" else self.encoder.backend,
            "prompts": len(self.prompts),
            "corpus_fingerprint": corpus_fingerprint(self.prompts),
            "dev_ndcg@10": run.get("dev_ndcg@10"),
            "test_ndcg@10": run.get("test_ndcg@10"),
            "drift": self.drift.counts(),
            "run": run_dir.resolve().name if (run_dir := self.__dict__.get("run_dir")) is not None else None,
            "engine": "exact" if self.engine is None else self._engine_args[0],
            "fusion": self.system.fusion if weighted else None,
            "fusion_depth": self.system.depth if weighted and self.system.fuses_candidates else None,
        }
