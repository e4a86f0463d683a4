"""Writes off the request path: a bounded queue that a background thread empties into the store in batches.

`offer` never blocks and never raises: it puts the record on the queue, or, when the queue is full (the
store is slow or down), drops it and counts it. A search is never held up by the feedback log.

>>> writer = BatchWriter(store, capacity=10_000)   # doctest: +SKIP
>>> writer.offer(query_record)                    # doctest: +SKIP
True
>>> writer.close()  # writes what is queued, then stops   # doctest: +SKIP

`stats()` gives the counts: offered, written, dropped (queue full, or still queued when `close` gave up
waiting) and failed (the store refused the record). A batch the store refuses is retried once after
`retry_delay` seconds; refused again, its records are written one by one, so that one record the store
cannot take costs only itself. After `MAX_FAILED_IN_A_ROW` refusals in a row the store itself is failing
(down, locked): the rest of the batch is counted failed without more tries. Every loss is logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .experiments import ExperimentRecord
from .records import EventRecord, QueryRecord

log = logging.getLogger("prompt_retriever.feedback")

Record = QueryRecord | EventRecord | ExperimentRecord
Sink = Callable[[Sequence[QueryRecord], Sequence[EventRecord], Sequence[ExperimentRecord]], None]
_STOP = object()
MAX_FAILED_IN_A_ROW = 3  # single records refused one after another: the store is failing, not the records


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
        self._in_hand = 0  # records the thread took off the queue and has not written (or failed) yet
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

    def pending(self) -> bool | None:
        """Whether records queued so far are still to be written: True, False, or None when some are but
        the writing thread has stopped (they never will be)."""
        if not self._queue.unfinished_tasks:
            return False
        return True if self._thread.is_alive() else None

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every record queued so far is written (or failed); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking records, write those queued, and stop the thread, waiting at most `timeout` seconds.
        What is still queued then (the store is slow or down) is taken off the queue, counted dropped and
        logged as an error; a batch being written finishes (or fails) on its own and is counted then."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)  # waits only while the queue is full
            stop_queued = True
        except queue.Full:
            stop_queued = False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop_queued = False
            else:
                left += 1
            self._queue.task_done()
        if not stop_queued:
            self._queue.put_nowait(_STOP)  # the thread stops once its batch in hand is done
        with self._lock:
            self._dropped += left
            in_hand = self._in_hand
        log.error(
            "feedback store did not take the queued records within %g s of shutdown: %d records still queued "
            "are dropped (lost); %d being written are counted when the store answers, or lost at exit",
            timeout,
            left,
            in_hand,
        )

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
                with self._lock:
                    self._in_hand = len(batch)
                self._write(batch)
                with self._lock:
                    self._in_hand = 0
            for _ in items:
                self._queue.task_done()

    def _write(self, batch: list[Record]) -> None:
        """Write `batch` (retried once); refused twice, its records one by one (see the module's docstring)."""
        if (exc := self._try(batch)) is None:
            return self._count(written=len(batch))
        log.warning("feedback store refused a batch of %d (retrying once): %s", len(batch), exc)
        time.sleep(self.retry_delay)
        if (exc := self._try(batch)) is None:
            return self._count(written=len(batch))
        if len(batch) > 1:
            log.warning("feedback store refused a batch of %d again: writing it record by record: %s", len(batch), exc)
        in_a_row = 0
        for i, record in enumerate(batch):
            if len(batch) > 1 and (exc := self._try([record])) is None:
                in_a_row = 0
                self._count(written=1)
                continue
            in_a_row += 1
            self._count(failed=1)
            log.error("feedback store refused a %s: it is lost: %s", type(record).__name__, exc)
            if in_a_row >= MAX_FAILED_IN_A_ROW and (rest := len(batch) - i - 1):
                log.error(
                    "feedback store refused %d records in a row: the %d left of the batch are lost", in_a_row, rest
                )
                return self._count(failed=rest)
        return None

    def _try(self, records: Sequence[Record]) -> Exception | None:
        """Write `records` with the sink in one call; the exception it raised, None if none."""
        try:
            self._sink(
                [r for r in records if isinstance(r, QueryRecord)],
                [r for r in records if isinstance(r, EventRecord)],
                [r for r in records if isinstance(r, ExperimentRecord)],
            )
        except Exception as exc:  # noqa: BLE001 - the store's failure is counted and logged, never raised
            return exc
        return None

    def _count(self, *, written: int = 0, failed: int = 0) -> None:
        with self._lock:
            self._written += written
            self._failed += failed
