"""`FeedbackRecorder`: what a server with feedback on uses. It records each search answered and each event
on a result through one `BatchWriter` (off the request path), and remembers the latest searches it
answered, so that an event about one of them is checked without a database round trip, even before the
search's own record is written.

>>> recorder = FeedbackRecorder(open_store("feedback.db"))     # doctest: +SKIP
>>> recorder.record_query(query_record)                        # doctest: +SKIP
>>> recorder.lookup(query_record.query_id) is not None          # doctest: +SKIP
True
>>> recorder.close()                                           # doctest: +SKIP

An event about a search this server did not answer (another server behind the same load balancer, or
before a restart) is looked up in the store. A search whose record was dropped (the queue was full) is
not remembered, so an event about it is refused like any unknown one: every event stored is about a
search stored (unless the store refused that search's record, which is counted failed and logged).

`click` says whether an open of a result is the first of that result, and the first of its search, for
the latest `remember` searches clicked: the metrics count a click once (see `serving.metrics`) while
the store keeps every event as it came.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .experiments import ExperimentRecord
from .records import EventRecord, QueryRecord
from .store import FeedbackStore
from .writer import BatchWriter, WriterStats

REMEMBERED = 50_000  # searches kept in memory for checking events, and searches clicked for counting clicks


class FeedbackRecorder:
    """The store, its writer and the latest `remember` searches answered (see the module's docstring)."""

    def __init__(
        self,
        store: FeedbackStore,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        max_wait: float = 0.2,
        remember: int = REMEMBERED,
    ):
        self.store = store
        self.writer = BatchWriter(store.write, capacity=capacity, batch_size=batch_size, max_wait=max_wait)
        self._recent: OrderedDict[str, QueryRecord] = OrderedDict()
        self._clicked: OrderedDict[str, set[str]] = OrderedDict()  # query_id -> the results clicked
        self._remember = remember
        self._lock = threading.Lock()

    def record_query(self, q: QueryRecord) -> bool:
        """Queue `q` for the store and remember it; False if the queue was full (dropped, counted, and not
        remembered: an event about it is refused)."""
        if not self.writer.offer(q):
            return False
        with self._lock:
            self._recent[q.query_id] = q
            while len(self._recent) > self._remember:
                self._recent.popitem(last=False)
        return True

    def click(self, query_id: str, object_id: str) -> tuple[bool, bool]:
        """Note a click on result `object_id` of search `query_id`: (the first click on this result, the
        first click on this search), as far as the latest `remember` searches clicked here tell."""
        with self._lock:
            clicked = self._clicked.pop(query_id, None)
            first_of_search = clicked is None
            clicked = clicked if clicked is not None else set()
            first_of_result = object_id not in clicked
            clicked.add(object_id)
            self._clicked[query_id] = clicked  # the latest clicked last
            while len(self._clicked) > self._remember:
                self._clicked.popitem(last=False)
        return first_of_result, first_of_search

    def recent(self, query_id: str) -> QueryRecord | None:
        """The search `query_id` if this server answered it lately (no I/O)."""
        with self._lock:
            return self._recent.get(query_id)

    def lookup(self, query_id: str) -> QueryRecord | None:
        """The search `query_id`: remembered, else from the store (a blocking read: call it off the event
        loop); None if unknown."""
        return self.recent(query_id) or self.store.query(query_id)

    def record_event(self, e: EventRecord) -> bool:
        """Queue `e` for the store; False if the queue was full (dropped, counted)."""
        return self.writer.offer(e)

    def record_experiment(self, x: ExperimentRecord) -> bool:
        """Queue `x` (which experiment a search recorded with `record_query` was part of) for the store;
        False if the queue was full (dropped, counted: that search then counts as outside the experiment)."""
        return self.writer.offer(x)

    def stats(self) -> WriterStats:
        return self.writer.stats()

    def flush(self, timeout: float = 30.0) -> bool:
        return self.writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, stop the writer, close the store. What the store has not taken within
        `timeout` seconds is counted dropped and logged as an error (`BatchWriter.close`)."""
        self.writer.close(timeout)
        self.store.close()
