"""`PromptRetriever`: an index over prompts (dense, BM25 or a hybrid of the two) with filters,
add/remove, save/load, and `from_run` to load the system a pipeline run chose."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .._version import __version__
from ..corpus import Prompt, corpus_fingerprint, load_corpus
from ..encoding.encoder import DEFAULT_TEMPLATE, Encoder, prompt_document
from ..encoding.models import DEFAULT_MODEL
from ..errors import IndexLoadError, InputError, MissingError
from ..fileio import atomic_save_npy, atomic_write_json, atomic_write_jsonl, sha256_bytes, sha256_file
from .runs import filter_mask, rank
from .stores import ExactStore, VectorStore
from .systems import BM25System, SystemSpec, system_run

INDEX_FORMAT = 1
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
        return self.search_many([query], k=k, genre=genre, theme=theme)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 5, genre: str | None = None, theme: str | None = None
    ) -> list[list[Hit]]:
        if k < 1:
            raise InputError("k must be at least 1")
        if not self.prompts:
            return [[] for _ in queries]
        if self.system.kind != "dense":
            return self.search_requests([SearchRequest(q, k, genre, theme) for q in queries])
        return self.search_vectors(self.encoder.encode_queries(list(queries)), k=k, genre=genre, theme=theme)

    def search_requests(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Answer many independent searches at once: one encode call for all queries, and one store
        search per distinct (k, genre, theme), so a server under load does one matrix product per batch
        instead of one per request."""
        if any(r.k < 1 for r in requests):
            raise InputError("k must be at least 1")
        if not requests:
            return []
        if not self.prompts:
            return [[] for _ in requests]
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
        holding `info` (label, how it was chosen, its numbers) with the system, model and fingerprints."""
        d = Path(run_dir)
        self.save(d / "index")
        model, root = Path(self.model_name).resolve(), d.resolve()
        rel = model.relative_to(root).as_posix() if model.is_relative_to(root) else None
        record = {
            "format": SYSTEM_FORMAT,
            **info,
            **self.system.to_dict(),
            "model": rel or self.model_name,
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
        run whose corpus, model or index changed since; `backend` switches inference (e.g. onnx-int8)."""
        d = Path(run_dir)
        info = read_system(d)
        model_dir = d / info["model"]
        model = str(model_dir) if model_dir.is_dir() else info["model"]
        r = cls.load(d / info.get("index", "index"), model=model, **kwargs)
        if r.fingerprint != info["model_fingerprint"]:
            raise IndexLoadError(
                f"{d}: the model changed since this system was chosen ({info['model_fingerprint']} -> "
                f"{r.fingerprint}); rerun the pipeline"
            )
        now = corpus_fingerprint(r.prompts)
        if now != info["corpus_fingerprint"]:
            raise IndexLoadError(f"{d}: the index holds another corpus than the one this system was chosen on")
        if (d / "corpus.jsonl").exists() and corpus_fingerprint(load_corpus(d / "corpus.jsonl")) != now:
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
        if not path.exists():
            raise IndexLoadError(f"{directory}: not an index folder (no manifest.json)")
        try:
            manifest = json.loads(_read_limited(path, MAX_MANIFEST_BYTES).decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexLoadError(f"{path}: corrupt manifest ({exc})") from exc
        if not isinstance(manifest, dict):
            raise IndexLoadError(f"{path}: corrupt manifest (a JSON object expected, got {type(manifest).__name__})")
        return manifest

    @classmethod
    def load(cls, directory: str | Path, model: str | None = None, **kwargs) -> PromptRetriever:
        """Load an index (with the inference backend it was built with). With `model`, refuse an index
        built with different weights."""
        d = Path(directory)
        manifest = cls.read_manifest(d)
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
            if not isinstance(manifest.get(key), str):
                raise IndexLoadError(f"{d}: manifest.json has no {key}")
        try:
            system = SystemSpec.from_dict(manifest.get("system", {}))
        except (InputError, TypeError) as exc:
            raise IndexLoadError(f"{d}: bad system in manifest.json ({exc})") from exc
        kwargs.setdefault("system", system)
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
    open descriptor (symlinks to /dev/zero, FIFOs, devices refused) and read at most `limit + 1` bytes."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise IndexLoadError(f"{path}: not a regular file")
            if st.st_size > limit:
                raise IndexLoadError(f"{path}: too large ({st.st_size:,} bytes, the manifest allows {limit:,})")
            data = fh.read(limit + 1)
    except OSError as exc:
        raise IndexLoadError(f"{path}: missing or unreadable ({type(exc).__name__})") from exc
    if len(data) > limit:
        raise IndexLoadError(f"{path}: too large (over {limit:,} bytes, the manifest allows)")
    return data


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


def read_system(run_dir: str | Path) -> dict:
    """`run_dir/system.json`, checked; a clear error when the folder is not a deployable run."""
    d = Path(run_dir)
    path = d / SYSTEM_FILE
    if not path.exists():
        raise IndexLoadError(
            f"{d}: not a deployable run (no {SYSTEM_FILE}); `prompt-retriever pipeline --out {d}` makes one"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexLoadError(f"{path}: corrupt ({exc})") from exc
    need = ("kind", "model", "model_fingerprint", "corpus_fingerprint")
    if not isinstance(info, dict) or any(not isinstance(info.get(k), str) for k in need):
        raise IndexLoadError(f"{path}: not a system description (needs {', '.join(need)})")
    if info.get("format") != SYSTEM_FORMAT:
        raise IndexLoadError(f"{path}: format {info.get('format')!r}, this version reads {SYSTEM_FORMAT}")
    return info
