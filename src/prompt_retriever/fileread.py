"""Reading the files a user hands in, safely: a regular file only (never a FIFO, a device or a symlink to
one), no more than a size limit, and JSON lines with the line number of every row, so an error names the
file and the line.

>>> data = read_regular("corpus.txt", 50_000_000)                     # doctest: +SKIP
>>> [(n, row["query"]) for n, row in read_jsonl_numbered("judged.jsonl")]  # doctest: +SKIP
[(1, 'haunted lighthouse'), (3, 'clockwork city')]
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InputError


def read_at_most(path: str | Path, limit: int) -> bytes | None:
    """The bytes of file `path`, or None when it holds more than `limit` bytes: a regular file is measured
    first and not read at all; a pipe, `/dev/stdin` or a device is read no further than `limit` + 1 bytes.
    Each call reads the file once (a pipe can be read only once). OSError when it cannot be read."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if stat.S_ISREG(st.st_mode) and st.st_size > limit:
            return None
        data = fh.read(limit + 1)
    return None if len(data) > limit else data


def open_regular(path: str | Path, limit: int) -> BinaryIO:
    """`path` opened for reading, only if it is a regular file of at most `limit` bytes; else one
    InputError. Checked on the open descriptor, and opened without blocking, so a symlink to
    `/dev/zero`, a FIFO (which would wait forever for a writer) or a device is refused at once."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(f"{path}: missing or unreadable ({type(exc).__name__})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: not a regular file")
        if st.st_size > limit:
            raise InputError(f"{path}: too large ({st.st_size:,} bytes, at most {limit:,} allowed)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (`open_regular`), reading at most `limit + 1`,
    so a file that grows while it is read is refused too; else one InputError."""
    with open_regular(path, limit) as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise InputError(f"{path}: unreadable ({type(exc).__name__})") from exc
    if len(data) > limit:
        raise InputError(f"{path}: too large (over {limit:,} bytes allowed)")
    return data


def jsonl_rows(text: str, where: str | Path, error: type[Exception] = InputError) -> list[tuple[int, Any]]:
    """The JSON values of `text`, one a line, each with its 1-based line number (blank lines skipped).
    Lines end at `\n` only: a JSON string may hold U+2028 or U+0085, which `str.splitlines` would split
    at. An `error` naming `where` and the line for one that is not JSON."""
    rows = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise error(f"{where}:{n}: invalid JSON: {exc.msg}") from None
    return rows


def read_jsonl_numbered(path: str | Path) -> list[tuple[int, Any]]:
    """`jsonl_rows` of the UTF-8 file `path` (its line ends as Python's text mode reads them)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return jsonl_rows(text, path)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON values of the JSON-lines file `path` (see `read_jsonl_numbered`)."""
    return [row for _, row in read_jsonl_numbered(path)]
