"""Atomic file writes, hashing, the cache root and the versions a result records.

Every file the toolkit writes goes through these functions: data is written to a temporary file in
the same folder, flushed to disk, then renamed over the target, so an interrupted run leaves either
the old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from .errors import InputError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return atomic_write_text(path, text)


def atomic_save_npy(path: str | Path, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


@dataclass(frozen=True)
class StagedDir:
    """A scratch folder beside a target folder. Build the new folder at `result`; `work` holds the rest."""

    work: Path
    result: Path


@contextmanager
def atomic_dir(target: str | Path, label: str = "tmp") -> Iterator[StagedDir]:
    """Write a folder atomically: build it in a scratch folder beside `target`, then rename it over `target`.

    On a clean exit `staged.result` must exist; it replaces `target` (the old one is removed just before
    the rename, so a reader sees the old folder or the new one). On an exception, and always at the end,
    the scratch folder is removed; scratch folders left by a killed run with the same label go first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{label}-"
    for stale in target.parent.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        staged = StagedDir(work, work / "result")
        yield staged
        if not staged.result.is_dir():
            raise FileNotFoundError(f"{staged.result}: nothing was built to replace {target}")
        if target.exists():
            shutil.rmtree(target)
        staged.result.rename(target)  # atomic within one filesystem
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: invalid JSON: {exc.msg}") from exc
    return rows


def cache_root() -> Path:
    """Root of all caches; `PROMPT_RETRIEVER_CACHE_DIR` overrides the user cache dir."""
    env = os.environ.get("PROMPT_RETRIEVER_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("prompt-retriever"))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("prompt-retriever", "torch", "sentence-transformers", "transformers", "numpy", "bm25s"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
