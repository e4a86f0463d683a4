"""A saved index on disk: `embeddings.npy`, `prompts.jsonl` and (written last) `manifest.json` with their
checksums, and the hardened reading of one (`PromptRetriever.save` / `load` use these).

Reading trusts nothing in the folder: every file is read once, bounded by the size the manifest allows
(`read_limited`), checked against its checksum, and every manifest field is checked for type and range
before use, so a forged or corrupt index is one clear `IndexLoadError`, never a crash or a huge read.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .._version import __version__
from ..corpus import Prompt
from ..encoding.encoder import BACKENDS, DEFAULT_TEMPLATE, check_template
from ..encoding.models import looks_like_path, resolve_model, weights_fingerprint
from ..errors import IndexLoadError, InputError
from ..fileio import atomic_save_npy, atomic_write_json, atomic_write_jsonl, sha256_bytes, sha256_file
from ..fileread import jsonl_rows, read_regular
from .systems import SystemSpec

# 2: a local model folder is named relative to the index folder (1: relative to the current folder of the
# command that built it, so the index only worked from there).
INDEX_FORMAT = 2
# an index whose system's fusion is not the default (`spec.FUSIONS`): versions before the field refuse it
# rather than serve it as the whole-corpus fusion
INDEX_FORMAT_FUSION = 3
MAX_MANIFEST_BYTES = 1 << 20
NPY_HEADER_ALLOWANCE = 64 * 1024
MAX_PROMPT_ROW_BYTES = 64 * 1024  # a row's fields are capped well below this (corpus.MAX_TEXT_CHARS)
MAX_INDEX_COUNT = 50_000_000
MAX_INDEX_DIMENSION = 65_536
MAX_NAME_CHARS = 4096  # a model name or path, a fingerprint
PROMPT_FIELDS = ("id", "genre", "theme", "title", "text")
DRIFT_FILE = "drift.json"  # an index's live changes (`search.live`), listed in the checksums when there
MAX_DRIFT_BYTES = 64 << 20  # plus 2 KB per prompt: ids and digests of the prompts changed since


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of a regular file no larger than `limit`, or one clear IndexLoadError. Checked on the
    descriptor, opened without blocking (symlinks to /dev/zero, FIFOs, devices refused at once), and read
    at most `limit + 1` bytes (`fileread.read_regular`)."""
    try:
        return read_regular(path, limit)
    except InputError as exc:
        raise IndexLoadError(str(exc)) from exc


# ---------------------------------------------------------------------------------------------- writing
def model_ref(model: str, index_dir: Path) -> str:
    """How an index names its model: a local folder relative to the index folder, anything else by name."""
    resolved = resolve_model(model)
    if not resolved.local or resolved.bundled:
        return model
    try:
        return Path(os.path.relpath(resolved.location, index_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return resolved.location


def write_index(
    directory: Path,
    prompts: Sequence[Prompt],
    embeddings: np.ndarray,
    *,
    model: str,
    fingerprint: str,
    backend: str,
    template: str,
    system: SystemSpec,
    drift: dict | None = None,
) -> Path:
    """Write `embeddings.npy`, `prompts.jsonl`, `drift.json` (with `drift`: the live changes since the
    corpus was measured, `search.live`) and (last) `manifest.json` with checksums into `directory`.
    `model` is recorded as `model_ref` names it (a local folder relative to the index folder)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(d / "embeddings.npy", embeddings)
    atomic_write_jsonl(d / "prompts.jsonl", [p.to_dict() for p in prompts])
    checksums = {"embeddings.npy": sha256_file(d / "embeddings.npy"), "prompts.jsonl": sha256_file(d / "prompts.jsonl")}
    if drift is not None:
        atomic_write_json(d / DRIFT_FILE, drift)
        checksums[DRIFT_FILE] = sha256_file(d / DRIFT_FILE)
    manifest = {
        "format": INDEX_FORMAT if system.fusion == "corpus" else INDEX_FORMAT_FUSION,
        "model": model_ref(model, d),
        "fingerprint": fingerprint,
        "backend": backend,
        "dimension": int(embeddings.shape[1]) if embeddings.ndim == 2 else 0,
        "count": len(prompts),
        "template": template,
        "system": system.to_dict(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "prompt_retriever_version": __version__,
        "checksums": checksums,
    }
    atomic_write_json(d / "manifest.json", manifest)
    return d


# ---------------------------------------------------------------------------------------------- reading
def read_manifest(directory: str | Path) -> dict:
    """`directory/manifest.json` as a JSON object, read bounded; one IndexLoadError for anything else."""
    path = Path(directory) / "manifest.json"
    try:
        present = path.exists()
    except OSError as exc:  # a name the file system refuses (too long, ...)
        raise IndexLoadError(f"{directory!s:.200}: not a usable index folder ({type(exc).__name__})") from exc
    if not present:
        raise IndexLoadError(f"{directory}: not an index folder (no manifest.json)")
    try:
        manifest = json.loads(read_limited(path, MAX_MANIFEST_BYTES).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexLoadError(f"{path}: corrupt manifest ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(manifest, dict):
        raise IndexLoadError(f"{path}: corrupt manifest (a JSON object expected, got {type(manifest).__name__})")
    return manifest


@dataclass(frozen=True)
class IndexFiles:
    """A saved index read from disk and checked: its manifest's fields and the bytes of its data files
    (each read once and matched to its checksum), before any model is loaded."""

    directory: Path
    format: int
    model: str
    fingerprint: str
    backend: str
    template: str
    system: SystemSpec
    count: int
    dimension: int
    blobs: dict[str, bytes]  # embeddings.npy, prompts.jsonl and, when the manifest lists it, drift.json

    @classmethod
    def read(cls, directory: str | Path) -> IndexFiles:
        """The index in `directory`. Every manifest field is checked before use: one IndexLoadError for
        anything forged."""
        d = Path(directory)
        manifest = read_manifest(d)
        fmt = manifest.get("format", 1)
        if not (isinstance(fmt, int) and not isinstance(fmt, bool) and 1 <= fmt <= INDEX_FORMAT_FUSION):
            raise IndexLoadError(
                f"{d}: manifest.json has format {fmt!r:.40}, this version reads 1 to {INDEX_FORMAT_FUSION}"
            )
        count, dim = manifest_shape(d, manifest)
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
            blobs[name] = read_limited(d / name, limits[name])
            if not isinstance(digest, str) or sha256_bytes(blobs[name]) != digest:
                raise IndexLoadError(f"{d / name}: checksum mismatch (file corrupt or modified)")
        if DRIFT_FILE in checksums:
            blobs[DRIFT_FILE] = read_limited(d / DRIFT_FILE, MAX_DRIFT_BYTES + count * 2048)
            if sha256_bytes(blobs[DRIFT_FILE]) != checksums[DRIFT_FILE]:
                raise IndexLoadError(f"{d / DRIFT_FILE}: checksum mismatch (file corrupt or modified)")
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
        if (fmt == INDEX_FORMAT_FUSION) != (system.fusion != "corpus"):  # the format says which fusions it may hold
            raise IndexLoadError(f"{d}: manifest.json format {fmt} with a system fusing {system.fusion!r}")
        return cls(d, fmt, manifest["model"], manifest["fingerprint"], backend, template, system, count, dim, blobs)

    def model_name(self) -> str:
        """The model the index names: a folder relative to the index (format 2), else the name as it is (a
        bundled model, a hub id, an absolute folder, or a format-1 path relative to the current folder)."""
        d, name = self.directory, self.model
        try:
            if self.format >= 2 and not Path(name).is_absolute() and (d / name).is_dir():
                return str(d / name)
            old_and_gone = self.format == 1 and looks_like_path(name) and not Path(name).expanduser().exists()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte
            raise IndexLoadError(f"{d}: manifest.json names an unusable model path ({type(exc).__name__})") from exc
        if old_and_gone:
            raise IndexLoadError(
                f"{d}: this index was made by an older version of prompt-retriever, which named its model folder "
                f"({name!r:.200}) relative to the folder it was built in; rebuild it (`prompt-retriever index`), "
                "or rerun the pipeline for a run's index"
            )
        return name

    def check_model(self, model_name: str, fingerprint: str) -> None:
        """IndexLoadError unless the model loaded to search this index (`model_name`, `fingerprint`) is
        the one it was built with (weights, configuration and tokenizer)."""
        if fingerprint == self.fingerprint:
            return
        d = self.directory
        if self.fingerprint.split("+")[0] == weights_fingerprint(model_name):
            raise IndexLoadError(
                f"{d}: this index was made by an older version of prompt-retriever, whose model fingerprint "
                "covers the weights only, not the model's configuration and tokenizer; rebuild it "
                "(`prompt-retriever index --out ...`, or rerun the pipeline for a run's index)"
            )
        raise IndexLoadError(
            f"{d}: index was built with model {self.model} ({self.fingerprint}), "
            f"not {model_name} ({fingerprint}); rebuild it with this model"
        )

    def contents(self) -> tuple[list[Prompt], np.ndarray]:
        """The prompts and their (count, dimension) float32 embeddings, each checked."""
        d = self.directory
        prompts = parse_prompts(d / "prompts.jsonl", self.blobs["prompts.jsonl"])
        embeddings = parse_embeddings(d / "embeddings.npy", self.blobs["embeddings.npy"], self.count, self.dimension)
        if len(prompts) != self.count:
            raise IndexLoadError(f"{d}: manifest count {self.count} does not match the data ({len(prompts)} prompts)")
        return prompts, embeddings


def manifest_shape(d: Path, manifest: dict) -> tuple[int, int]:
    """The manifest's count and dimension, each an int within its bound."""
    count, dim = manifest.get("count"), manifest.get("dimension")
    for name, value, top in (("count", count, MAX_INDEX_COUNT), ("dimension", dim, MAX_INDEX_DIMENSION)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise IndexLoadError(f"{d}: manifest.json has a bad {name} ({value!r:.40})")
    return count, dim


def parse_prompts(path: Path, blob: bytes) -> list[Prompt]:
    """The prompts of a `prompts.jsonl` (an index's, a run's corpus): one JSON object per line, every
    field a string, no id twice."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IndexLoadError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for n, row in jsonl_rows(text, path, IndexLoadError):
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


def parse_embeddings(path: Path, blob: bytes, count: int, dim: int) -> np.ndarray:
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
