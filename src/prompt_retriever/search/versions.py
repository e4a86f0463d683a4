"""A runs folder's current run and its history: `promote` makes a run the current one, `rollback` returns
to the one current before it, `history` says who changed what when. `serve --runs DIR` serves the
current run and switches when it changes (`serving.watch`).

    runs/
      run-a/, run-b/    deployable runs (`PromptRetriever.save_run`, `prompt-retriever pipeline --out`)
      current.json      the current run: its name, since when, by whom, its fingerprints, `seq`
      history.jsonl     one line per promote or rollback, appended, never rewritten

The history is the record: the current run is what replaying it gives (a promote pushes a run, a
rollback pops back to the one before), and `current.json` is that result, written atomically (a reader
sees the old file or the new, never a torn one) after its history line. Promote and rollback take a
lock on the runs folder, so two at once do not interleave. Runs are named by their folder's name, so a
runs folder moves as a whole; every name read back is checked to be a plain folder name inside it.

>>> promote(Path("runs/run-b"), by="alice")  # doctest: +SKIP
Entry(action='promote', run='run-b', previous='run-a', at='2025-06-01T09:30:00+00:00', by='alice', ...)
>>> rollback(Path("runs")).run               # doctest: +SKIP
'run-a'
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import IndexLoadError, InputError, PromptRetrieverError
from ..fileio import atomic_write_json
from ..fileread import read_regular
from .deployment import SYSTEM_FILE, inside_run, read_system, run_model
from .live import locked
from .persistence import read_manifest

CURRENT_FILE = "current.json"
HISTORY_FILE = "history.jsonl"
CURRENT_FORMAT = 1
MAX_CURRENT_BYTES = 64 << 10
MAX_HISTORY_BYTES = 64 << 20
MAX_NAME_CHARS = 255
MAX_BY_CHARS = 100
ACTIONS = ("promote", "rollback")


@dataclass(frozen=True)
class Entry:
    """One change of the current run: `action` (promote or rollback), the `run` made current, the one
    current before (`previous`, None for the first), when (`at`, ISO 8601 UTC), by whom, the run's model
    and corpus fingerprints, and `seq` (1 for the first change of the folder, then 2, ...)."""

    action: str
    run: str
    previous: str | None
    at: str
    by: str
    model_fingerprint: str
    corpus_fingerprint: str
    seq: int

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- names
def name_problem(name: object) -> str | None:
    """What makes `name` no run folder name (None: nothing): a plain name, no path, no control character."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        return f"{name!r:.80}: a folder name of 1-{MAX_NAME_CHARS} characters expected"
    if name in (".", "..") or "/" in name or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"{name!r:.80}: a plain folder name expected (no path, no control character)"
    return None


def check_by(by: str) -> str:
    """`by` (who made a change), trimmed; InputError if empty, too long or holding control characters."""
    text = by.strip()
    if not text or len(text) > MAX_BY_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"--by {by!r:.60}: a name of 1-{MAX_BY_CHARS} printable characters expected")
    return text


def os_user() -> str:
    """The user name of this process from the OS's user database (not the environment), else 'uid N'."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):  # no user database (Windows), or an unnamed uid
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- runs
def check_run(run_dir: Path) -> dict:
    """The system.json of `run_dir`, once it is checked to be a complete, deployable run: a folder (not a
    link), its system.json valid, its index inside it with a readable manifest, its model the one the
    run was measured with. One IndexLoadError naming what is missing otherwise."""
    if run_dir.is_symlink() or not run_dir.is_dir():
        what = "a link" if run_dir.is_symlink() else "not a folder" if run_dir.exists() else "no such folder"
        raise IndexLoadError(f"{run_dir}: not a run ({what}); a run is a folder made by `prompt-retriever pipeline`")
    info = read_system(run_dir)
    index_dir = inside_run(run_dir, info["index"], "index")
    if not index_dir.is_dir():
        raise IndexLoadError(f"{run_dir}: an incomplete run: its index folder {info['index']!r:.200} is missing")
    read_manifest(index_dir)
    run_model(run_dir, info)
    return info


def run_created(run_dir: Path, info: dict | None = None) -> str | None:
    """When the run `run_dir` was made (ISO 8601 UTC): its system.json's `created` field if it has one,
    else the time its system.json (written last when a run is made) was written; None if unknown."""
    created = (info or {}).get("created")
    if isinstance(created, str) and 0 < len(created) <= 64:
        return created
    try:
        mtime = (run_dir / SYSTEM_FILE).stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- reading
def _entry(data: object, where: str) -> Entry:
    if not isinstance(data, dict):
        raise InputError(f"{where}: not a history entry (a JSON object expected)")
    try:
        entry = Entry(**{k: data[k] for k in Entry.__dataclass_fields__})
    except KeyError as exc:
        raise InputError(f"{where}: not a history entry (no {exc.args[0]!r})") from None
    problems = [
        entry.action not in ACTIONS and f"action {entry.action!r:.40}",
        name_problem(entry.run),
        entry.previous is not None and name_problem(entry.previous),
        not all(isinstance(v, str) and len(v) <= 200 for v in (entry.at, entry.by)) and "at/by: strings expected",
        not all(isinstance(v, str) for v in (entry.model_fingerprint, entry.corpus_fingerprint)) and "fingerprints",
        (not isinstance(entry.seq, int) or isinstance(entry.seq, bool) or entry.seq < 1) and f"seq {entry.seq!r:.20}",
    ]
    if problem := next((p for p in problems if p), None):
        raise InputError(f"{where}: not a history entry ({problem})")
    return entry


def read_history(runs: Path) -> list[Entry]:
    """The history of the runs folder `runs`, oldest first ([] when it has none). A last line with no
    newline (a write that was cut off) is left out; any other line that is not an entry (invalid UTF-8
    included) is an InputError naming the file and the line."""
    path = runs / HISTORY_FILE
    if not path.exists() and not path.is_symlink():
        return []
    raw_lines = read_regular(path, MAX_HISTORY_BYTES).split(b"\n")[:-1]  # after the last newline: unfinished
    entries = []
    for i, raw in enumerate(raw_lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: line {i} is not UTF-8 (byte {exc.start + 1}); fix or remove it") from None
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InputError(f"{path}: line {i} is not JSON ({exc.__class__.__name__}); fix or remove it") from None
        entries.append(_entry(data, f"{path}: line {i}"))
    return entries


def replay(entries: list[Entry]) -> list[str]:
    """The runs current one after another as `entries` leave them (the last one is current): a promote
    pushes its run, a rollback pops back to the run it names."""
    stack: list[str] = []
    for e in entries:
        if e.action == "promote":
            stack.append(e.run)
        elif len(stack) > 1 and stack[-2] == e.run:
            stack.pop()
        else:  # a rollback the history cannot explain (edited by hand): take it as a change to its run
            stack.append(e.run)
    return stack


def read_current(runs: Path) -> Entry | None:
    """The current run of the runs folder `runs` (its `current.json`), None when it has none; InputError
    for a file that is not one."""
    path = runs / CURRENT_FILE
    if not path.exists() and not path.is_symlink():
        return None
    try:
        data = json.loads(read_regular(path, MAX_CURRENT_BYTES).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{path}: corrupt ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != CURRENT_FORMAT:
        raise InputError(f"{path}: not a current-run file of format {CURRENT_FORMAT}")
    return _entry(data, str(path))


def current_run_dir(runs: Path) -> Path:
    """The folder of the current run of `runs`; InputError when there is none yet."""
    if not runs.is_dir():
        raise InputError(f"{runs}: no such runs folder")
    current = read_current(runs)
    if current is None:
        raise InputError(f"{runs}: no current run yet; `prompt-retriever promote {runs / 'NAME'}` makes one")
    return runs / current.run


def current_since(run_dir: Path) -> str | None:
    """Since when `run_dir` is the current run of the runs folder holding it; None when it is not (or that
    folder has no current run, or its current.json cannot be read)."""
    try:
        folder = run_dir.resolve()
        current = read_current(folder.parent)
    except (PromptRetrieverError, OSError, RuntimeError):
        return None
    return current.at if current is not None and current.run == folder.name else None


# ---------------------------------------------------------------------------------------------- changing
def _append(path: Path, entry: Entry) -> None:
    """`entry` as one line at the end of `path`, in one write, flushed to disk. A last line with no
    newline (a write cut off, which `read_history` leaves out) is dropped first (under the lock)."""
    line = (json.dumps(entry.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size:
            text = read_regular(path, MAX_HISTORY_BYTES)
            if not text.endswith(b"\n"):
                os.ftruncate(fd, text.rfind(b"\n") + 1)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _change(runs: Path, action: str, run: str, previous: str | None, info: dict, by: str | None, seq: int) -> Entry:
    entry = Entry(
        action=action,
        run=run,
        previous=previous,
        at=now_utc(),
        by=check_by(by) if by is not None else os_user(),
        model_fingerprint=info["model_fingerprint"],
        corpus_fingerprint=info["corpus_fingerprint"],
        seq=seq,
    )
    _append(runs / HISTORY_FILE, entry)  # the record first; then what readers poll
    atomic_write_json(runs / CURRENT_FILE, {"format": CURRENT_FORMAT, **entry.to_dict()})
    return entry


def promote(run_dir: Path, *, by: str | None = None) -> Entry:
    """Make `run_dir` the current run of the runs folder holding it (its parent), recorded in the
    history; `by` None: the OS user. Refuses (InputError, IndexLoadError) a folder that is not a complete
    run, and the run that is already current."""
    run_dir = Path(run_dir)
    name = run_dir.resolve().name if run_dir.name in ("", ".", "..") else run_dir.name
    if problem := name_problem(name):
        raise InputError(f"{run_dir}: {problem}")
    runs = run_dir.resolve().parent if run_dir.name in ("", ".", "..") else run_dir.parent
    if by is not None:
        check_by(by)
    info = check_run(runs / name)
    with locked(runs / CURRENT_FILE):
        entries = read_history(runs)
        stack = replay(entries)
        if stack and stack[-1] == name:
            raise InputError(f"{runs / name} is already the current run (since {entries[-1].at}); nothing to promote")
        return _change(runs, "promote", name, stack[-1] if stack else None, info, by, len(entries) + 1)


def rollback(runs: Path, *, by: str | None = None) -> Entry:
    """Make the run current before the current one current again, recorded in the history. Refuses
    (InputError, IndexLoadError) when there is none, or when that run is no longer a complete run."""
    runs = Path(runs)
    if not runs.is_dir():
        raise InputError(f"{runs}: no such runs folder")
    if by is not None:
        check_by(by)
    with locked(runs / CURRENT_FILE):
        entries = read_history(runs)
        stack = replay(entries)
        if len(stack) < 2:
            what = f"{stack[-1]} is the first run promoted here" if stack else "no run was ever promoted here"
            raise InputError(f"{runs}: nothing to roll back to ({what})")
        target = stack[-2]
        try:
            info = check_run(runs / target)
        except IndexLoadError as exc:
            raise IndexLoadError(f"cannot roll back to {target}, {stack[-1]} stays current: {exc}") from None
        return _change(runs, "rollback", target, stack[-1], info, by, len(entries) + 1)
