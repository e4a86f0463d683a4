"""Live collections: how far an index drifted from the corpus its system was chosen on, and updating a
saved index (or a run's) in place without ever leaving a half-written one.

`Drift` follows every add, update and remove by id, against the state the index was in before its first
change (for a run: the corpus its system was chosen on). An id added then removed is no drift; an id
updated back to its first content is none either. It is saved as `drift.json` inside the index folder,
vouched for by the manifest's checksums, so the index and its drift always change together.

`replace_dir` swaps a fully written new folder in for the old one: on Linux one `renameat2` exchange (a
reader sees the old folder or the new one, never none), elsewhere two renames.

>>> d = Drift()
>>> d.note_put(None, Prompt("a", "Horror", "Grief", "T", "text"), since="fp0")
>>> d.counts()
{'added': 1, 'updated': 0, 'removed': 0}
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..corpus import Collector, Prompt, add_record, title_key
from ..errors import IndexLoadError, InputError
from ..fileio import sha256_text
from .deployment import inside_run, read_system
from .persistence import DRIFT_FILE

__all__ = [
    "DRIFT_FILE",
    "Drift",
    "Changes",
    "index_folder",
    "locked",
    "plan_changes",
    "prompt_digest",
    "prompt_from_record",
    "read_drift",
    "replace_dir",
    "staged_dir",
]

DRIFT_FORMAT = 1
_RENAME_EXCHANGE = 2


def prompt_digest(p: Prompt) -> str:
    """A prompt's content as `corpus_fingerprint` sees it (id and fields, not where it was read from)."""
    return sha256_text(json.dumps([p.id, p.genre, p.theme, p.title, p.text, p.kind]))[:16]


@dataclass
class Drift:
    """Prompts added, updated and removed (by id) since the corpus fingerprinted `since`; `base` keeps the
    first content (`prompt_digest`) of each updated or removed id, so an update back to it is no drift."""

    since: str | None = None
    added: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    base: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "updated": len(self.updated), "removed": len(self.removed)}

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def note_put(self, old: Prompt | None, new: Prompt, *, since: str | None) -> None:
        """`new` added (`old` None) or replacing `old`; `since`: the corpus fingerprint before any change."""
        if self.since is None:
            self.since = since
        pid, digest = new.id, prompt_digest(new)
        if old is None and pid not in self.removed:
            self.added.add(pid)
            return
        if pid in self.added:
            return
        if old is not None:
            self.base.setdefault(pid, prompt_digest(old))
        self.removed.discard(pid)
        if self.base.get(pid) == digest:  # back to what it was
            self.updated.discard(pid)
            self.base.pop(pid, None)
        else:
            self.updated.add(pid)

    def note_remove(self, old: Prompt, *, since: str | None) -> None:
        if self.since is None:
            self.since = since
        pid = old.id
        if pid in self.added:
            self.added.discard(pid)
            return
        self.base.setdefault(pid, prompt_digest(old))
        self.updated.discard(pid)
        self.removed.add(pid)

    def to_dict(self, corpus_fingerprint: str) -> dict:
        """drift.json: the counts, the ids, and the fingerprints before (`since`) and after the changes."""
        return {
            "format": DRIFT_FORMAT,
            "since": self.since,
            "corpus_fingerprint": corpus_fingerprint,
            **self.counts(),
            "ids": {"added": sorted(self.added), "updated": sorted(self.updated), "removed": sorted(self.removed)},
            "base": dict(sorted(self.base.items())),
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> tuple[Drift, str]:
        """The drift in a drift.json and the corpus fingerprint it describes; IndexLoadError if forged."""

        def bad(what: str) -> IndexLoadError:
            return IndexLoadError(f"{where}: {DRIFT_FILE} has a bad {what}")

        if not isinstance(data, dict) or data.get("format") != DRIFT_FORMAT:
            raise bad("format")
        since, after = data.get("since"), data.get("corpus_fingerprint")
        if not (isinstance(since, str) and 0 < len(since) <= 64 and isinstance(after, str) and len(after) <= 64):
            raise bad("fingerprint")
        ids, base = data.get("ids"), data.get("base")
        if not isinstance(ids, dict) or not isinstance(base, dict):
            raise bad("ids")
        sets = {}
        for key in ("added", "updated", "removed"):
            value = ids.get(key)
            if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
                raise bad(f"ids.{key}")
            sets[key] = set(value)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in base.items()):
            raise bad("base")
        return cls(since, sets["added"], sets["updated"], sets["removed"], dict(base)), after


def read_drift(blob: bytes, where: str) -> tuple[Drift, str]:
    try:
        data = json.loads(blob.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexLoadError(f"{where}: corrupt {DRIFT_FILE} ({type(exc).__name__})") from exc
    return Drift.from_dict(data, where)


# ---------------------------------------------------------------------------------------------- changes
@dataclass(frozen=True)
class Changes:
    """What adding `prompts` to an index does: the new ones, the updated ones, and those already there
    exactly as given (left alone)."""

    added: list[Prompt]
    updated: list[Prompt]
    unchanged: list[Prompt]

    @property
    def to_write(self) -> list[Prompt]:
        return [*self.added, *self.updated]


def plan_changes(existing: dict[str, Prompt], prompts: list[Prompt], *, new_only: bool = False) -> Changes:
    """Sort `prompts` into added, updated and unchanged against `existing` (by id), or InputError for a
    clash: an id given twice, a title another prompt of the index already has (compared as the corpus
    rules compare titles, `title_key`), or with `new_only` an id the index holds already."""
    seen: dict[str, Prompt] = {}
    for p in prompts:
        if p.id in seen:
            raise InputError(f"id clash: prompt id {p.id!r} is given twice ({p.source or 'input'})")
        seen[p.id] = p
    if new_only and (taken := [p for p in prompts if p.id in existing]):
        raise InputError(
            f"id clash: {len(taken)} prompt id(s) are in the index already, e.g. {taken[0].id!r} "
            f"({taken[0].source or 'input'}); leave out --new-only to update them"
        )
    titles = {title_key(p.title): p.id for pid, p in existing.items() if pid not in seen}
    for p in prompts:
        other = titles.setdefault(title_key(p.title), p.id)
        if other != p.id:
            raise InputError(f"title clash: {p.title!r} ({p.source or p.id}) is the title of prompt {other!r} already")
    added = [p for p in prompts if p.id not in existing]
    same = [p for p in prompts if p.id in existing and prompt_digest(existing[p.id]) == prompt_digest(p)]
    same_ids = {p.id for p in same}
    updated = [p for p in prompts if p.id in existing and p.id not in same_ids]
    return Changes(added, updated, same)


def prompt_from_record(prompt_id: str, row: dict, where: str = "request") -> Prompt:
    """One prompt from a JSON object's fields (genre, theme, title, text, kind) under the rules of a corpus
    line (`corpus.add_record`: lengths, no NUL, spaces collapsed); InputError naming every problem."""
    c = Collector()
    unknown = sorted(set(row) - {"genre", "theme", "title", "text", "kind", "id"})
    if unknown:
        raise InputError(f"{where}: unknown field(s): {', '.join(unknown)}")
    if row.get("id") not in (None, prompt_id):
        raise InputError(f"{where}: the id in the body ({row['id']!r:.80}) is not the id in the path")
    add_record(Path(where), 1, {**row, "id": prompt_id}, None, c)
    errors = [i.message for i in c.report.issues if i.severity == "error"]
    if errors or not c.report.prompts:
        raise InputError(f"{where}: " + "; ".join(errors or ["not a prompt"]))
    p = c.report.prompts[0]
    return Prompt(p.id, p.genre, p.theme, p.title, p.text, p.kind)


def index_folder(*, run_dir: Path | None = None, index_dir: Path | None = None) -> Path:
    """The index folder that live updates change: a saved index, or a run's (as its system.json names it,
    inside the run)."""
    if (run_dir is None) == (index_dir is None):
        raise InputError("give either --index DIR or --run RUN")
    if run_dir is not None:
        return inside_run(Path(run_dir), read_system(run_dir)["index"], "index")
    return Path(index_dir)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- swapping
def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders `a` and `b` in one step (Linux `renameat2(RENAME_EXCHANGE)`); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system or kernel cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: Path, target: Path) -> None:
    """Put the folder `new` (fully written, beside `target`) where `target` is; the old one is removed."""
    if target.exists() and _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old folder
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """A new scratch folder beside `target` to write the new index into; swapped in on a clean exit
    (`replace_dir`), removed on an error, so `target` is always a whole index, the old or the new."""
    target = Path(target)
    for stale in target.parent.glob(f".{target.name}.live-*"):  # left by a killed update (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.live-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, (target.stat().st_mode & 0o7777) if target.is_dir() else 0o777 & ~umask)  # not mkdtemp's 0700
    try:
        yield work
        replace_dir(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """An exclusive lock on updating `target` (a lock file beside it), across processes."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows: no advisory locks; updates are not serialised)
        yield
        return
    with open(target.parent / f".{target.name}.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
