"""What text gets embedded for a prompt, batched encoding, and the on-disk embedding cache."""

from __future__ import annotations

import functools
import io
import json
import string
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..corpus import Prompt
from ..errors import InputError
from ..fileio import atomic_save_npy, atomic_write_json, cache_root, sha256_bytes, sha256_file, sha256_text
from ..progress import showing, task
from .models import load_model, model_fingerprint

# How a prompt is turned into the text the model embeds. This choice matters for quality: "text"
# alone cannot answer a query like "horror prompt about grief", "full" puts the structured tags next
# to the words so the embedding carries them.
DOCUMENT_TEMPLATES: dict[str, str] = {
    "text": "{text}",
    "title_text": "{title}. {text}",
    "full": "{title} ({genre}; {theme}). {text}",
}
DEFAULT_TEMPLATE = "full"


TEMPLATE_FIELDS = ("title", "genre", "theme", "text")
MAX_TEMPLATE_CHARS = 1000


@functools.lru_cache(maxsize=256)
def _template_problem(template: str) -> str | None:
    if template in DOCUMENT_TEMPLATES:
        return None
    if len(template) > MAX_TEMPLATE_CHARS:
        return f"{len(template):,} characters, at most {MAX_TEMPLATE_CHARS:,}"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return str(exc)
    fields = [(name, conv, spec) for _, name, spec, conv in parts if name is not None]
    if not fields:
        return "no field"
    for name, conv, spec in fields:
        if name not in TEMPLATE_FIELDS:
            return f"unknown field {{{name}}}"
        if conv or spec:  # a format spec can pad to any width ({title:>300000000} is 300 MB per prompt)
            return f"{{{name}}} with a conversion or format spec"
    return None


def check_template(template: str) -> str:
    """`template` if it is a named template (`DOCUMENT_TEMPLATES`) or a plain format string: at most
    1,000 characters, whose fields are `{title}`, `{genre}`, `{theme}`, `{text}` without conversion or
    format spec (so no template pads a prompt to gigabytes or reaches an attribute); else InputError."""
    if isinstance(template, str):
        problem = _template_problem(template)
    else:
        problem = f"a string expected, got {type(template).__name__}"
    if problem is not None:
        raise InputError(
            f"bad document template {str(template)[:80]!r} ({problem}): use {', '.join(DOCUMENT_TEMPLATES)} or "
            "a format string with {title} {genre} {theme} {text}"
        )
    return template


def prompt_document(prompt: Prompt, template: str = DEFAULT_TEMPLATE) -> str:
    """The text embedded for `prompt`. `template` is a key of `DOCUMENT_TEMPLATES` or a format string
    (`check_template`)."""
    fmt = DOCUMENT_TEMPLATES.get(check_template(template), template)
    return fmt.format(title=prompt.title, genre=prompt.genre, theme=prompt.theme, text=prompt.text)


class EmbeddingCache:
    """Embeddings keyed by (model fingerprint, sha256 of the text). One `.npz`-like pair per model.

    Stored as `<root>/embeddings/<fingerprint-slug>/{keys.npy,vectors.npy}`; writes are atomic, and a
    cache that fails to load (truncated, mismatched shapes) is ignored with a warning and rebuilt.
    """

    def __init__(self, fingerprint: str, root: Path | None = None):
        slug = sha256_text(fingerprint)[:16]
        self.dir = (root or cache_root()) / "embeddings" / slug
        self.fingerprint = fingerprint
        self._map: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._map is None:
            self._map = {}
            paths = [self.dir / n for n in ("keys.npy", "vectors.npy", "manifest.json")]
            if all(p.exists() for p in paths):
                try:
                    manifest = json.loads(paths[2].read_text(encoding="utf-8"))
                    blobs = {p.name: p.read_bytes() for p in paths[:2]}  # read once, check that content
                    for name, blob in blobs.items():
                        if sha256_bytes(blob) != manifest["sha256"][name]:
                            raise InputError(f"{name} checksum mismatch")
                    keys = np.load(io.BytesIO(blobs["keys.npy"]), allow_pickle=False)
                    vecs = np.load(io.BytesIO(blobs["vectors.npy"]), allow_pickle=False)
                    if len(keys) != len(vecs) or len(keys) != manifest["count"]:
                        raise InputError("keys, vectors and manifest differ in length")
                    self._map = {str(k): v for k, v in zip(keys, vecs, strict=True)}
                except (ValueError, OSError, EOFError, KeyError, TypeError) as exc:
                    warnings.warn(f"embedding cache {self.dir} unreadable ({exc}); rebuilding", stacklevel=2)
                    self._map = {}
            elif any(p.exists() for p in paths):
                warnings.warn(f"embedding cache {self.dir} incomplete; rebuilding", stacklevel=2)
        return self._map

    def get(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        cached = self._load()
        return {h: cached[h] for h in (sha256_text(t) for t in texts) if h in cached}

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        cached = self._load()
        for t, v in zip(texts, vectors, strict=True):
            cached[sha256_text(t)] = v
        keys = np.array(list(cached), dtype="<U64")
        vecs = np.stack(list(cached.values())).astype(np.float32) if cached else np.zeros((0, 0), np.float32)
        atomic_save_npy(self.dir / "vectors.npy", vecs)
        atomic_save_npy(self.dir / "keys.npy", keys)
        sums = {n: sha256_file(self.dir / n) for n in ("keys.npy", "vectors.npy")}
        atomic_write_json(
            self.dir / "manifest.json", {"fingerprint": self.fingerprint, "count": len(keys), "sha256": sums}
        )  # last: marks the pair complete


def encode_texts(model, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """`texts` embedded by a loaded model (a SentenceTransformer or the onnx backends' encoder), as every
    `Encoder` embeds them: L2-normalised float32, one row per text, no progress bar. Also used directly on
    a model being trained (`training.checkpoint_eval`), which has no name to build an `Encoder` from."""
    vecs = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,  # the libraries' per-call bars stay off: see `Encoder._encode`
    )
    return np.asarray(vecs, dtype=np.float32)


BACKENDS = ("torch", "onnx", "onnx-int8")


def backend_fingerprint(model: str, backend: str = "torch") -> str:
    """The weights fingerprint, plus the backend and its export version for the onnx backends."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    fingerprint = model_fingerprint(model)
    if backend == "torch":
        return fingerprint
    from .onnx import EXPORT_VERSION

    return f"{fingerprint}+{backend}/export{EXPORT_VERSION}"


class Encoder:
    """Encodes texts with one model: L2-normalised float32, batched, cached by text hash."""

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        use_cache: bool = True,
        show_progress: bool = False,
        allow_download: bool | None = None,
        backend: str = "torch",
    ):
        """`backend`: torch (sentence-transformers), onnx or onnx-int8 (ONNX Runtime, exported locally).
        The fingerprint, and so every cache key, names the backend: vectors from different backends
        never mix."""
        self.fingerprint = backend_fingerprint(model, backend)
        self.model_name = model
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.allow_download = allow_download
        self.backend = backend
        self._model_override = None  # an ONNX Runtime encoder for the onnx backends
        self._loaded = None  # the SentenceTransformer of the torch backend, once loaded
        if backend != "torch":
            from .onnx import OnnxEncoder

            self._model_override = OnnxEncoder(model, quantized=backend == "onnx-int8", allow_download=allow_download)
        self.cache = EmbeddingCache(self.fingerprint) if use_cache else None

    @property
    def model(self):
        if self._model_override is not None:
            return self._model_override
        if self._loaded is None:  # loaded once: load_model checks the model's files on every call
            self._loaded = load_model(self.model_name, allow_download=self.allow_download)
        return self._loaded

    def set_threads(self, threads: int) -> None:
        """Threads per encode call for the onnx backends (a server with one batch worker per core uses
        one each). The torch backend's threads are process-wide (`torch.set_num_threads`), so not here."""
        if self._model_override is not None:
            self._model_override.set_threads(threads)

    @property
    def dimension(self) -> int:
        m = self.model
        getter = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(getter())

    def _encode(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        """With `progress`, the texts count towards the showing "embedding" bar (`progress.task`), else a
        new one: encoded a few batches per call, longest first as sentence-transformers batches them."""
        if not progress or not texts:
            return self._encode_call(list(texts))
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        step = self.batch_size * 4
        parts: list[np.ndarray] = []
        with task("embedding", unit="texts") as bar:
            bar.grow(len(texts))
            for start in range(0, len(texts), step):
                parts.append(self._encode_call([texts[i] for i in order[start : start + step]]))
                bar.advance(len(parts[-1]))
        out = np.empty((len(texts), parts[0].shape[1]), np.float32)
        out[order] = np.concatenate(parts)
        return out

    def _encode_call(self, texts: list[str]) -> np.ndarray:
        return encode_texts(self.model, texts, self.batch_size)

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        if not queries:
            return np.zeros((0, self.dimension), np.float32)
        big = len(queries) > 256  # a bar of its own, or part of the one showing
        return self._encode(queries, progress=self.show_progress and (big or showing("texts")))

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Encode corpus texts, taking unchanged ones from the cache."""
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        found = self.cache.get(texts) if self.cache else {}
        hashes = [sha256_text(t) for t in texts]
        missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in found}.items())
        if missing:
            new_texts = [t for _, t in missing]
            new = self._encode(new_texts, progress=self.show_progress)
            found.update({h: v for (h, _), v in zip(missing, new, strict=True)})
            if self.cache:
                self.cache.put(new_texts, new)
        return np.stack([found[h] for h in hashes]).astype(np.float32)
