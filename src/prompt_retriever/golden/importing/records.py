"""Reading the records of an import file: CSV (a header, then rows) or JSONL (one object a line), columns
and keys read case- and space-insensitively, and the format the columns imply (`detect_import_format`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from ...corpus import (
    MAX_CORPUS_FILE_BYTES,
    DuplicateKeyError,
    Issue,
    csv_value,
    decode_utf8,
    loads_unique,
    name_clash,
    read_file_bytes,
    same_names,
)
from ...errors import InputError
from .report import ImportReport

PAIRS_COLUMNS = ("query", "context", "relevance")
RAGAS_COLUMNS = ("user_input", "reference_contexts")
MAX_IMPORT_FILE_BYTES = 4 * MAX_CORPUS_FILE_BYTES  # read whole, like a corpus file; contexts repeat prompts
# The records of a file: (the line a record starts on, the record by column name).
Records = Iterator[tuple[int, dict]]


def read_import_text(path: Path) -> str:
    """The text of an import file; `InputError` when it cannot be read, is too large or is not UTF-8."""
    text, bad = decode_utf8(read_file_bytes(path, MAX_IMPORT_FILE_BYTES, "; split it"))
    if bad is not None:
        line, byte = bad
        raise InputError(f"{path}:{line}: error: not valid UTF-8 (byte 0x{byte:02x})")
    return text


def column_name(name: str) -> str:
    """How a column or JSON key is read: case and surrounding spaces ignored."""
    return name.strip().lower()


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


def read_records(path: Path, report: ImportReport) -> tuple[list[str], Records]:
    """(columns, iterator of (line the record starts on, record)). Unreadable records are reported, counted
    as read and dropped."""
    text = read_import_text(path)

    def issue(line: int, message: str) -> None:
        report.issues.append(Issue(str(path), line, "error", message))
        report.rows += 1
        report.dropped_rows += 1

    if _is_jsonl(path):
        if text.lstrip().startswith("["):
            raise InputError(f"{path}:1: error: a JSON array; write one JSON object per line (JSONL)")
        rows: list[tuple[int, dict]] = []
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:  # keys are read case- and space-insensitively, so two that are one then are refused
                row = loads_unique(line, column_name)
            except DuplicateKeyError as exc:
                issue(n, f"{exc}; record dropped")
                continue
            except (ValueError, RecursionError) as exc:
                issue(n, f"invalid JSON: {getattr(exc, 'msg', str(exc)[:80])}")
                continue
            if not isinstance(row, dict):
                issue(n, f"expected a JSON object, got {type(row).__name__}")
                continue
            rows.append((n, {column_name(str(k)): v for k, v in row.items()}))
        columns = list(rows[0][1]) if rows else []
        return columns, iter(rows)

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{path}:1: error: unreadable CSV header: {exc}") from exc
    if header is None:
        return [], iter(())
    if clash := same_names(header, column_name):
        raise InputError(f"{path}:1: error: CSV header: {name_clash(clash, 'column')}; rename one")
    columns = [column_name(h) for h in header]

    def rows_of() -> Records:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                issue(start, f"unreadable CSV record ({exc}); the rest of the file is not read")
                return
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(columns):
                issue(start, f"row has {len(cells)} fields, header has {len(columns)}")
                continue
            yield start, dict(zip(columns, map(csv_value, cells), strict=True))  # '=x (neutralised) reads =x

    return columns, rows_of()


def detect_import_format(columns: Sequence[str]) -> str | None:
    """The format a file's columns imply: "pairs", "ragas" or None."""
    cols = set(columns)
    if set(RAGAS_COLUMNS) <= cols:
        return "ragas"
    if {"query", "context"} <= cols:
        return "pairs"
    return None
