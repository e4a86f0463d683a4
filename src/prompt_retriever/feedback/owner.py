"""The collection owner's judged query set: the file the judging page (`serve --judgments FILE`, GET
/judge) saves to, and the log's most frequent queries the owner picks from.

One JSON line per query, the format `golden.goldenset.load_judged_queries` (`evaluate --judged FILE`)
reads; it ignores the keys it does not know::

    {"query": "haunted lighthouse", "relevant": {"p-7": 2, "p-3": 1}, "nonrelevant": ["p-9"],
     "timestamp": "2026-12-07T10:30:30.911Z", "source": "owner"}

`relevant` holds the prompts graded 1 or 2, `nonrelevant` those graded 0. Judging a query again merges
into its line (the grades given replace those of the same prompts, the others are kept; other keys of
the line are kept too), so there is one line per query, its spelling compared without case and runs of
white space (`query_key`, as the reader tells duplicates apart). A query must keep at least one relevant
prompt, or it could not be scored: `put` refuses it (`NO_RELEVANT`). The file is the owner's: an
existing one is read whole at start (`OwnerJudgments.load`, every line checked) and each save rewrites
it whole, atomically (a temporary file renamed over it), under a lock.

>>> owner = OwnerJudgments.load("judged.jsonl")                 # doctest: +SKIP
>>> owner.put("haunted lighthouse", {"p-7": 2, "p-3": 1, "p-9": 0})["relevant"]   # doctest: +SKIP
{'p-7': 2, 'p-3': 1}
>>> owner.grades("Haunted  Lighthouse")                        # doctest: +SKIP
{'p-7': 2, 'p-3': 1, 'p-9': 0}
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import InputError
from ..fileio import atomic_write_jsonl
from ..fileread import jsonl_rows, read_regular
from .records import QueryRecord, iso, now, query_key

SOURCE = "owner"
GRADES = (0, 1, 2)
NO_RELEVANT = "rate at least one result 1 or 2: a query with no relevant prompt cannot be scored"
MAX_FILE_BYTES = 256 << 20  # far above any judged set typed by hand; a FIFO or /dev/zero is refused, not read

Alias = Callable[[str], str | None]  # a key of a line ("relevant" may name a prompt by title) -> its prompt id


def _check_line(row: object, where: str) -> dict:
    """`row` if it is a judged line `load_judged_queries` can read (and `nonrelevant`, if any, a list of
    strings); InputError naming `where` otherwise."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: a line must be a JSON object")
    query, relevant, nonrelevant = row.get("query"), row.get("relevant"), row.get("nonrelevant", [])
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"{where}: need a non-empty 'query' string")
    if not isinstance(relevant, dict) or not relevant:
        raise InputError(f"{where}: need a non-empty 'relevant' object of prompt id (or title) -> grade")
    if not all(isinstance(g, int) and not isinstance(g, bool) for g in relevant.values()):
        raise InputError(f"{where}: the grades in 'relevant' must be whole numbers")
    if not isinstance(nonrelevant, list) or not all(isinstance(i, str) for i in nonrelevant):
        raise InputError(f"{where}: 'nonrelevant' must be a list of prompt ids")
    return row


def _read_lines(path: Path) -> list[tuple[int, dict]]:
    """The judged lines of `path` with their line numbers (blank lines skipped); InputError naming the
    line that is not one."""
    try:
        data = read_regular(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read the judgments file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    return [(n, _check_line(row, f"{path}:{n}")) for n, row in jsonl_rows(text, path)]


def _writable(path: Path) -> None:
    """InputError unless `path` can be written: not a folder, and its nearest existing folder writable."""
    if path.exists() and not path.is_file():
        raise InputError(f"the judgments file {path} is not a regular file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write the judgments file {path}: no write permission in {folder}")


def _saved_grades(row: Mapping, alias: Alias | None) -> dict[str, int]:
    """A line's grades by prompt id: its non-relevant ones 0, its relevant ones theirs (a key `alias`
    cannot map, e.g. a prompt since removed, is kept as it is)."""
    resolve = alias or (lambda key: key)
    out = {resolve(i) or i: 0 for i in row.get("nonrelevant", [])}
    for key, grade in row["relevant"].items():
        out[resolve(key) or key] = max(int(grade), 0)
    return out


class OwnerJudgments:
    """The owner's judged lines of one file, in file order (see the module's docstring). Thread-safe."""

    def __init__(self, path: str | Path, rows: Iterable[Mapping] = (), *, numbers: Iterable[int] | None = None):
        """`numbers`: the file's line number of each row, for the errors (default 1, 2, ...)."""
        self.path = Path(path)
        self._rows: list[dict] = []
        self._index: dict[str, int] = {}  # query_key -> position in _rows
        seen_at: dict[str, int] = {}  # query_key -> its line number
        for n, row in zip(numbers if numbers is not None else itertools.count(1), rows, strict=False):
            row = _check_line(dict(row), f"{self.path}:{n}")
            key = query_key(row["query"])
            if key in self._index:
                first = seen_at[key]
                raise InputError(f"{self.path}:{n}: repeats the query of line {first} ({row['query']!r}): merge them")
            self._index[key], seen_at[key] = len(self._rows), n
            self._rows.append(row)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> OwnerJudgments:
        """The judgments of `path` (a file to create on the first save when there is none). InputError
        when it cannot be read or written, or a line is not a judged query (the line named)."""
        path = Path(path).expanduser().resolve()  # a symlink: the file it names is the one rewritten
        _writable(path)
        lines = _read_lines(path) if path.exists() else []
        return cls(path, [row for _, row in lines], numbers=[n for n, _ in lines])

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def rows(self) -> list[dict]:
        """A copy of every line, in file order."""
        with self._lock:
            return [dict(r) for r in self._rows]

    def judged(self, query: str) -> bool:
        """Whether `query` (any case and spacing) has a line."""
        with self._lock:
            return query_key(query) in self._index

    def line(self, query: str) -> dict | None:
        """A copy of the line of `query`, None if it has none."""
        with self._lock:
            at = self._index.get(query_key(query))
            return dict(self._rows[at]) if at is not None else None

    def grades(self, query: str, alias: Alias | None = None) -> dict[str, int]:
        """The grades saved for `query` by prompt id (0 for the non-relevant ones); `alias` maps a key of
        the line to a prompt id (a title, in a file written by hand). Empty if `query` has no line."""
        row = self.line(query)
        return _saved_grades(row, alias) if row is not None else {}

    def put(
        self, query: str, grades: Mapping[str, int], *, alias: Alias | None = None, at: datetime | None = None
    ) -> dict:
        """Merge `grades` (prompt id -> 0, 1 or 2) into the line of `query` (a new line at the end when it
        has none), save the file, and return the new line. InputError for a grade out of range, no
        grade, or a line left without any relevant prompt (`NO_RELEVANT`), and nothing is changed; an
        OSError of the write leaves the file and this object as they were."""
        text = " ".join(query.split())
        if not text:
            raise InputError("empty query")
        if not grades:
            raise InputError("no grade given: rate the results 0, 1 or 2")
        if bad := {i: g for i, g in grades.items() if isinstance(g, bool) or g not in GRADES}:
            raise InputError(f"grades must be 0, 1 or 2, not {bad}")
        with self._lock:
            at_row = self._index.get(query_key(text))
            old = self._rows[at_row] if at_row is not None else None
            merged = _saved_grades(old, alias) if old is not None else {}
            merged.update(grades)
            relevant = {i: g for i, g in merged.items() if g > 0}
            if not relevant:
                raise InputError(NO_RELEVANT)
            line = {
                **(old or {}),
                "query": text,
                "relevant": relevant,
                "nonrelevant": [i for i, g in merged.items() if g <= 0],
                "timestamp": iso(at or now()),
                "source": SOURCE,
            }
            rows = list(self._rows)
            if at_row is None:
                rows.append(line)
            else:
                rows[at_row] = line
            atomic_write_jsonl(self.path, rows)  # first: a failed write changes nothing
            self._rows = rows
            if at_row is None:
                self._index[query_key(text)] = len(rows) - 1
        return dict(line)

    def save(self) -> Path:
        """Write every line to the file again (atomically); its path. `put` saves by itself."""
        with self._lock:
            return atomic_write_jsonl(self.path, self._rows)


@dataclass(frozen=True)
class LoggedQuery:
    """A query of the log: its latest spelling, how often it was searched, and when last."""

    query: str
    count: int
    last: datetime


def frequent_queries(
    records: Iterable[QueryRecord], *, since: datetime | None = None, limit: int = 50
) -> list[LoggedQuery]:
    """The `limit` most searched distinct queries of `records` (from `since` on, when given), most
    searched first, the latest searched first among equals; spellings that differ only in case and
    spacing count as one (`query_key`), shown as last typed.

    >>> frequent_queries(store_records, limit=2)   # doctest: +SKIP
    [LoggedQuery(query='haunted lighthouse', count=7, last=...), LoggedQuery(query='grief', count=3, last=...)]
    """
    counts: dict[str, int] = {}
    latest: dict[str, tuple[datetime, str]] = {}
    for record in records:
        if since is not None and record.timestamp < since:
            continue
        text = " ".join(record.user_query.split())
        if not text:
            continue
        key = query_key(text)
        counts[key] = counts.get(key, 0) + 1
        if key not in latest or record.timestamp >= latest[key][0]:
            latest[key] = (record.timestamp, text)
    order = sorted(counts, key=lambda k: (-counts[k], -latest[k][0].timestamp(), k))
    return [LoggedQuery(latest[k][1], counts[k], latest[k][0]) for k in order[:limit]]
