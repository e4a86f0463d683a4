"""`PromptRetriever`: an index over prompts (dense, BM25 or a hybrid of the two) with filters,
add/remove, save/load, and `from_run` to load the system a pipeline run chose."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath

import numpy as np

from .._version import __version__
from ..corpus import Prompt, check_query, corpus_fingerprint
from ..encoding.encoder import BACKENDS, DEFAULT_TEMPLATE, Encoder, backend_fingerprint, check_template, prompt_document
from ..encoding.models import (
    DEFAULT_MODEL,
    find_bundled,
    looks_like_path,
    model_fingerprint,
    resolve_model,
    weights_fingerprint,
)
from ..errors import IndexLoadError, InputError, MissingError
from ..fileio import atomic_save_npy, atomic_write_json, atomic_write_jsonl, read_regular, sha256_bytes, sha256_file
from .runs import filter_key, filter_mask, rank
from .stores import ExactStore, VectorStore
from .systems import BM25System, SystemSpec, system_problem, system_run

# 2: a local model folder is named relative to the index folder (1: relative to the current folder of the
# command that built it, so the index only worked from there).
INDEX_FORMAT = 2
SYSTEM_FORMAT = 1
SYSTEM_FILE = "system.json"


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
        system: SystemSpec | str | None = None,
    ):
        """`store`: where vectors are searched; default an in-process `ExactStore`, or e.g. a `QdrantStore`.
        `backend`: torch, onnx or onnx-int8 inference (see `Encoder`). `system`: what answers, `dense`
        (default), `bm25`, `hybrid` or `hybrid-rrf` (a kind or a `SystemSpec` with fusion parameters);
        BM25 and the hybrids score every prompt exactly as the evaluation does (`search.systems`)."""
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
        """Tell the store about new vectors and refresh the id lookup (and drop a stale BM25 index)."""
        self._by_id = {p.id: p for p in self.prompts}
        self._bm25 = BM25System(self.prompts, template=self.template) if self.system.uses_bm25 else None
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
            self._bm25 = BM25System(self.prompts, template=self.template) if self.system.uses_bm25 else None
        return removed

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
        if self.system.kind != "dense":
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
        """The BM25 index over the same document text (rebuilt whenever the prompts change)."""
        if self._bm25 is None:
            self._bm25 = BM25System(self.prompts, template=self.template)
        return self._bm25

    def _search_fused(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """BM25 and the hybrids: score every prompt with each component once per batch, then rank per
        (k, genre, theme) with the same functions the evaluation uses."""
        texts = [r.query for r in requests]
        spec = self.system
        dense = self.encoder.encode_queries(texts) @ self.embeddings.T if spec.kind != "bm25" else None
        bm25 = self.bm25.scores(texts)
        ids = [p.id for p in self.prompts]
        genres, themes = [p.genre for p in self.prompts], [p.theme for p in self.prompts]
        groups: dict[tuple[int, str | None, str | None], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.k, r.genre, r.theme), []).append(i)
        out: list[list[Hit]] = [[] for _ in requests]
        for (k, genre, theme), idx in groups.items():
            qids = [str(i) for i in idx]
            run = system_run(
                spec.kind,
                qids,
                ids,
                dense[idx] if dense is not None else None,
                bm25[idx],
                k,
                alpha=spec.alpha,
                k_rrf=spec.k_rrf,
                depth=spec.depth,
                mask=filter_mask(genres, themes, genre, theme),
                texts=[texts[i] for i in idx],
                alphas=spec.alphas,
                bounds=spec.bounds,
            )
            for i, qid in zip(idx, qids, strict=True):
                scores = run[qid]
                out[i] = [Hit(self._by_id[pid], scores[pid], r) for r, pid in enumerate(rank(scores), 1)]
        return out

    def check_filters(self, genre: str | None, theme: str | None) -> None:
        """`InputError` for a genre or theme filter that no indexed prompt has (compared as `filter_key`
        compares: trimmed, case-insensitive; blank is no filter), as the CLI and the API refuse it, instead
        of answering every search with nothing."""
        if filter_key(genre) is None and filter_key(theme) is None:
            return
        cached = getattr(self, "_filter_names", None)
        if cached is None or cached[0] is not self._by_id:  # a new dict whenever the prompts change
            names = {what: sorted({getattr(p, what) for p in self.prompts}) for what in ("genre", "theme")}
            cached = (self._by_id, names, {what: {n.casefold() for n in ns} for what, ns in names.items()})
            self._filter_names = cached
        for what, value in (("genre", genre), ("theme", theme)):
            key = filter_key(value)
            if key is not None and key not in cached[2][what]:
                known = cached[1][what]
                shown = ", ".join(known[:30]) + (f" and {len(known) - 30} more" if len(known) > 30 else "")
                raise InputError(f"unknown {what} {value.strip()!r}; known: {shown}")

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
        """Which system answers: kind, model, backend, corpus, and the numbers it was chosen on (from a run)."""
        run = self.run_info or {}
        return {
            "system": run.get("label") or system_label(self.system.kind, self.model_name),
            "kind": self.system.kind,
            "model": None if self.system.kind == "bm25" else run.get("model") or self.model_name,
            "backend": None if self.system.kind == "bm25" else self.encoder.backend,
            "prompts": len(self.prompts),
            "corpus_fingerprint": corpus_fingerprint(self.prompts),
            "dev_ndcg@10": run.get("dev_ndcg@10"),
            "test_ndcg@10": run.get("test_ndcg@10"),
        }

    def save_run(self, run_dir: str | Path, info: dict) -> Path:
        """Make `run_dir` deployable: the index in `run_dir/index/`, then (last) `run_dir/system.json`
        holding `info` (label, how it was chosen, its numbers) with the system, model and fingerprints.
        The run holds every file it names: a local model folder outside it is copied into
        `run_dir/models/<name>/` (a bundled model or a hub id is named), and every path is relative to it."""
        d = Path(run_dir)
        d.mkdir(parents=True, exist_ok=True)
        model = self.model_name
        resolved = resolve_model(model)
        if resolved.local and not resolved.bundled:
            folder, root = Path(resolved.location), d.resolve()
            if not folder.is_relative_to(root):
                folder = _copy_model(folder, d / "models")
            model = folder.resolve().relative_to(root).as_posix()
        self.save(d / "index", model_path=str(d / model) if resolved.local and not resolved.bundled else None)
        record = {
            "format": SYSTEM_FORMAT,
            **info,
            **self.system.to_dict(),
            "model": model,
            "model_fingerprint": self.fingerprint,
            "backend": self.encoder.backend,
            "template": self.template,
            "index": "index",
            "corpus_fingerprint": corpus_fingerprint(self.prompts),
        }
        atomic_write_json(d / SYSTEM_FILE, record)
        return d / SYSTEM_FILE

    @classmethod
    def from_run(cls, run_dir: str | Path, *, backend: str | None = None, **kwargs) -> PromptRetriever:
        """The system a pipeline run chose (`run_dir/system.json`), exactly as it was measured. Refuses a
        run whose corpus, model (weights, configuration or tokenizer) or index changed since, a forged
        field, and a model or index path that leads out of the run; `backend` switches inference (e.g.
        onnx-int8). Works from any current folder: every path is relative to the run."""
        d = Path(run_dir)
        info = read_system(d)
        index_dir = _inside_run(d, info["index"], "index")
        model = _run_model(d, info["model"])
        recorded, now = info["model_fingerprint"], backend_fingerprint(model, info["backend"])
        if now != recorded:  # before anything is loaded: the model the numbers were measured with
            if recorded.split("+")[0] == weights_fingerprint(model):
                raise IndexLoadError(
                    f"{d}: this run was made by an older version of prompt-retriever, whose model fingerprint "
                    "covers the weights only, not the model's configuration and tokenizer; rerun the pipeline "
                    f"(`prompt-retriever pipeline --out {d}`) to choose and save the system again"
                )
            raise IndexLoadError(
                f"{d}: the model changed since this system was chosen ({recorded} -> {now}: its weights, "
                "configuration or tokenizer); rerun the pipeline"
            )
        r = cls.load(index_dir, model=model, **kwargs)
        if r.fingerprint != recorded:
            raise IndexLoadError(
                f"{d}: the index was built with another model than system.json names; rerun the pipeline"
            )
        for what, mine, theirs in (
            ("template", r.template, info["template"]),
            ("backend", r.encoder.backend, info["backend"]),
        ):
            if mine != theirs:
                raise IndexLoadError(
                    f"{d}: system.json and the index disagree about the {what} ({theirs!r:.80} vs {mine!r:.80}); "
                    "rerun the pipeline"
                )
        current = corpus_fingerprint(r.prompts)
        if current != info["corpus_fingerprint"]:
            raise IndexLoadError(f"{d}: the index holds another corpus than the one this system was chosen on")
        corpus = d / "corpus.jsonl"
        if corpus.exists() or corpus.is_symlink():  # read bounded: at most what the index's prompts can take
            blob = _read_limited(corpus, len(r.prompts) * MAX_PROMPT_ROW_BYTES + 4096)
            if corpus_fingerprint(_parse_prompts(corpus, blob)) != current:
                raise IndexLoadError(
                    f"{d}: the run's corpus changed since this system was chosen; rerun the pipeline to choose again"
                )
        if r.system != SystemSpec.from_dict(info):
            raise IndexLoadError(f"{d}: system.json and the index disagree about the system")
        if backend is not None and backend != r.encoder.backend:
            r.use_encoder(Encoder(model, backend=backend, allow_download=kwargs.get("allow_download")))
        r.run_info = info
        return r

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, *, model_path: str | None = None) -> Path:
        """Write `embeddings.npy`, `prompts.jsonl` and (last) `manifest.json` with checksums. A local
        model folder (`model_path`, default this retriever's) is recorded relative to the index folder, so
        the index loads from any current folder (and moves with its model)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(d / "embeddings.npy", self.embeddings)
        atomic_write_jsonl(d / "prompts.jsonl", [p.to_dict() for p in self.prompts])
        manifest = {
            "format": INDEX_FORMAT,
            "model": _model_ref(model_path or self.model_name, d),
            "fingerprint": self.fingerprint,
            "backend": self.encoder.backend,
            "dimension": int(self.embeddings.shape[1]) if self.embeddings.ndim == 2 else 0,
            "count": len(self.prompts),
            "template": self.template,
            "system": self.system.to_dict(),
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
        try:
            present = path.exists()
        except OSError as exc:  # a name the file system refuses (too long, ...)
            raise IndexLoadError(f"{directory!s:.200}: not a usable index folder ({type(exc).__name__})") from exc
        if not present:
            raise IndexLoadError(f"{directory}: not an index folder (no manifest.json)")
        try:
            manifest = json.loads(_read_limited(path, MAX_MANIFEST_BYTES).decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise IndexLoadError(f"{path}: corrupt manifest ({type(exc).__name__}: {str(exc)[:200]})") from exc
        if not isinstance(manifest, dict):
            raise IndexLoadError(f"{path}: corrupt manifest (a JSON object expected, got {type(manifest).__name__})")
        return manifest

    @classmethod
    def load(cls, directory: str | Path, model: str | None = None, **kwargs) -> PromptRetriever:
        """Load an index (with the inference backend it was built with). With `model`, refuse an index
        built with a different model (weights, configuration or tokenizer). Every manifest field is checked
        before use: one IndexLoadError for anything forged."""
        d = Path(directory)
        manifest = cls.read_manifest(d)
        fmt = manifest.get("format", 1)
        if not (isinstance(fmt, int) and not isinstance(fmt, bool) and 1 <= fmt <= INDEX_FORMAT):
            raise IndexLoadError(f"{d}: manifest.json has format {fmt!r:.40}, this version reads 1 to {INDEX_FORMAT}")
        count, dim = _manifest_shape(d, manifest)
        checksums = manifest.get("checksums")
        if not isinstance(checksums, dict):
            raise IndexLoadError(f"{d}: manifest.json has no checksums")
        limits = {
            "embeddings.npy": count * dim * 4 + NPY_HEADER_ALLOWANCE,
            "prompts.jsonl": count * MAX_PROMPT_ROW_BYTES + 4096,
        }
        # Read each file once (a regular file, at most the size the manifest allows) and check that very
        # content: a writer replacing files between a check and a read cannot slip mismatched data past
        # the checksums.
        blobs: dict[str, bytes] = {}
        for name in ("embeddings.npy", "prompts.jsonl"):
            digest = checksums.get(name)
            blobs[name] = _read_limited(d / name, limits[name])
            if not isinstance(digest, str) or sha256_bytes(blobs[name]) != digest:
                raise IndexLoadError(f"{d / name}: checksum mismatch (file corrupt or modified)")
        for key in ("model", "fingerprint"):
            if not isinstance(manifest.get(key), str) or not manifest[key] or len(manifest[key]) > MAX_NAME_CHARS:
                raise IndexLoadError(f"{d}: manifest.json has no {key} (a string expected)")
        backend, template = manifest.get("backend", "torch"), manifest.get("template", DEFAULT_TEMPLATE)
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise IndexLoadError(
                f"{d}: manifest.json has a bad backend ({backend!r:.40}; one of {', '.join(BACKENDS)})"
            )
        try:
            check_template(template)
        except InputError as exc:
            raise IndexLoadError(f"{d}: manifest.json has a bad template: {exc}") from exc
        try:
            system = SystemSpec.from_dict(manifest.get("system", {}))
        except (InputError, TypeError) as exc:
            raise IndexLoadError(f"{d}: bad system in manifest.json ({exc})") from exc
        kwargs.setdefault("system", system)
        retriever = cls(model or _index_model(d, manifest["model"], fmt), template=template, backend=backend, **kwargs)
        if retriever.fingerprint != manifest["fingerprint"]:
            if manifest["fingerprint"].split("+")[0] == weights_fingerprint(retriever.model_name):
                raise IndexLoadError(
                    f"{d}: this index was made by an older version of prompt-retriever, whose model fingerprint "
                    "covers the weights only, not the model's configuration and tokenizer; rebuild it "
                    "(`prompt-retriever index --out ...`, or rerun the pipeline for a run's index)"
                )
            raise IndexLoadError(
                f"{d}: index was built with model {manifest['model']} ({manifest['fingerprint']}), "
                f"not {retriever.model_name} ({retriever.fingerprint}); rebuild it with this model"
            )
        prompts = _parse_prompts(d / "prompts.jsonl", blobs["prompts.jsonl"])
        embeddings = _parse_embeddings(d / "embeddings.npy", blobs["embeddings.npy"], count, dim)
        if len(prompts) != count:
            raise IndexLoadError(f"{d}: manifest count {count} does not match the data ({len(prompts)} prompts)")
        if count and retriever.system.kind != "bm25":
            try:
                model_dim = retriever.encoder.dimension
            except Exception:  # noqa: BLE001 - a model that cannot say its dimension fails later, clearly
                model_dim = dim
            if model_dim != dim:
                raise IndexLoadError(f"{d}: embeddings have dimension {dim}, the model {model_dim}")
        retriever.prompts, retriever.embeddings = prompts, embeddings
        retriever._sync(prompts, embeddings)
        return retriever


MAX_MANIFEST_BYTES = 1 << 20
NPY_HEADER_ALLOWANCE = 64 * 1024
MAX_PROMPT_ROW_BYTES = 64 * 1024  # a row's fields are capped well below this (corpus.MAX_TEXT_CHARS)
MAX_INDEX_COUNT = 50_000_000
MAX_INDEX_DIMENSION = 65_536
PROMPT_FIELDS = ("id", "genre", "theme", "title", "text")


def _read_limited(path: Path, limit: int) -> bytes:
    """The bytes of a regular file no larger than `limit`, or one clear IndexLoadError. Checked on the
    descriptor, opened without blocking (symlinks to /dev/zero, FIFOs, devices refused at once), and read
    at most `limit + 1` bytes (`fileio.read_regular`)."""
    try:
        return read_regular(path, limit)
    except InputError as exc:
        raise IndexLoadError(str(exc)) from exc


MAX_NAME_CHARS = 4096  # a model name or path, a fingerprint


def _model_ref(model: str, index_dir: Path) -> str:
    """How an index names its model: a local folder relative to the index folder, anything else by name."""
    resolved = resolve_model(model)
    if not resolved.local or resolved.bundled:
        return model
    try:
        return Path(os.path.relpath(resolved.location, index_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return resolved.location


def _index_model(d: Path, name: str, fmt: int) -> str:
    """The model an index names: a folder relative to the index (format 2), else the name as it is (a
    bundled model, a hub id, an absolute folder, or a format-1 path relative to the current folder)."""
    try:
        if fmt >= 2 and not Path(name).is_absolute() and (d / name).is_dir():
            return str(d / name)
        old_and_gone = fmt == 1 and looks_like_path(name) and not Path(name).expanduser().exists()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise IndexLoadError(f"{d}: manifest.json names an unusable model path ({type(exc).__name__})") from exc
    if old_and_gone:
        raise IndexLoadError(
            f"{d}: this index was made by an older version of prompt-retriever, which named its model folder "
            f"({name!r:.200}) relative to the folder it was built in; rebuild it (`prompt-retriever index`), or "
            "rerun the pipeline for a run's index"
        )
    return name


def _copy_model(folder: Path, models_dir: Path) -> Path:
    """`folder` copied (files, not links) into `models_dir/<its name>`, kept if an identical copy is there."""
    target = models_dir / folder.name
    if target.is_dir() and not target.is_symlink() and model_fingerprint(str(target)) == model_fingerprint(str(folder)):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    work = models_dir / f".{folder.name}.copy-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(folder, work)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    work.rename(target)
    return target


def _resolved(path: Path, what: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop (RuntimeError before 3.13)
        raise IndexLoadError(f"{path}: {what} cannot be resolved ({type(exc).__name__})") from exc


def _inside_run(d: Path, rel: str, what: str) -> Path:
    """`d / rel`, checked to be a path inside the run folder `d` (relative, no `..`, no symlink out)."""
    if Path(rel).is_absolute() or PureWindowsPath(rel).drive or ".." in Path(rel).parts:
        raise IndexLoadError(
            f"{d}: {what} {rel!r:.200} is outside the run: a run names its files by paths relative to its folder"
        )
    target = d / rel
    if not _resolved(target, what).is_relative_to(_resolved(d, "the run folder")):
        raise IndexLoadError(f"{d}: {what} {rel!r:.200} leads outside the run (a symlink out of it)")
    return target


def _run_model(d: Path, name: str) -> str:
    """The model a run names: a folder inside the run, a bundled model or a hub id; never a folder
    elsewhere (an absolute path, `..`, a symlink out of the run, a folder of the current directory)."""
    try:
        in_run = (d / name).exists() or (d / name).is_symlink()
        if in_run or Path(name).is_absolute() or ".." in Path(name).parts:
            folder = _inside_run(d, name, "model")
            if not folder.is_dir():
                raise IndexLoadError(f"{d}: model {name!r:.200} is not a model folder")
            return str(folder)
        if find_bundled(name) is not None:
            return name
        if looks_like_path(name) or resolve_model(name).local:  # a hub id must not name a folder here
            raise IndexLoadError(
                f"{d}: model {name!r:.200} is not a model folder inside the run (a folder outside the run is not "
                "used), a bundled model or a hub id"
            )
    except OSError as exc:  # a name the file system refuses (too long, ...)
        raise IndexLoadError(f"{d}: model {name!r:.200} is not a usable path ({type(exc).__name__})") from exc
    return name


def _manifest_shape(d: Path, manifest: dict) -> tuple[int, int]:
    count, dim = manifest.get("count"), manifest.get("dimension")
    for name, value, top in (("count", count, MAX_INDEX_COUNT), ("dimension", dim, MAX_INDEX_DIMENSION)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise IndexLoadError(f"{d}: manifest.json has a bad {name} ({value!r:.40})")
    return count, dim


def _parse_prompts(path: Path, blob: bytes) -> list[Prompt]:
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IndexLoadError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IndexLoadError(f"{path}:{n}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise IndexLoadError(f"{path}:{n}: a JSON object expected")
        bad = [k for k in PROMPT_FIELDS if not isinstance(row.get(k), str) or not row[k]]
        bad += [k for k in ("kind", "source") if row.get(k) is not None and not isinstance(row[k], str)]
        if bad:
            raise IndexLoadError(f"{path}:{n}: missing or non-string field(s): {', '.join(bad)}")
        if row["id"] in seen:
            raise IndexLoadError(f"{path}:{n}: duplicate prompt id {row['id']!r:.80}")
        seen.add(row["id"])
        prompts.append(Prompt.from_dict(row))
    return prompts


def _parse_embeddings(path: Path, blob: bytes, count: int, dim: int) -> np.ndarray:
    """The (count, dim) float32 array in `blob`, its header checked before any array is allocated."""
    fmt = np.lib.format
    buf = io.BytesIO(blob)
    try:
        version = fmt.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, TypeError, SyntaxError) as exc:
        raise IndexLoadError(f"{path}: not a .npy array ({exc})") from exc
    if dtype != np.dtype("<f4"):
        raise IndexLoadError(f"{path}: dtype {dtype}, float32 expected")
    if fortran or shape != (count, dim):
        raise IndexLoadError(f"{path}: shape {shape!r:.60} does not match the manifest ({count}, {dim})")
    data = blob[buf.tell() :]
    if len(data) != count * dim * 4:
        raise IndexLoadError(f"{path}: {len(data):,} data bytes, the shape needs {count * dim * 4:,}")
    embeddings = np.frombuffer(data, dtype="<f4").reshape(count, dim).astype(np.float32)
    if not np.isfinite(embeddings).all():
        bad = int(np.flatnonzero(~np.isfinite(embeddings).all(axis=1))[0])
        raise IndexLoadError(f"{path}: row {bad} is not finite (NaN or inf)")
    return embeddings


def system_label(kind: str, model: str) -> str:
    """A human name for a system: "all-MiniLM-L6-v2", "BM25", "all-MiniLM-L6-v2 + BM25 hybrid", ..."""
    name = Path(model).name if Path(model).is_dir() else model
    return {
        "dense": name,
        "bm25": "BM25",
        "hybrid": f"{name} + BM25 hybrid",
        "hybrid-rrf": f"{name} + BM25 rank fusion",
        "hybrid-adaptive": f"{name} + BM25 query-adaptive hybrid",
    }[kind]


MAX_SYSTEM_BYTES = 4 << 20
MAX_LABEL_CHARS = 1000


def _is_score(value: object) -> bool:
    """A metric value as a run records it: a finite number in [0, 1], or null (not measured)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0)


def system_info_problem(info: object) -> str | None:
    """What is wrong with a system.json's content (None: nothing): every field a run's loader, `describe`,
    the server and `evaluate --run` use, checked for type and range."""
    if not isinstance(info, dict):
        return f"not a system description (a JSON object expected, got {type(info).__name__})"
    fmt = info.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt != SYSTEM_FORMAT:
        return f"format {fmt!r:.40}, this version reads {SYSTEM_FORMAT}"
    for key in ("kind", "model", "model_fingerprint", "corpus_fingerprint", "index", "backend", "template"):
        value = info.get(key)
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS or "\x00" in value:
            return f"{key} {value!r:.60}: a non-empty string expected"
    if problem := system_problem(info):
        return problem
    if info["backend"] not in BACKENDS:
        return f"backend {info['backend']!r:.40}: one of {', '.join(BACKENDS)} expected"
    try:
        check_template(info["template"])
    except InputError as exc:
        return f"template: {exc}"
    for key in ("label", "name"):
        value = info.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_LABEL_CHARS):
            return f"{key} {value!r:.60}: a string of at most {MAX_LABEL_CHARS} characters expected"
    for key in ("dev_ndcg@10", "test_ndcg@10"):
        if not _is_score(info.get(key)):
            return f"{key} {info.get(key)!r:.40}: a number in [0, 1] or null expected"
    for key in ("dev", "test"):
        value = info.get(key)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(k, str) and _is_score(v) for k, v in value.items())
        ):
            return f"{key} {value!r:.60}: an object of numbers in [0, 1] expected"
    for key in ("chosen_on", "reference"):
        if info.get(key) is not None and not isinstance(info[key], dict):
            return f"{key}: an object expected"
    return None


def read_system(run_dir: str | Path) -> dict:
    """`run_dir/system.json`, read bounded (a regular file of at most 4 MB) and checked field by field;
    one clear IndexLoadError when the folder is not a deployable run or the file is forged. Runs written
    before `index`, `backend` and `template` were recorded get their defaults."""
    d = Path(run_dir)
    path = d / SYSTEM_FILE
    if not path.exists() and not path.is_symlink():
        raise IndexLoadError(
            f"{d}: not a deployable run (no {SYSTEM_FILE}); `prompt-retriever pipeline --out {d}` makes one"
        )
    try:
        info = json.loads(_read_limited(path, MAX_SYSTEM_BYTES).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexLoadError(f"{path}: corrupt ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if isinstance(info, dict):
        info = {"index": "index", "backend": "torch", "template": DEFAULT_TEMPLATE, **info}
    if problem := system_info_problem(info):
        raise IndexLoadError(f"{path}: {problem}")
    return info
