"""Appending rows to a matrix in amortised constant time, for live collections: one prompt added to a served
index of N prompts copied all N embedding rows (twice: the retriever's matrix and the exact store's), so
each live add cost O(N) time and a second N-row matrix of memory for the moment.

`append_rows` keeps spare rows after the matrix it returns (a view of a larger buffer); the next append
writes into them when the matrix given is still the buffer's newest view, so a run of appends copies the
matrix only when the spare rows run out (the buffer then grows by a quarter). Views handed out earlier are
never written into: an append only fills rows past every view's end, and a matrix that is not the newest
view (another copy of an index appended first, or an array made elsewhere) is copied into a new buffer, so
copies that share a matrix stay copy-on-write.

>>> a, spare = append_rows(np.zeros((2, 3), np.float32), np.ones((1, 3), np.float32), None)
>>> a.shape, len(spare.buffer) > 3
((3, 3), True)
>>> b, spare = append_rows(a, np.full((1, 3), 2, np.float32), spare)   # into the spare rows: no copy
>>> b.base is a.base, a.shape
(True, (3, 3))
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

GROWTH = 1.25  # spare rows: a quarter of the matrix (memory) against how often it is copied (time)
MIN_SPARE = 1024
MAX_RUNS = 64  # `take_rows` copies up to this many runs of kept rows into a buffer with spare rows


@dataclass(eq=False)
class Spare:
    """A buffer and how many of its rows hold data (the newest view's length); shared by every copy of
    the index that holds a view of it."""

    buffer: np.ndarray
    filled: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def views(self, matrix: np.ndarray) -> bool:
        """Whether `matrix` is this buffer's newest view (its first `filled` rows)."""
        return (
            matrix.base is self.buffer
            and len(matrix) == self.filled
            and matrix.dtype == self.buffer.dtype
            and matrix.shape[1:] == self.buffer.shape[1:]
            and matrix.__array_interface__["data"][0] == self.buffer.__array_interface__["data"][0]
        )


def _buffer(rows: int, like: np.ndarray) -> np.ndarray:
    """An empty buffer for `rows` rows shaped like `like`'s, with spare rows after them."""
    return np.empty((max(int(rows * GROWTH), rows + MIN_SPARE), *like.shape[1:]), dtype=like.dtype)


def append_rows(matrix: np.ndarray, new: np.ndarray, spare: Spare | None) -> tuple[np.ndarray, Spare]:
    """`matrix` with the rows of `new` after it, and the `Spare` to pass to the next call: written into
    the spare rows after `matrix` when it is `spare`'s newest view and they suffice, else copied (with both)
    into a new buffer a quarter larger. Neither input is changed."""
    new = np.asarray(new, dtype=matrix.dtype)
    if new.shape[1:] != matrix.shape[1:]:
        raise ValueError(f"rows of shape {new.shape[1:]} cannot follow rows of shape {matrix.shape[1:]}")
    n, k = len(matrix), len(new)
    if spare is not None:
        with spare.lock:
            if spare.views(matrix) and n + k <= len(spare.buffer):
                spare.buffer[n : n + k] = new
                spare.filled = n + k
                return spare.buffer[: n + k], spare
    rows = n + k
    buffer = _buffer(rows, matrix)
    buffer[:n] = matrix
    buffer[n:rows] = new
    return buffer[:rows], Spare(buffer, rows)


def take_rows(matrix: np.ndarray, keep: np.ndarray | list[int]) -> tuple[np.ndarray, Spare | None]:
    """The rows `keep` of `matrix` (in that order) and the `Spare` to append after them. When `keep` is a
    few ascending runs (a few prompts taken out), the runs are copied into a new buffer with spare rows, so
    the update that follows (take out the old row, append the new one) copies the matrix once; otherwise
    a plain copy of those rows (no spare: faster than gathering them into a larger buffer)."""
    keep = np.asarray(keep, dtype=np.int64)
    rows = len(keep)
    breaks = np.flatnonzero(np.diff(keep) != 1) + 1
    if rows == 0 or len(breaks) >= MAX_RUNS:
        return matrix[keep], None
    buffer = _buffer(rows, matrix)
    for lo, hi in zip([0, *breaks.tolist()], [*breaks.tolist(), rows], strict=True):
        buffer[lo:hi] = matrix[keep[lo] : keep[lo] + (hi - lo)]
    return buffer[:rows], Spare(buffer, rows)
