"""Writes off the request path: a bounded queue that a background thread empties into the store in batches.

`offer` never blocks and never raises: it puts the record on the queue, or, when the queue is full (the
store is slow or down), drops it and counts it. A search is never held up by the feedback log.

>>> writer = BatchWriter(store, capacity=10_000)   # doctest: +SKIP
>>> writer.offer(query_record)                    # doctest: +SKIP
True
>>> writer.close()  # writes what is queued, then stops   # doctest: +SKIP

`stats()` gives the counts: offered, written, dropped (queue full) and failed (the store refused a batch
twice). A batch the store refuses is retried once after `retry_delay` seconds, then counted failed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .records import EventRecord, QueryRecord

log = logging.getLogger("prompt_retriever.feedback")

Record = QueryRecord | EventRecord
Sink = Callable[[Sequence[QueryRecord], Sequence[EventRecord]], None]
_STOP = object()


@dataclass(frozen=True)
class WriterStats:
    offered: int
    written: int
    dropped: int
    failed: int
    queued: int
    capacity: int


class BatchWriter:
    """A bounded queue of records and the thread that writes them with `sink` (`FeedbackStore.write`) in
    batches of up to `batch_size`, waiting at most `max_wait` seconds for a batch to fill."""

    def __init__(
        self,
        sink: Sink,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        max_wait: float = 0.2,
        retry_delay: float = 1.0,
    ):
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be at least 1")
        self._sink = sink
        self.capacity, self.batch_size, self.max_wait, self.retry_delay = capacity, batch_size, max_wait, retry_delay
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._offered = self._written = self._dropped = self._failed = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="feedback-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the request side
    def offer(self, record: Record) -> bool:
        """Queue `record` for writing; False (and counted dropped) if the queue is full or closed."""
        with self._lock:
            self._offered += 1
            if self._closed:
                self._dropped += 1
                return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            return False
        return True

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                self._offered, self._written, self._dropped, self._failed, self._queue.qsize(), self.capacity
            )

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every record queued so far is written (or failed); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking records, write those queued, and stop the thread (waiting at most `timeout`)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)  # blocks only while the queue is full, and the thread is emptying it
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the writing side
    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]  # every item got is marked done once, after its batch is written
            deadline = time.monotonic() + self.max_wait
            while items[-1] is not _STOP and len(items) < self.batch_size:
                try:
                    items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            if any(item is _STOP for item in items):
                stopping = True
                while True:  # closing: write whatever is left too
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            batch = [item for item in items if item is not _STOP]
            if batch:
                self._write(batch)
            for _ in items:
                self._queue.task_done()

    def _write(self, batch: list[Record]) -> None:
        qs = [r for r in batch if isinstance(r, QueryRecord)]
        es = [r for r in batch if isinstance(r, EventRecord)]
        for attempt in (1, 2):
            try:
                self._sink(qs, es)
            except Exception as exc:  # noqa: BLE001 - the store's failure is counted and logged, never raised
                if attempt == 1:
                    log.warning("feedback store refused a batch of %d (retrying once): %s", len(batch), exc)
                    time.sleep(self.retry_delay)
                    continue
                log.error("feedback store refused a batch of %d records: they are lost: %s", len(batch), exc)
                with self._lock:
                    self._failed += len(batch)
                return
            with self._lock:
                self._written += len(batch)
            return
