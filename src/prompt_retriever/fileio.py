"""Atomic file writes, hashing, the cache root and the versions a result records.

Every file the toolkit writes goes through these functions: data is written to a temporary file in
the same folder, flushed to disk, then renamed over the target, so an interrupted run leaves either
the old file or the new one, never a torn one.

Output folders follow one rule, `check_out_dir` (before any work) and `atomic_dir` (before removing
anything): a folder that holds files this toolkit did not make is written or replaced only with
`--force`, and `.`, a parent of the current folder, the home folder and `/` are never replaced.

A full disk is one `DiskFullError` ("no space left on DEVICE (mounted at ...) writing PATH"), whichever
writer met it: Python's own (errno 28), safetensors', or torch's C++ stream, which says only
"basic_ios::clear: iostream error" (`disk_full_error`). Folders are built beside their target
(`atomic_dir`, `staged_files`), so a disk that fills up leaves the old folder as it was.
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

from .diskfull import DiskFullError as DiskFullError  # re-exported: raised by every writer here
from .diskfull import disk_full_error
from .errors import OutputDirError
from .settings import cache_dir

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if full := disk_full_error(exc, path.parent, path):
            raise full from exc
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if full := disk_full_error(exc, path.parent, path):
            raise full from exc
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


# ----------------------------------------------------------------------------- output folders

# What marks a folder as one this toolkit wrote, per kind of output: all these names exist in it. Each
# writer writes its marker last (a model folder appears whole), so a killed run leaves none.
OUTPUT_MARKERS: dict[str, tuple[str, ...]] = {
    "model": ("training_manifest.json",),  # train, soup (training.train / training.soup)
    "index": ("manifest.json", "embeddings.npy"),  # index (PromptRetriever.save)
    "golden": ("manifest.json", "queries.jsonl"),  # queries generate / import (GoldenSet.save)
    "report": ("report.json",),  # evaluate (evaluation.report.write_report)
    "comparison": ("summary.json",),  # compare (evaluation.compare)
    "run": ("stages/",),  # pipeline (its stage records)
}
# The kinds whose folder is replaced whole (`atomic_dir`): everything in it is deleted. The others are
# written into: files of the same names are overwritten, nothing else is touched.
REPLACED_KINDS = frozenset({"model"})
_NAMES = {"model": "a model", "index": "an index", "golden": "a golden set", "report": "a report",
          "comparison": "a comparison report", "run": "a pipeline run"}  # fmt: skip
_FORCED: set[Path] = set()  # folders `check_out_dir(..., force=True)` allowed `atomic_dir` to replace


def protected_dir(path: str | Path) -> str | None:
    """Why `path` must never be removed, or None: `.` or any parent of the current folder (`..`, `/`),
    the home folder or one of its parents, or a filesystem root."""
    p = Path(path).resolve()
    if p == Path(p.anchor):
        return "a filesystem root"
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the current folder was removed
        cwd = None
    if cwd is not None and (p == cwd or p in cwd.parents):
        return "the current folder" if p == cwd else "a parent of the current folder"
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError):  # no home folder to find
        home = None
    if home is not None and (p == home or p in home.parents):
        return "the home folder" if p == home else "a parent of the home folder"
    return None


def is_output_of(path: str | Path, kind: str) -> bool:
    """Whether folder `path` holds the marker of an output of `kind` (`OUTPUT_MARKERS`)."""
    d = Path(path)
    return all((d / name).exists() for name in OUTPUT_MARKERS[kind])


def _describe(kind: str) -> tuple[str, str]:
    return _NAMES[kind], " and ".join(OUTPUT_MARKERS[kind])


def _empty_dir(d: Path) -> bool:
    with os.scandir(d) as entries:
        return next(entries, None) is None


def check_out_dir(path: str | Path, kind: str, *, force: bool = False) -> Path:
    """Check an output folder before any work: the one place that decides whether a command may write
    (kinds in `REPLACED_KINDS`: replace) folder `path`, so a refusal comes before minutes of training.

    Allowed: a folder that does not exist, an empty one, or an output of `kind` this toolkit made
    (`OUTPUT_MARKERS`). Any other folder raises `OutputDirError` naming it, unless `force`: then it is
    written into or, for a replaced kind, replaced (`atomic_dir` is told so). A replaced kind never
    replaces `.`, a parent of the current folder, the home folder or `/` (`protected_dir`), even with
    `force`; a file or a symbolic link is never replaced either.
    """
    p = Path(path)
    name, marker = _describe(kind)
    replaced = kind in REPLACED_KINDS
    if replaced and (why := protected_dir(p)):
        raise OutputDirError(
            f"{p} is {why}: it is never replaced by {name}, not even with --force; choose a new folder"
        )
    if p.is_symlink() and replaced:
        raise OutputDirError(f"{p} is a symbolic link; give the folder itself or choose a new folder")
    if p.exists() and not p.is_dir():
        raise OutputDirError(f"{p} is a file, not a folder; choose another folder")
    if not p.exists() or _empty_dir(p) or is_output_of(p, kind):
        return p
    if not force:
        what = "replace it (everything in it is deleted)" if replaced else "write into it anyway"
        raise OutputDirError(
            f"{p} exists, is not empty and is not {name} made by prompt-retriever (no {marker}); "
            f"pass --force to {what}, or choose another folder"
        )
    if replaced:
        _FORCED.add(p.resolve())
    return p


def _check_replaceable(target: Path, kind: str) -> None:
    """`atomic_dir`'s last line of defence: never remove a protected folder, nor a non-empty one that is
    not an output of `kind`, unless `check_out_dir(..., force=True)` allowed it."""
    if why := protected_dir(target):
        raise OutputDirError(f"{target} is {why}: refusing to replace it; choose a new folder")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputDirError(f"{target} is not a folder: refusing to replace it; choose a new folder")
    if (
        target.exists()
        and not _empty_dir(target)
        and not is_output_of(target, kind)
        and target.resolve() not in _FORCED
    ):
        name, marker = _describe(kind)
        raise OutputDirError(
            f"{target} exists, is not empty and is not {name} made by prompt-retriever (no {marker}): "
            "refusing to replace it; move it away or choose another folder"
        )


@dataclass(frozen=True)
class StagedDir:
    """A scratch folder beside a target folder. Build the new folder at `result`; `work` holds the rest."""

    work: Path
    result: Path


@contextmanager
def atomic_dir(target: str | Path, label: str = "tmp", *, kind: str = "model") -> Iterator[StagedDir]:
    """Write a folder atomically: build it in a scratch folder beside `target`, then rename it over `target`.

    On a clean exit `staged.result` must exist; it replaces `target` (the old one is removed just before
    the rename, so a reader sees the old folder or the new one). On an exception, and always at the end,
    the scratch folder is removed; scratch folders left by a killed run with the same label go first.

    An existing `target` is only replaced when it is empty, an output of `kind` (`OUTPUT_MARKERS`) or
    allowed by `check_out_dir(..., force=True)`, and never when it is `.`, a parent of the current
    folder, the home folder or `/`: checked on entry (before the work) and again before the removal.
    """
    target = Path(target)
    _check_replaceable(target, kind)
    work = _scratch_dir(target, label)
    try:
        staged = StagedDir(work, work / "result")
        yield staged
        if not staged.result.is_dir():
            raise FileNotFoundError(f"{staged.result}: nothing was built to replace {target}")
        if target.exists():
            _check_replaceable(target, kind)
            shutil.rmtree(target)
        staged.result.rename(target)  # atomic within one filesystem
        _FORCED.discard(target.resolve())
    except DiskFullError as exc:  # from a write inside: name the folder asked for, not its scratch copy
        raise DiskFullError(
            str(exc).replace(str(work / "result"), str(target)).replace(str(work), str(target))
        ) from exc
    except Exception as exc:
        if full := disk_full_error(exc, work, target):  # asked before the failed write's files go
            raise full from exc
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _scratch_dir(target: Path, label: str) -> Path:
    """A new scratch folder beside `target`, after removing those a killed run left with the same label."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{label}-"
    for stale in target.parent.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    except OSError as exc:
        if full := disk_full_error(exc, target.parent, target):
            raise full from exc
        raise


@contextmanager
def staged_files(target: str | Path, label: str = "tmp", *, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Write the files of folder `target` in a scratch folder beside it, then move them in (the names in
    `last` after the others, e.g. a manifest that vouches for the rest).

    Yields the scratch folder. A failure while writing there (a full disk, an interrupt) leaves `target` as
    it was: every byte is on disk before the first file moves, and moving within one filesystem needs no
    space. Files of `target` that the work did not write are left alone (an index written with `--force`
    into a folder of other files keeps them). Scratch folders of a killed run with the same label go first.
    Only files are moved: the work must write no sub-folders.
    """
    target = Path(target)
    work = _scratch_dir(target, label)
    try:
        yield work
        names = sorted(os.listdir(work), key=lambda n: (n in last, last.index(n) if n in last else 0, n))
        if folders := [n for n in names if not (work / n).is_file() or (work / n).is_symlink()]:
            raise RuntimeError(f"staged_files moves files only, not {folders}")
        target.mkdir(exist_ok=True)
        for name in names:
            os.replace(work / name, target / name)
    except DiskFullError as exc:  # from a write inside: name the file asked for, not its scratch copy
        raise DiskFullError(str(exc).replace(str(work), str(target))) from exc
    except Exception as exc:
        if full := disk_full_error(exc, work, target):
            raise full from exc
        raise
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


def cache_root() -> Path:
    """Root of all caches; `PROMPT_RETRIEVER_CACHE_DIR` overrides the user cache dir."""
    env = cache_dir()
    return Path(env) if env else Path(platformdirs.user_cache_dir("prompt-retriever"))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("prompt-retriever", "torch", "sentence-transformers", "transformers", "numpy", "bm25s"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
